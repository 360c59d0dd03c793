"""The schema as migrated, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from db.engine import make_engine
from db.migrate import current_revision, head_revision, upgrade
from db.models import Base, CrawlRun
from db.repository.runs import (
    LOST_RUN,
    RunCounts,
    close_abandoned_runs,
    close_lost_runs,
    ensure_source,
    finish_run,
    last_runs,
    start_run,
)
from db.search import SEARCH_INDEX_NAMES


def test_migrations_match_the_models(engine: Engine) -> None:
    def described_by_models(name: str | None, *_: object) -> bool:
        return name not in SEARCH_INDEX_NAMES  # made by migration 0007, not the models

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": described_by_models})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_sqlite_pragmas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(f"sqlite:///{tmp_path / 'sub' / 'a.db'}")
    with eng.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    eng.dispose()


def test_times_round_trip_as_aware_utc(session: Session) -> None:
    source = ensure_source(session, "s", "feed")
    run = start_run(session, source.id)
    kyiv_time = datetime(2023, 9, 13, 14, 5, tzinfo=timezone(timedelta(hours=3)))
    run.started_at = kyiv_time
    session.commit()
    session.expire_all()
    loaded = session.get_one(CrawlRun, run.id)
    assert loaded.started_at == datetime(2023, 9, 13, 11, 5, tzinfo=UTC)
    assert loaded.started_at.tzinfo is UTC


def test_naive_datetimes_are_refused(session: Session) -> None:
    source = ensure_source(session, "s", "feed")
    run = start_run(session, source.id)
    run.finished_at = datetime(2023, 1, 1)  # noqa: DTZ001
    with pytest.raises(Exception, match="naive datetime"):
        session.commit()


def test_crawl_run_lifecycle(session: Session) -> None:
    source = ensure_source(session, "nv-en", "feed")
    first = start_run(session, source.id)
    finish_run(
        session,
        first.id,
        outcome="failed",
        finish_reason="finished",
        counts=RunCounts(pages=1, errors=1),
        error_text="x: HTTP 503",
    )
    second = start_run(session, source.id)
    finish_run(
        session,
        second.id,
        outcome="ok",
        finish_reason="finished",
        counts=RunCounts(pages=4, new=2),
        error_text=None,
    )
    session.commit()
    runs = last_runs(session)
    assert list(runs) == ["nv-en"]
    assert runs["nv-en"].id == second.id
    assert (runs["nv-en"].outcome, runs["nv-en"].articles_new, runs["nv-en"].pages) == ("ok", 2, 4)
    assert runs["nv-en"].finished_at is not None


@pytest.fixture
def zombie() -> Iterator[int]:
    """The pid of a child that has ended and is not reaped yet, as a crawl
    orphaned by a killed worker is until whoever adopted it reaps it."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    ended = os.pidfd_open(pid)
    select.select([ended], [], [])  # readable once the child has exited
    os.close(ended)
    assert Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    yield pid
    os.waitpid(pid, 0)


def test_runs_of_ended_processes_are_closed_and_live_ones_kept(
    session: Session, zombie: int
) -> None:
    source = ensure_source(session, "nv-en", "feed")
    live, ended, lost = (start_run(session, source.id) for _ in range(3))
    ended.pid = zombie  # on this machine, its crawl process ended without a word
    lost.pid = zombie
    session.commit()
    assert set(close_abandoned_runs(session)) == {ended.id, lost.id}
    session.commit()
    assert (ended.outcome, live.outcome) == ("crashed", "running")
    assert "ended without recording how the run ended" in (ended.error_text or "")
    # The queue's worker, holding the source's lock, closes a run lost with its worker.
    lost.outcome = "running"
    lost.pid = None  # whose process is unknown: another machine's
    session.commit()
    assert close_lost_runs(session, source.id) == [lost.id]
    assert (lost.error_text or "").startswith(LOST_RUN)
    assert live.outcome == "running"  # this test's own process runs it


def test_source_row_follows_the_config(session: Session) -> None:
    ensure_source(session, "nv-en", "feed", enabled=True)
    row = ensure_source(session, "nv-en", "feed", enabled=False)
    session.commit()
    assert row.enabled is False
