"""Dates as users type them on the command line."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from deportwatch.config.errors import UsageError

_RELATIVE = re.compile(r"^(\d+)([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``2023-09-27`` (midnight UTC), an ISO timestamp, or ``12h`` / ``7d`` / ``2w`` ago."""
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"date {text!r} not understood (use 2023-09-27, 2023-09-27T14:05+03:00 or 7d)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
