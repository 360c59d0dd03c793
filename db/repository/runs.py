"""Sources, crawl runs and what a crawl remembers of each page (fetch state, seen, checked)."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import (
    Article,
    CrawlRun,
    FetchState,
    SourceRow,
)
from db.types import utcnow


def ensure_source(session: Session, name: str, kind: str, enabled: bool = True) -> SourceRow:
    """The source's row, created or brought in line with the sources file."""
    row = session.scalar(select(SourceRow).where(SourceRow.name == name))
    if row is None:
        row = SourceRow(name=name, kind=kind, enabled=enabled)
        session.add(row)
        session.flush()
    else:
        row.kind, row.enabled = kind, enabled
    return row


def start_run(session: Session, source_id: int) -> CrawlRun:
    """A new ``running`` row, owned by this process (``take_run`` hands it on)."""
    run = CrawlRun(
        source_id=source_id,
        outcome="running",
        pages=0,
        articles_new=0,
        articles_updated=0,
        articles_unchanged=0,
        errors=0,
    )
    take_run(run)
    session.add(run)
    session.flush()
    return run


def take_run(run: CrawlRun) -> None:
    """Mark ``run`` as this process's: the crawl that opened it, or the child
    process the scheduler opened it for."""
    run.pid, run.host = os.getpid(), socket.gethostname()


