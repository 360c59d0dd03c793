"""Source health from the archive's runs and items, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from db.models import Article
from db.repository.runs import RunCounts, ensure_source, finish_run, start_run
from deportwatch.archive.health import source_health
from deportwatch.cli.app import app
from deportwatch.config.sources import Source, parse_sources

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def make_source(name: str = "outlet", enabled: bool = True) -> Source:
    entry = {
        "name": name,
        "kind": "feed",
        "start_urls": ["https://example.org/feed"],
        "languages": ["uk"],
        "enabled": enabled,
    }
    return parse_sources({"source": [entry]}, "t").sources[0]


def add_runs(session: Session, name: str, *runs: tuple[str, int]) -> int:
    """Runs oldest first, each (outcome, articles listed)."""
    source_id = ensure_source(session, name, "feed").id
    for outcome, listed in runs:
        run_id = start_run(session, source_id).id
        counts = RunCounts(pages=1, new=listed)
        finish_run(
            session, run_id, outcome=outcome, finish_reason="x", counts=counts, error_text=None
        )
    session.flush()
    return source_id


def add_articles(
    session: Session,
    source_id: int,
    count: int,
    *,
    every: timedelta = timedelta(hours=6),
    newest: datetime = NOW,
    undated: int = 0,
    bodyless: int = 0,
) -> None:
    for i in range(count):
        seen = newest - every * i
        session.add(
            Article(
                source_id=source_id,
                url=f"https://example.org/{source_id}/{i}",
                canonical_url=f"https://example.org/{source_id}/{i}",
                title=f"Item {i}",
                text="" if i < bodyless else "Text of the item.",
                content_hash=f"{source_id}-{i}",
                date_origin="fetch-time" if i < undated else "page-meta",
                first_seen_at=seen,
                last_seen_at=seen,
            )
        )
    session.flush()


def test_never_crawled_is_pending_and_disabled_is_disabled(session: Session) -> None:
    assert source_health(session, make_source(), NOW).state == "pending"
    assert source_health(session, make_source(enabled=False), NOW).state == "disabled"


def test_a_steady_source_is_healthy(session: Session) -> None:
    source_id = add_runs(session, "outlet", ("ok", 5), ("failed", 0), ("ok", 4))
    add_articles(session, source_id, 20)
    health = source_health(session, make_source(), NOW)
    assert (health.state, health.problems) == ("healthy", [])
    assert health.consecutive_failures == 0
    assert health.usual_gap_hours == 6
    assert health.last_new_item_at == NOW
    assert (health.undated_share, health.bodyless_share) == (0, 0)


def test_failures_in_a_row_make_it_unhealthy(session: Session) -> None:
    add_runs(session, "outlet", ("ok", 5), ("failed", 0), ("failed", 0), ("failed", 0))
    health = source_health(session, make_source(), NOW)
    assert health.state == "unhealthy"
    assert health.problems == ["3 crawls in a row failed"]
    assert health.last_outcome == "failed"


def test_timeouts_and_crashes_count_as_failures(session: Session) -> None:
    add_runs(session, "outlet", ("ok", 5), ("timeout", 0), ("crashed", 0), ("failed", 0))
    health = source_health(session, make_source(), NOW)
    assert health.state == "unhealthy"
    assert health.consecutive_failures == 3


def test_runs_that_find_nothing_make_it_unhealthy(session: Session) -> None:
    add_runs(session, "outlet", ("ok", 5), ("ok", 0), ("ok", 0), ("partial", 0))
    health = source_health(session, make_source(), NOW)
    assert health.problems == ["3 crawls in a row found no items"]


def test_quietly_broken_extraction_makes_it_unhealthy(session: Session) -> None:
    source_id = add_runs(session, "outlet", ("ok", 10))
    add_articles(session, source_id, 10, undated=6, bodyless=3)
    health = source_health(session, make_source(), NOW)
    assert health.problems == [
        "60% of recent items have no readable date",
        "30% of recent items have no text",
    ]


def test_silence_far_beyond_the_usual_rhythm_makes_it_unhealthy(session: Session) -> None:
    source_id = add_runs(session, "outlet", ("ok", 3), ("ok", 0))
    add_articles(session, source_id, 12, every=timedelta(hours=6), newest=NOW - timedelta(days=5))
    health = source_health(session, make_source(), NOW)
    assert health.problems == ["nothing new for 5 days (usually every 6 h)"]


@pytest.mark.usefixtures("engine")
def test_status_command_exit_code_and_json(
    database_url: str, session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(
        "".join(
            f'[[source]]\nname = "{name}"\nkind = "feed"\n'
            f'start_urls = ["https://example.org/{name}"]\nlanguages = ["uk"]\n'
            for name in ("steady", "broken", "fresh")
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("DEPORTWATCH_SOURCES", str(sources))
    add_runs(session, "steady", ("ok", 2))
    add_runs(session, "broken", ("failed", 0), ("failed", 0))
    session.commit()
    runner = CliRunner()

    result = runner.invoke(app, ["status", "--format", "json"])
    assert result.exit_code == 0  # two failures are not yet three
    states = {row["name"]: row["state"] for row in json.loads(result.stdout)}
    assert states == {"steady": "healthy", "broken": "healthy", "fresh": "pending"}

    add_runs(session, "broken", ("failed", 0))
    session.commit()
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "3 crawls in a row failed" in result.stdout
    assert "unhealthy" in result.stdout


def test_status_before_the_first_crawl_is_all_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    result = CliRunner().invoke(app, ["status", "--format", "json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {row["state"] for row in rows} == {"pending", "disabled"}
    assert not (tmp_path / "none.db").exists()  # status never creates an archive
