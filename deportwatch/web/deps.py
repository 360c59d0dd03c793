"""What every route gets: a read-only session, the settings, and checked search parameters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from db.search import Filters
from deportwatch.archive.filters import build_filters
from deportwatch.config.settings import Settings

PAGE_SIZE = 20
MAX_PAGE = 500
# Ids are 64-bit in PostgreSQL; a larger number is a bad request, not a database error.
MAX_ID = 2**63 - 1


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PageDep = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page of results, from 1.")]


@dataclass(frozen=True)
class SearchParams:
    """The search filters as given in the query string (empty form fields dropped)."""

    q: str | None
    flagged: bool
    category: tuple[str, ...]
    source: tuple[str, ...]
    lang: tuple[str, ...]
    since: str | None
    until: str | None
    all_copies: bool

    def filters(self, session: Session, settings: Settings) -> Filters:
        return build_filters(
            session,
            settings,
            query=self.q,
            flagged=self.flagged,
            categories=self.category,
            sources=self.source,
            languages=self.lang,
            since=self.since,
            until=self.until,
        )

    @property
    def any(self) -> bool:
        return bool(self.q or self.flagged or self.category or self.source or self.lang) or bool(
            self.since or self.until
        )


def _given(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in values or () if v.strip())


def search_params(
    *,
    q: Annotated[
        str | None,
        Query(
            max_length=500,
            description='Words, "exact phrases", OR, -excluded, prefix*. Empty: newest first.',
        ),
    ] = None,
    flagged: Annotated[bool, Query(description="Only flagged articles.")] = False,
    category: Annotated[
        list[str] | None, Query(description="Only flagged in this category (repeatable: any).")
    ] = None,
    source: Annotated[list[str] | None, Query(description="Only this source (repeatable).")] = None,
    lang: Annotated[list[str] | None, Query(description="Only this language: uk, ru, en.")] = None,
    since: Annotated[
        str | None,
        Query(max_length=40, description="Published on or after: 2023-09-27, an ISO time, 7d."),
    ] = None,
    until: Annotated[
        str | None,
        Query(max_length=40, description="Published on or before (a date: its whole day)."),
    ] = None,
    all_copies: Annotated[bool, Query(description="Every article, not one row per story.")] = False,
) -> SearchParams:
    return SearchParams(
        q=(q or "").strip() or None,
        flagged=flagged,
        category=_given(category),
        source=_given(source),
        lang=_given(lang),
        since=(since or "").strip() or None,
        until=(until or "").strip() or None,
        all_copies=all_copies,
    )


SearchDep = Annotated[SearchParams, Depends(search_params)]