def process_alive(pid: int) -> bool:
    """Whether ``pid`` still runs. A zombie does not: it has ended and waits to
    be reaped, by its parent or, for a crawl orphaned with its worker, by
    whatever process adopted it, which may take a while or never happen (a
    container's first process need not reap). Its run is over."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False  # gone since os.kill
    except OSError:
        return True  # no /proc to ask: it exists
    # "pid (comm) state ...": the name may hold spaces and parentheses.
    return stat.rpartition(")")[2].split()[0] != "Z"


def close_abandoned_runs(session: Session) -> list[int]:
    """Close the runs left ``running`` by crawl processes of this machine that no
    longer exist (killed: ``kill -9``, the machine lost power): they are
    ``crashed``. Runs of other machines, and of live processes, are left alone."""
    runs = session.scalars(
        select(CrawlRun).where(
            CrawlRun.outcome == "running",
            CrawlRun.host == socket.gethostname(),
            CrawlRun.pid.is_not(None),
        )
    )
    closed = []
    for run in runs:
        assert run.pid is not None
        if process_alive(run.pid):
            continue
        run.outcome = "crashed"
        run.finished_at = utcnow()
        run.error_text = (
            f"the crawl process (pid {run.pid}) ended without recording how the run ended "
            "(killed?); what it had stored is kept, the rest is fetched again"
        )
        closed.append(run.id)
    return closed


@dataclass(frozen=True)
class KnownEntry:
    feed_meta_hash: str | None
    first_seen_at: datetime
    etag: str | None = None
    last_modified: str | None = None
    checked_at: datetime | None = None


def known_entries(session: Session, canonical_urls: list[str]) -> dict[str, KnownEntry]:
    """Which of these URLs are archived, with what feed metadata: one indexed query."""
    if not canonical_urls:
        return {}
    rows = session.execute(
        select(
            Article.canonical_url,
            Article.feed_meta_hash,
            Article.first_seen_at,
            Article.etag,
            Article.last_modified,
            Article.checked_at,
        ).where(Article.canonical_url.in_(canonical_urls))
    )
    return {
        url: KnownEntry(meta, seen, etag, lm, checked)
        for url, meta, seen, etag, lm, checked in rows
    }


def mark_seen(session: Session, canonical_urls: list[str], seen_at: datetime) -> None:
    """Entries still listed by their feed but not fetched again: seen all the same."""
    if canonical_urls:
        session.execute(
            update(Article)
            .where(Article.canonical_url.in_(canonical_urls), Article.last_seen_at < seen_at)
            .values(last_seen_at=seen_at)
        )


def mark_checked(session: Session, canonical_urls: list[str], checked_at: datetime) -> None:
    """Pages asked for again that answered 304: checked, unchanged."""
    if canonical_urls:
        session.execute(
            update(Article)
            .where(Article.canonical_url.in_(canonical_urls))
            .values(checked_at=checked_at)
        )


def fetch_state(session: Session, url: str) -> FetchState | None:
    return session.get(FetchState, url)


def save_fetch_state(
    session: Session,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    body_hash: str | None,
    entry_urls: list[str],
    checked_at: datetime,
    update_seconds: int | None = None,
) -> None:
    state = session.get(FetchState, url) or FetchState(url=url)
    state.etag, state.last_modified, state.body_hash = etag, last_modified, body_hash
    state.entry_urls = json.dumps(entry_urls)
    state.checked_at = checked_at
    state.update_seconds = update_seconds
    session.add(state)


@dataclass(frozen=True)
class RunCounts:
    pages: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0
    flagged: int = 0
    duplicate: int = 0
    undated: int = 0
    readings: int = 0


def finish_run(
    session: Session,
    run_id: int,
    *,
    outcome: str,
    finish_reason: str | None,
    counts: RunCounts,
    error_text: str | None,
    finished_at: datetime | None = None,
) -> None:
    run = session.get_one(CrawlRun, run_id)
    run.finished_at = finished_at or utcnow()
    run.outcome = outcome
    run.finish_reason = finish_reason
    run.pages = counts.pages
    run.articles_new = counts.new
    run.articles_updated = counts.updated
    run.articles_unchanged = counts.unchanged
    run.errors = counts.errors
    run.articles_flagged = counts.flagged
    run.articles_duplicate = counts.duplicate
    run.articles_undated = counts.undated
    run.readings_new = counts.readings
    run.error_text = error_text


def last_runs(session: Session) -> dict[str, CrawlRun]:
    """The newest crawl run of every source, by source name."""
    newest = (
        select(CrawlRun.source_id, func.max(CrawlRun.id).label("run_id"))
        .group_by(CrawlRun.source_id)
        .subquery()
    )
    rows = session.execute(
        select(SourceRow.name, CrawlRun)
        .join(newest, newest.c.run_id == CrawlRun.id)
        .join(SourceRow, SourceRow.id == CrawlRun.source_id)
    )
    return {name: run for name, run in rows}


def runs_by_id(session: Session, run_ids: list[int]) -> list[tuple[str, CrawlRun]]:
    rows = session.execute(
        select(SourceRow.name, CrawlRun)
        .join(SourceRow, SourceRow.id == CrawlRun.source_id)
        .where(CrawlRun.id.in_(run_ids))
        .order_by(CrawlRun.id)
    )
    return [(name, run) for name, run in rows]


LOST_RUN = "its crawl was lost with its worker (killed, or its machine gone)"


def close_lost_runs(session: Session, source_id: int) -> list[int]:
    """Close the source's runs left ``running`` by crawls that no longer run.

    Only for a process that holds the source's crawl lock (service/locks.py):
    then no crawl of the source runs anywhere but in a live process of this
    machine, so any other run still ``running`` lost its crawl."""
    runs = session.scalars(
        select(CrawlRun).where(CrawlRun.source_id == source_id, CrawlRun.outcome == "running")
    )
    closed = []
    for run in runs:
        here = run.host == socket.gethostname() and run.pid is not None
        if here and run.pid is not None and process_alive(run.pid):
            continue
        run.outcome = "crashed"
        run.finished_at = utcnow()
        run.error_text = f"{LOST_RUN}; what it had stored is kept, the rest is fetched again"
        closed.append(run.id)
    return closed


def newest_run_ids(session: Session) -> dict[str, int]:
    """The id of every source's newest run, by source name."""
    rows = session.execute(
        select(SourceRow.name, func.max(CrawlRun.id))
        .join(CrawlRun, CrawlRun.source_id == SourceRow.id)
        .group_by(SourceRow.name)
    )
    return {name: run_id for name, run_id in rows}


def crawled_since(session: Session, source_id: int, run_id: int | None) -> int | None:
    """A run of the source newer than ``run_id`` that was not lost: its id, or None."""
    query = select(func.max(CrawlRun.id)).where(
        CrawlRun.source_id == source_id,
        ~((CrawlRun.outcome == "crashed") & CrawlRun.error_text.startswith(LOST_RUN)),
    )
    if run_id is not None:
        query = query.where(CrawlRun.id > run_id)
    found: int | None = session.scalar(query)
    return found


def running_crawls(session: Session) -> list[tuple[str, CrawlRun]]:
    """Runs still ``running``: where (host, pid) and since when, oldest first."""
    rows = session.execute(
        select(SourceRow.name, CrawlRun)
        .join(SourceRow, SourceRow.id == CrawlRun.source_id)
        .where(CrawlRun.outcome == "running")
        .order_by(CrawlRun.id)
    )
    return [(name, run) for name, run in rows]
