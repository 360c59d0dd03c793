"""The archive goes away in the middle of a crawl and comes back: nothing fetched is lost.

PostgreSQL "stops" behind a loopback proxy (every connection cut, the port
refusing new ones); a SQLite file is locked by another process for longer than
the crawl will wait. Either way the crawl goes on fetching, says what happened
in one line, exits 1, and keeps what it could not store in the spool; the next
crawl stores it, once.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.crawl_throughput import sources_file
from bench.synthetic_site import SyntheticSite
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import Article, CrawlRun
from tests.helpers import DEPORTWATCH, cli_env, run_cli
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e
PAGES = 40


@pytest.fixture
def synthetic() -> Iterator[SyntheticSite]:
    site = SyntheticSite(PAGES, seed=3)
    site.latency = 0.1  # the crawl lasts a few seconds: long enough to lose the archive
    with site.serve():
        yield site


def count_articles(database_url: str) -> int:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        n = session.scalar(select(func.count()).select_from(Article)) or 0
    engine.dispose()
    return n


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Outage:
    """The archive as the crawl reaches it (``url``), and the means to take it
    away and bring it back."""

    def __init__(self, database_url: str) -> None:
        self.proxy: TcpProxy | None = None
        self.lock: sqlite3.Connection | None = None
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite":
            assert url.database is not None
            self.path = url.database
            # The crawl waits half a second for a lock, not the default 30.
            self.url = f"{database_url}?timeout=0.5"
        else:
            self.proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
            self.url = url.set(port=self.proxy.port).render_as_string(hide_password=False)

    def take_away(self) -> None:
        if self.proxy is not None:
            self.proxy.down()
            return
        # Another process's long write transaction.
        self.lock = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        self.lock.execute("BEGIN IMMEDIATE")

    def bring_back(self) -> None:
        if self.proxy is not None:
            self.proxy.up()
        elif self.lock is not None:
            self.lock.execute("ROLLBACK")
            self.lock.close()
            self.lock = None


@pytest.fixture
def outage(database_url: str) -> Iterator[Outage]:
    archive = Outage(database_url)
    yield archive
    archive.bring_back()
    if archive.proxy is not None:
        archive.proxy.down()


def spool_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "spool").rglob("*.jsonl"))


def test_an_archive_outage_mid_crawl_loses_nothing_and_doubles_nothing(
    database_url: str, outage: Outage, synthetic: SyntheticSite, tmp_path: Path
) -> None:
    sources = sources_file(tmp_path, synthetic.base, PAGES)
    settings = {"obey_robots": "false"}
    engine = make_engine(database_url)
    upgrade(engine)  # so the test can count rows from the start
    engine.dispose()
    process = subprocess.Popen(
        [DEPORTWATCH, "crawl", "synthetic"],
        env=cli_env(outage.url, sources, tmp_path, **settings),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: count_articles(database_url) >= 3, "the first stored articles")
    outage.take_away()
    stdout, stderr = process.communicate(timeout=120)
    stored_before = count_articles(database_url)
    assert synthetic.article_requests == PAGES  # the crawl went on fetching
    outage.bring_back()
    assert process.returncode == 1, stdout + stderr
    assert "Traceback" not in stdout + stderr
    # The last line says it, whether the archive was still away at the end
    # (PostgreSQL: the summary cannot be read) or back (SQLite: only the lock).
    last = stderr.strip().splitlines()[-1]
    told = re.search(
        rf"^error: .*\b(\d+) fetched items;? (they )?wait in the spool "
        rf"{re.escape(str(tmp_path / 'spool'))} and the next crawl stores them$",
        last,
    )
    assert told is not None, stderr
    waiting = int(told.group(1))
    assert stored_before + waiting >= PAGES  # all fetched: stored or in the spool
    assert 0 < stored_before < PAGES
    assert spool_files(tmp_path)

    status = run_cli(["status", "--format", "json"], outage.url, sources, tmp_path, **settings)
    [health] = json.loads(status.stdout)
    assert health["spooled"] == waiting  # the status says what waits

    again = run_cli(["crawl", "synthetic"], outage.url, sources, tmp_path, **settings)
    assert again.returncode == 0, again.stdout + again.stderr
    assert count_articles(database_url) == PAGES  # every page once
    assert spool_files(tmp_path) == []

    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        first, second = session.scalars(select(CrawlRun).order_by(CrawlRun.id)).all()
        urls = session.scalars(select(Article.canonical_url)).all()
    engine.dispose()
    assert len(set(urls)) == PAGES
    # The first run's ending waited in the spool too, and says where the items went.
    assert first.outcome == "partial"
    assert first.error_text is not None
    assert "wait in the spool" in first.error_text
    assert first.finished_at is not None
    stored_first = first.articles_new + first.articles_duplicate
    assert stored_first == stored_before  # counts are of what was committed, nothing more
    assert second.outcome == "ok"
    assert stored_first + second.articles_new + second.articles_duplicate == PAGES


@pytest.mark.parametrize(
    ("how", "start", "expected"),
    [
        ("locked", "error: database", "locked by another process for longer than this one waits"),
        ("read-only", "error: the archive", "is read-only here (attempt to write a readonly"),
    ],
)
def test_a_locked_or_read_only_sqlite_archive_is_one_clear_line_and_nothing_is_fetched(
    how: str, start: str, expected: str, synthetic: SyntheticSite, tmp_path: Path
) -> None:
    path = tmp_path / "archive.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    sources = sources_file(tmp_path, synthetic.base, PAGES)
    holder = sqlite3.connect(path, timeout=10, isolation_level=None)
    if how == "locked":
        holder.execute("BEGIN IMMEDIATE")
        url = f"sqlite:///{path}?timeout=0.5"
    else:
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    try:
        result = run_cli(["crawl", "synthetic"], url, sources, tmp_path)
    finally:
        holder.close()
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1
    assert len(output.splitlines()) == 1, output
    assert output.startswith(start)
    assert expected in output
    assert synthetic.article_requests == 0
