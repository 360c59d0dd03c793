"""Counter readings: the Children of War figures as they were read over time."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import (
    CounterReading,
    SourceRow,
)


class ReadingLike(Protocol):
    """One counter reading as a spider found it (pipeline.items.CounterItem)."""

    metric: str
    label: str
    value: int
    as_of: date
    fetched_at: datetime
    url: str


def store_reading(session: Session, source_id: int, reading: ReadingLike) -> bool:
    """Store a counter reading unless the same value for the same date is stored.

    Returns True when a row was added. The unique constraint makes this safe
    against a concurrent writer storing the same reading.
    """
    same = select(CounterReading.id).where(
        CounterReading.source_id == source_id,
        CounterReading.metric == reading.metric,
        CounterReading.as_of == reading.as_of,
        CounterReading.value == reading.value,
    )
    if session.scalar(same) is not None:
        return False
    row = CounterReading(
        source_id=source_id,
        metric=reading.metric,
        label=reading.label,
        value=reading.value,
        as_of=reading.as_of,
        fetched_at=reading.fetched_at,
        url=reading.url,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def counter_series(
    session: Session,
    metric: str | None = None,
    since: date | None = None,
    source: str | None = None,
) -> list[tuple[CounterReading, str]]:
    """Counter readings with their source's name, oldest first, optionally filtered."""
    query = select(CounterReading, SourceRow.name).join(
        SourceRow, SourceRow.id == CounterReading.source_id
    )
    if metric is not None:
        query = query.where(CounterReading.metric == metric)
    if since is not None:
        query = query.where(CounterReading.as_of >= since)
    if source is not None:
        query = query.where(SourceRow.name == source)
    query = query.order_by(CounterReading.as_of, CounterReading.metric, CounterReading.id)
    return [(row, name) for row, name in session.execute(query)]


def counter_metrics(session: Session) -> list[str]:
    """Every metric that has at least one reading."""
    return list(session.scalars(select(CounterReading.metric).distinct().order_by("metric")))
