"""Search filters from what a user typed, checked the same way for the CLI and the web view.

A filter that names something unknown (a source, a category, a language) or a
date that cannot be read is a ``UsageError`` naming the valid choices: exit 2
on the command line, 400 on the web.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import SourceRow
from db.query import parse_query
from db.search import Filters
from deportwatch.archive.dates import parse_since
from deportwatch.config.errors import UsageError
from deportwatch.config.keywords import load_taxonomy
from deportwatch.config.settings import Settings
from deportwatch.config.sources import load_sources

LANGUAGES = ("uk", "ru", "en")


def parse_until(text: str) -> datetime:
    moment = parse_since(text)
    # "--until 2023-09-30" means to the end of that day, not its first instant.
    return moment + timedelta(days=1) if len(text.strip()) == 10 else moment


def known_sources(session: Session, settings: Settings) -> list[str]:
    """Sources in sources.toml and sources that have rows in the archive (maybe removed since)."""
    known = {s.name for s in load_sources(settings.sources).sources}
    known |= set(session.scalars(select(SourceRow.name)))
    return sorted(known)


def known_categories(settings: Settings) -> list[str]:
    return [c.id for c in load_taxonomy(settings.keywords).categories]


def _check(kind: str, given: Sequence[str], known: Sequence[str]) -> None:
    for value in given:
        if value not in known:
            raise UsageError(f"unknown {kind} '{value}' (known: {', '.join(known)})")


def build_filters(
    session: Session,
    settings: Settings,
    *,
    query: str | None = None,
    flagged: bool = False,
    categories: Sequence[str] = (),
    sources: Sequence[str] = (),
    languages: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
) -> Filters:
    """Filters for ``db.search``; every value is checked before any query runs."""
    if sources:
        _check("source", sources, known_sources(session, settings))
    if categories:
        _check("category", categories, known_categories(settings))
    _check("language", languages, LANGUAGES)
    return Filters(
        query=parse_query(query) if query and query.strip() else None,
        flagged=flagged,
        categories=tuple(categories),
        sources=tuple(sources),
        languages=tuple(languages),
        since=parse_since(since) if since else None,
        until=parse_until(until) if until else None,
    )
