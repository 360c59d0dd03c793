"""``kill -9`` a crawl at random points, run it again: the archive ends as if
nothing had happened.

For each seed a crawl of the synthetic site is killed (SIGKILL: no signal
handler runs, no batch is committed, no run is closed) once the site has
served a number of article pages drawn from the seed; then the same crawl runs
to its end. The archive is compared, article by article, with one that a
single uninterrupted crawl made: same rows, texts, dates, flags and evidence,
the same stories, and no row that belongs to nothing. Every evidence capture
the archive links to, before and after the second crawl, is a complete WARC
record whose digest matches. The figures go to
``build/test-artifacts/crash-<database>-seed-<seed>.json`` for RELIABILITY.md.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.crawl_throughput import sources_file
from bench.synthetic_site import SyntheticSite
from tests.archive_checks import capture_problems, read
from tests.conftest import REPO, fresh_database
from tests.helpers import cli_env, run_cli, start_command

pytestmark = pytest.mark.e2e
PAGES = 60
# Each kill point runs on one engine, and each engine gets an early, a middle and
# a late one: what a kill can leave behind (an open batch, a half-written WARC
# record, a run left running) comes from where the crawl was, not from the
# engine, whose own commits the rest of the suite tests on both. Every pair of
# kill point and engine would double the file's time for no case of its own.
KILLS = (
    ("sqlite", 1),  # kill point 11 of 60
    ("sqlite", 3),  # 18
    ("sqlite", 6),  # 53
    ("postgresql", 9),  # 32
    ("postgresql", 5),  # 42
    ("postgresql", 2),  # 58
)
ARTIFACTS = REPO / "build" / "test-artifacts"
# One request at a time: each crawl stores the pages in the same order, so the
# story each copy joins does not depend on which of two answers came first.
SETTINGS = {"obey_robots": "false", "concurrent_requests_per_domain": "1"}


@pytest.fixture(scope="module")
def synthetic() -> Iterator[SyntheticSite]:
    site = SyntheticSite(PAGES, seed=11)
    site.latency = 0.03  # batches commit every second: some kills fall between commits
    with site.serve():
        yield site


def kill_after(
    site: SyntheticSite, pages: int, database_url: str, sources: Path, workdir: Path
) -> int:
    """Start a crawl and SIGKILL it once the site has served ``pages`` more
    article pages; the number it had been served when it died."""
    served = site.article_requests
    env = cli_env(database_url, sources, workdir, **SETTINGS)
    # Forked (unless DEPORTWATCH_TEST_EXEC=1): each kill point does not pay a
    # new interpreter's start.
    process = start_command(["crawl", "synthetic"], env, workdir)
    deadline = time.monotonic() + 90
    while site.article_requests - served < pages and process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError("the crawl made no progress")
        time.sleep(0.005)
    process.kill()
    process.wait()
    return site.article_requests - served


@dataclass(frozen=True)
class Reference:
    """One uninterrupted crawl of the synthetic site: what every killed-and-resumed
    archive must end up equal to."""

    kind: str
    sources: Path
    state: dict[str, Any]


@pytest.fixture(scope="module")
def reference(
    request: pytest.FixtureRequest,
    synthetic: SyntheticSite,
    tmp_path_factory: pytest.TempPathFactory,
) -> Reference:
    kind = request.param
    tmp = tmp_path_factory.mktemp(f"crash-reference-{kind}")
    sources = sources_file(tmp, synthetic.base, PAGES)
    with fresh_database(kind, tmp) as url:
        done = run_cli(["crawl", "synthetic"], url, sources, tmp, **SETTINGS)
        assert done.returncode == 0, done.stdout + done.stderr
        expected, lonely, _ = read(url)
    assert len(expected["articles"]) == PAGES
    assert not any(lonely.values())
    return Reference(kind, sources, expected)


# One test per kill point, so that the kill points share the test workers.
@pytest.mark.parametrize(("reference", "seed"), KILLS, indirect=["reference"])
def test_a_crawl_killed_anywhere_and_run_again_leaves_the_archive_whole(
    reference: Reference, synthetic: SyntheticSite, seed: int, tmp_path: Path
) -> None:
    kill_at = random.Random(seed).randint(3, PAGES)  # noqa: S311 -- reproducible kill points
    sources = reference.sources
    with fresh_database(reference.kind, tmp_path) as url:
        served = kill_after(synthetic, kill_at, url, sources, tmp_path)
        survived, _, _ = read(url)
        # What the kill left: complete WARC records readable, no link to a cut one.
        links_after_kill, problems = capture_problems(url, tmp_path / "warc")
        assert not problems, problems
        again = run_cli(["crawl", "synthetic"], url, sources, tmp_path, **SETTINGS)
        assert again.returncode == 0, again.stdout + again.stderr
        state, lonely, runs = read(url)
        links, problems = capture_problems(url, tmp_path / "warc")
        assert not problems, problems
        assert links == PAGES  # every article linked to its capture in the end
    assert not any(lonely.values()), lonely
    assert state == reference.state, f"the archive differs after a kill at page {served}"
    killed, resumed = runs
    assert killed.outcome == "crashed"  # closed by the next crawl: its process is gone
    assert resumed.outcome == "ok"
    figures = {
        "seed": seed,
        "killed after pages served": served,
        "articles stored before the kill": len(survived["articles"]),
        "capture links before the kill, all to complete records": links_after_kill,
        "articles compared": len(state["articles"]),
        "stories compared": len(state["stories"]),
        "flag matches compared": sum(len(m) for m in state["matches"].values()),
        "identical": True,
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"crash-{reference.kind}-seed-{seed}.json").write_text(
        json.dumps(figures, indent=2) + "\n"
    )
