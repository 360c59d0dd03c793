"""Publication dates, in the forms the watched sites write them, to UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dateparser

KYIV = ZoneInfo("Europe/Kyiv")
EARLIEST = datetime(1991, 1, 1, tzinfo=UTC)
_LANGUAGES = ["uk", "ru", "en"]
# A byline glued in front of the date: "Автор — П'ятниця, 29 серпня 2025, 13:04".
_PREFIX = re.compile(r"^.*?\s[—–-]\s(?=\S)")


def _aware(value: datetime, local: ZoneInfo) -> datetime:
    return value.replace(tzinfo=local) if value.tzinfo is None else value


def parse_date(text: str, local: ZoneInfo = KYIV, now: datetime | None = None) -> datetime | None:
    """A date string as UTC, or ``None`` when it is unreadable or implausible.

    ISO 8601 takes the fast path; anything else (genitive month names, weekday
    prefixes, 12-hour clocks, ``dd.mm.yyyy``) goes to dateparser. Times without
    an offset are ``local`` (Kyiv) time. Dates before 1991 or more than a day in
    the future are refused: they are a parsing accident, not a publication date.
    """
    text = " ".join(text.split())
    if not text:
        return None
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        settings = {"DATE_ORDER": "DMY", "PREFER_DAY_OF_MONTH": "first"}
        for candidate in (text, _PREFIX.sub("", text, count=1)):
            parsed = dateparser.parse(candidate, languages=_LANGUAGES, settings=settings)
            if parsed is not None:
                break
    if parsed is None:
        return None
    result = _aware(parsed, local).astimezone(UTC)
    now = now or datetime.now(UTC)
    if result < EARLIEST or result > now + timedelta(days=1):
        return None
    return result
