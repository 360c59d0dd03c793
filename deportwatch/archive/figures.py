"""The counter time series (``deportwatch figures``): readings as plain records."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from db.repository.readings import counter_metrics, counter_series
from deportwatch.config.errors import UsageError

FIELDS = ("as_of", "metric", "value", "source", "label", "fetched_at", "url")


def figure_records(
    session: Session, metric: str | None = None, since: date | None = None
) -> list[dict[str, object]]:
    """One record per reading (as-of date, metric, source), oldest first.

    An unknown metric is a usage error naming the metrics the archive holds.
    """
    if metric is not None:
        known = counter_metrics(session)
        if metric not in known:
            choices = ", ".join(known) or "none yet: crawl a counters source first"
            raise UsageError(f"unknown metric '{metric}' (known: {choices})")
    return [
        {
            "as_of": reading.as_of.isoformat(),
            "metric": reading.metric,
            "value": reading.value,
            "source": source,
            "label": reading.label,
            "fetched_at": reading.fetched_at.isoformat(),
            "url": reading.url,
        }
        for reading, source in counter_series(session, metric, since)
    ]
