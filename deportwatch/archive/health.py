"""Source health: is each watched source still producing what it should?

Read from ``crawl_runs`` and the archived items, in the spirit of Spidermon's
monitors: consecutive failures, runs that found nothing, extraction quietly
broken (items without a date or a body), and silence longer than the source's
usual rhythm. A source never crawled is ``pending``, not unhealthy, so a new
deployment does not start out failing its health check.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import desc, func, select
from sqlalchemy.orm import Session

from db.models import Article, CounterReading, CrawlRun, SourceRow
from db.types import utcnow
from deportwatch.config.sources import Source

RECENT_RUNS = 10  # runs looked at for failure and empty-run streaks
RECENT_ITEMS = 50  # articles looked at for missing dates and bodies
MAX_FAILURES = 3  # consecutive failed runs before a source is unhealthy
MAX_EMPTY_RUNS = 3  # consecutive runs that listed nothing at all
MAX_UNDATED_SHARE = 0.5
MAX_BODYLESS_SHARE = 0.2
MIN_ITEMS_FOR_SHARES = 10  # below this, shares are noise
STALE_FACTOR = 4  # silence longer than this many usual gaps is suspicious
MIN_STALE = timedelta(days=2)  # ... but never alarm on less than this
# A crawl that read nothing (failed), ran past its timeout, or whose process
# died before it could record its end (crashed).
FAILED_OUTCOMES = frozenset({"failed", "timeout", "crashed"})


@dataclass
class SourceHealth:
    name: str
    enabled: bool
    state: str  # healthy | unhealthy | pending | disabled
    problems: list[str] = field(default_factory=list)
    last_run_at: datetime | None = None
    last_outcome: str | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    empty_runs: int = 0
    undated_share: float | None = None
    bodyless_share: float | None = None
    last_new_item_at: datetime | None = None
    usual_gap_hours: float | None = None

    def record(self) -> dict[str, object]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data


def _runs(session: Session, source_id: int) -> list[CrawlRun]:
    query = (
        select(CrawlRun)
        .where(CrawlRun.source_id == source_id, CrawlRun.outcome != "running")
        .order_by(desc(CrawlRun.id))
        .limit(RECENT_RUNS)
    )
    return list(session.scalars(query))


def _streak(runs: list[CrawlRun], matches: Callable[[CrawlRun], bool]) -> int:
    """How many of the newest runs in a row match."""
    return next((i for i, run in enumerate(runs) if not matches(run)), len(runs))


def _found_nothing(run: CrawlRun) -> bool:
    listed = run.articles_new + run.articles_updated + run.articles_unchanged
    return run.outcome in ("ok", "partial") and listed == 0 and run.readings_new == 0


def _item_times(session: Session, source: Source, source_id: int) -> list[datetime]:
    """When new items appeared, newest first (articles, or readings for counters)."""
    if source.kind == "counters":
        column = func.max(CounterReading.fetched_at)
        query = (
            select(column)
            .where(CounterReading.source_id == source_id)
            .group_by(CounterReading.as_of)
            .order_by(desc(column))
        )
    else:
        query = (
            select(Article.first_seen_at)
            .where(Article.source_id == source_id)
            .order_by(desc(Article.first_seen_at))
        )
    return list(session.scalars(query.limit(RECENT_ITEMS)))


def source_health(session: Session, source: Source, now: datetime | None = None) -> SourceHealth:
    now = now or utcnow()
    health = SourceHealth(source.name, source.enabled, "healthy")
    row = session.scalar(select(SourceRow).where(SourceRow.name == source.name))
    runs = _runs(session, row.id) if row is not None else []
    if not runs:
        health.state = "pending" if source.enabled else "disabled"
        return health
    health.last_run_at, health.last_outcome = runs[0].started_at, runs[0].outcome
    successes = [r for r in runs if r.outcome in ("ok", "partial")]
    health.last_success_at = successes[0].started_at if successes else None
    health.consecutive_failures = _streak(runs, lambda r: r.outcome in FAILED_OUTCOMES)
    health.empty_runs = _streak(runs, _found_nothing)
    assert row is not None

    if source.kind != "counters":
        recent = (
            select(Article.date_origin, Article.text)
            .where(Article.source_id == row.id)
            .order_by(desc(Article.first_seen_at))
            .limit(RECENT_ITEMS)
        )
        items = session.execute(recent).all()
        if len(items) >= MIN_ITEMS_FOR_SHARES:
            health.undated_share = sum(o == "fetch-time" for o, _ in items) / len(items)
            health.bodyless_share = sum(not t for _, t in items) / len(items)

    times = _item_times(session, source, row.id)
    health.last_new_item_at = times[0] if times else None
    gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(times)]
    if len(gaps) >= 3:
        health.usual_gap_hours = round(statistics.median(gaps) / 3600, 2)

    problems = health.problems
    if health.consecutive_failures >= MAX_FAILURES:
        problems.append(f"{health.consecutive_failures} crawls in a row failed")
    if health.empty_runs >= MAX_EMPTY_RUNS:
        problems.append(f"{health.empty_runs} crawls in a row found no items")
    if health.undated_share is not None and health.undated_share > MAX_UNDATED_SHARE:
        problems.append(f"{health.undated_share:.0%} of recent items have no readable date")
    if health.bodyless_share is not None and health.bodyless_share > MAX_BODYLESS_SHARE:
        problems.append(f"{health.bodyless_share:.0%} of recent items have no text")
    if health.usual_gap_hours is not None and health.last_new_item_at is not None:
        limit = max(timedelta(hours=health.usual_gap_hours * STALE_FACTOR), MIN_STALE)
        silent = now - health.last_new_item_at
        if silent > limit:
            problems.append(
                f"nothing new for {silent.days} days (usually every {health.usual_gap_hours:g} h)"
            )
    if not source.enabled:
        health.state = "disabled"
    elif problems:
        health.state = "unhealthy"
    return health


def archive_health(
    session: Session, sources: tuple[Source, ...], now: datetime | None = None
) -> list[SourceHealth]:
    return [source_health(session, source, now) for source in sources]
