"""Two writers at once: the service's crawl of a source and a manual crawl of the
same source, started together, on SQLite and PostgreSQL.

Both crawls fetch and store every page. Neither may show the user a lock error,
the archive must hold each page once, in the stories a single crawl would have
made, and between them the two runs must count each article as new exactly once.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.crawl_throughput import sources_file
from bench.synthetic_site import SyntheticSite
from tests.archive_checks import read
from tests.conftest import fresh_database
from tests.helpers import DEPORTWATCH, cli_env, run_cli

pytestmark = pytest.mark.e2e
PAGES = 80
# Both crawls ask for every page, even those the other has just stored.
SETTINGS = {"obey_robots": "false", "recheck_minutes": "0"}


class OverlappingSite(SyntheticSite):
    """Holds back the article pages until two crawls have asked for the feed.

    The manual crawl is a new interpreter, seconds to start on a loaded machine,
    and the service's crawl of the site takes a few seconds: left alone, it could
    end before the other begins (it did once in a whole parallel run), and the
    test would not be of two writers at once."""

    def __init__(self, count: int, seed: int) -> None:
        super().__init__(count, seed)
        self.feed_requests = 0
        self.both_started = threading.Event()

    def answer(self, path: str) -> tuple[bytes, str] | None:
        if path == "/feed.xml":
            with self._lock:
                self.feed_requests += 1
                if self.feed_requests >= 2:
                    self.both_started.set()
        elif path.startswith("/news/"):
            self.both_started.wait(120)
        return super().answer(path)


@pytest.fixture
def synthetic() -> Iterator[SyntheticSite]:
    site = OverlappingSite(PAGES, seed=5)
    site.latency = 0.05  # crawls of a few seconds
    with site.serve():
        yield site


def test_the_service_and_a_manual_crawl_of_one_source_at_once(
    database_url: str, synthetic: SyntheticSite, tmp_path: Path
) -> None:
    sources = sources_file(tmp_path, synthetic.base, PAGES)
    env = cli_env(database_url, sources, tmp_path, **SETTINGS)
    # The archive exists before they race, as it does under a running service.
    assert run_cli(["init"], database_url, sources, tmp_path).returncode == 0
    service = subprocess.Popen(
        [DEPORTWATCH, "schedule", "--once"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # The manual crawl starts once the service has started its own: started
    # first, the manual one would make the source not due for the service.
    assert service.stdout is not None
    head = []
    for line in service.stdout:
        head.append(line)
        if '"crawl.start"' in line:
            break
    manual = subprocess.Popen(
        [DEPORTWATCH, "crawl", "synthetic"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    rest, _ = service.communicate(timeout=180)
    service_out = "".join(head) + rest
    manual_out, _ = manual.communicate(timeout=180)
    assert service.returncode == 0, service_out
    assert manual.returncode == 0, manual_out
    for output in (service_out, manual_out):
        for word in ("locked", "deadlock", "Traceback", "spool", "error:"):
            assert word not in output, output
    ends = [json.loads(line) for line in service_out.splitlines() if '"crawl.end"' in line]
    assert [(e["outcome"], e["errors"]) for e in ends] == [("ok", 0)]

    state, lonely, runs = read(database_url)
    assert not any(lonely.values()), lonely
    assert [(r.outcome, r.errors) for r in runs] == [("ok", 0), ("ok", 0)]
    first, second = runs
    assert first.finished_at is not None
    assert second.started_at < first.finished_at  # they did run at the same time
    # Each article is new (or a new copy of a story) in exactly one of the runs.
    assert sum(r.articles_new + r.articles_duplicate for r in runs) == PAGES
    assert len(state["articles"]) == PAGES

    kind = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    with fresh_database(kind, tmp_path / "alone") as alone:
        (tmp_path / "alone").mkdir(exist_ok=True)
        single = run_cli(["crawl", "synthetic"], alone, sources, tmp_path, **SETTINGS)
        assert single.returncode == 0, single.stdout
        expected, _, _ = read(alone)
    # The same stories as one crawl alone makes (which copy came first may differ).
    assert state["stories"] == expected["stories"]
    for fields in (state["articles"], expected["articles"]):
        for values in fields.values():
            values.pop()  # the article a copy points at depends on which was stored first
    assert state["articles"] == expected["articles"]
    assert state["matches"] == expected["matches"]
