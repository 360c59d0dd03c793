"""Offline crawls of every configured source from the snapshots, on SQLite and
PostgreSQL: the real command, real Scrapy, the real archive."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from typer.testing import CliRunner

from db.engine import make_engine, make_sessionmaker
from db.models import Article, CounterReading, CrawlRun, FetchState, SourceRow
from deportwatch.cli.app import app
from deportwatch.config.sources import load_sources
from tests.conftest import FIXTURES, REPO, WEB, fresh_database
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e
SOURCES = load_sources(REPO / "sources.toml")
ENABLED = [s.name for s in SOURCES.enabled]
HISTORY = FIXTURES / "history" / "2023-04-14"


class Replayed:
    """An archive after one ``crawl --all --replay tests/fixtures/web``."""

    def __init__(self, url: str, workdir: Path, output: str) -> None:
        self.url = url
        self.workdir = workdir
        self.output = output
        self.engine: Engine = make_engine(url)

    def cli(self, *args: str) -> tuple[int, str, str]:
        done = run_cli(list(args), self.url, REPO / "sources.toml", self.workdir)
        return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def replayed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replayed]:
    workdir = tmp_path_factory.mktemp(f"replay-{request.param}")
    with fresh_database(request.param, workdir) as url:
        done = run_cli(
            ["crawl", "--all", "--replay", str(WEB)], url, REPO / "sources.toml", workdir
        )
        assert done.returncode == 0, done.stderr[-2000:]
        archive = Replayed(url, workdir, done.stdout)
        yield archive
        archive.engine.dispose()


def _count(engine: Engine, source: str, *conditions: object) -> int:
    with make_sessionmaker(engine)() as session:
        query = (
            select(func.count())
            .select_from(Article)
            .join(SourceRow)
            .where(SourceRow.name == source, *conditions)  # type: ignore[arg-type]
        )
        return int(session.scalar(query) or 0)


@pytest.mark.parametrize("name", [n for n in ENABLED if n != "children-of-war"])
def test_every_enabled_source_archives_complete_articles(replayed: Replayed, name: str) -> None:
    complete = _count(
        replayed.engine,
        name,
        Article.title != "",
        Article.text != "",
        Article.published_at.is_not(None),
        Article.date_origin != "fetch-time",
        Article.language.is_not(None),
    )
    assert complete >= 1
    with make_sessionmaker(replayed.engine)() as session:
        run = session.scalars(select(CrawlRun).join(SourceRow).where(SourceRow.name == name)).one()
    assert (run.outcome, run.errors, run.error_text) == ("ok", 0, None)
    # Each source holds a deportation report and an unrelated item: both kinds are kept,
    # and only the report is flagged.
    assert _count(replayed.engine, name, Article.flagged.is_(True)) >= 1
    if name != "kyiv-independent-archive":  # its unrelated pages may belong to the feed source
        assert _count(replayed.engine, name, Article.flagged.is_(False)) >= 1


def test_feed_fetch_state_keeps_the_declared_update_period(replayed: Replayed) -> None:
    with make_sessionmaker(replayed.engine)() as session:
        nrc = session.get_one(
            FetchState, "https://sprotyv.mod.gov.ua/feed/"
        )  # sy:updatePeriod hourly
        ki = session.get_one(FetchState, "https://kyivindependent.com/news-archive/rss/")
    assert (nrc.update_seconds, ki.update_seconds) == (3600, None)


def test_summary_shows_every_enabled_source(replayed: Replayed) -> None:
    for name in ENABLED:
        assert f"│ {name} " in replayed.output
    row = next(line for line in replayed.output.splitlines() if "│ children-of-war " in line)
    assert row.split("│")[-3].strip() == "7"  # readings column


def test_counter_readings_and_no_personal_data(replayed: Replayed) -> None:
    with make_sessionmaker(replayed.engine)() as session:
        readings = {r.metric: r.value for r in session.scalars(select(CounterReading))}
        assert readings["deported"] == 19546
        assert readings["returned"] == 386
        # Nothing of the children shown on the portal is anywhere in the archive.
        for table in ("articles", "counter_readings", "crawl_runs", "article_versions"):
            rows = session.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608
            assert "PLACEHOLDER" not in repr(rows), table


def test_figures_time_series_from_two_snapshot_dates(
    replayed: Replayed, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, stderr = replayed.cli("crawl", "children-of-war", "--replay", str(HISTORY))
    assert code == 0, stderr
    again, out, _ = replayed.cli("crawl", "children-of-war", "--replay", str(WEB))
    assert again == 0
    row = next(line for line in out.splitlines() if "│ children-of-war " in line)
    assert row.split("│")[-3].strip() == "0"  # the same readings are not stored twice

    # Reading commands start no crawl: run them in-process.
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", replayed.url)
    runner = CliRunner()
    result = runner.invoke(app, ["figures", "--metric", "deported", "--format", "json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [(r["as_of"], r["value"], r["source"]) for r in rows] == [
        ("2023-04-14", 19384, "children-of-war"),
        ("2023-10-18", 19546, "children-of-war"),
    ]
    assert set(rows[0]) >= {"metric", "value", "as_of", "source", "fetched_at"}

    result = runner.invoke(app, ["figures", "--since", "2023-06-01", "--format", "csv"])
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "as_of,metric,value,source,label,fetched_at,url"
    assert len(lines) == 1 + 7
    assert all(line.startswith("2023-10-18,") for line in lines[1:])

    result = runner.invoke(app, ["figures"])
    assert result.exit_code == 0
    assert "19,384" in result.stdout
    assert "19,546" in result.stdout

    result = runner.invoke(app, ["figures", "--metric", "abducted"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown metric 'abducted' (known: deported, found, injured, killed, missing, "
        "returned, sexual_violence)"
    ]


def test_telegram_stops_at_archived_posts_and_forwards_join_their_original(
    replayed: Replayed,
) -> None:
    # ombudsman-telegram is disabled (its username is unconfirmed) but crawls when named.
    code, _, stderr = replayed.cli(
        "crawl", "pgo-telegram", "ombudsman-telegram", "--replay", str(WEB)
    )
    assert code == 0, stderr
    with make_sessionmaker(replayed.engine)() as session:
        first, second = session.scalars(
            select(CrawlRun)
            .join(SourceRow)
            .where(SourceRow.name == "pgo-telegram")
            .order_by(CrawlRun.id)
        ).all()
        # First crawl: robots.txt and two pages; the second reads the newest page only.
        assert (first.pages, first.articles_new) == (3, 6)
        assert (second.pages, second.articles_new, second.articles_unchanged) == (2, 0, 4)

        original = session.scalars(
            select(Article).where(Article.canonical_url == "https://t.me/dmytro_lubinetzs/2210")
        ).one()
        assert json.loads(original.details or "{}") == {
            "channel": "dmytro_lubinetzs",
            "post_id": 2210,
            "views": 88400,
            "media": 2,
        }
    assert _count(replayed.engine, "ombudsman-telegram") == 3


BROKEN = {
    # source: (snapshot file, what it is replaced with, the reason recorded)
    "minre": ("minre.gov.ua/wp-sitemap.xml", b"\x00\xffgarbage", "not a sitemap"),
    "nv-uk": (
        "nv.ua/ukr/rss/all.xml",
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>NV</title></channel></rss>',
        "feed has no entries",
    ),
    "kyiv-independent-archive": (
        "kyivindependent.com/news-archive/index.html",
        b"<html><body><p>Redesigned</p></body></html>",
        "no items matched",
    ),
    "pgo-telegram": (
        "t.me/s/pgo_gov_ua",
        b"<html><body>Channel unavailable</body></html>",
        "no posts found",
    ),
    "children-of-war": (
        "childrenofwar.gov.ua/index.html",
        b"<html><body>Maintenance</body></html>",
        "no labelled totals",
    ),
}


def test_bad_snapshots_are_counted_errors_and_the_other_sources_still_crawl(
    tmp_path: Path,
) -> None:
    web = tmp_path / "web"
    shutil.copytree(WEB, web)
    for path, content, _ in BROKEN.values():
        (web / path).write_bytes(content)
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    names = [*BROKEN, "suspilne"]
    done = run_cli(["crawl", *names, "--replay", str(web)], url, REPO / "sources.toml", tmp_path)
    assert done.returncode == 0, done.stderr  # some sources failed, not all
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        runs = dict(session.execute(select(SourceRow.name, CrawlRun).join(CrawlRun.source)).all())
    engine.dispose()
    for name, (_, _, reason) in BROKEN.items():
        assert (runs[name].outcome, runs[name].errors) == ("failed", 1), name
        assert reason in (runs[name].error_text or ""), name
        assert f"{name}: " in done.stdout  # the error is shown under the summary
    assert (runs["suspilne"].outcome, runs["suspilne"].articles_new) == ("ok", 2)


def test_hand_written_feed_snapshots_keep_their_details(replayed: Replayed) -> None:
    with make_sessionmaker(replayed.engine)() as session:
        nv = session.scalars(select(Article).where(Article.title.contains("health camps"))).one()
        ki = session.scalars(select(Article).where(Article.title.startswith("Ombudsman: 31"))).one()
    assert nv.published_at == datetime(2023, 12, 28, 12, 12, tzinfo=UTC)
    assert nv.date_origin == "selector"
    assert "Реклама" not in nv.text
    assert "Read also" not in nv.text
    assert (
        ki.canonical_url
        == "https://kyivindependent.com/ombudsman-31-children-brought-back-to-ukraine"
    )
    assert ki.url.endswith("?utm_source=rss&utm_medium=feed")


def test_a_second_replay_of_everything_adds_no_rows(replayed: Replayed) -> None:
    """Last in this module: it crawls every source again."""

    def totals() -> tuple[int, int]:
        with make_sessionmaker(replayed.engine)() as session:
            articles = session.scalar(select(func.count()).select_from(Article)) or 0
            readings = session.scalar(select(func.count()).select_from(CounterReading)) or 0
        return articles, readings

    before = totals()
    code, _, stderr = replayed.cli("crawl", "--all", "--replay", str(WEB))
    assert code == 0, stderr
    assert totals() == before
    with make_sessionmaker(replayed.engine)() as session:
        latest = session.scalars(
            select(CrawlRun).order_by(CrawlRun.id.desc()).limit(len(ENABLED))
        ).all()
    assert {(run.articles_new, run.readings_new, run.errors) for run in latest} == {(0, 0, 0)}
