"""Atom feeds of flagged stories, newest first, for feed readers (all, or one category)."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from db.search import Filters, search
from deportwatch.archive.export import row_record, write_atom
from deportwatch.archive.filters import build_filters
from deportwatch.web.deps import SessionDep, SettingsDep

FEED_STORIES = 50
ATOM_TYPE = "application/atom+xml; charset=utf-8"
router = APIRouter(prefix="/feeds", tags=["feeds"])


def _feed(
    request: Request, session: SessionDep, filters: Filters, title: str, key: str
) -> Response:
    hits = search(session, filters, FEED_STORIES)
    buffer = io.StringIO()
    write_atom(
        (row_record(hit.article) for hit in hits),
        buffer,
        title,
        feed_id=key,
        self_url=str(request.url),
        archive_base=str(request.base_url).rstrip("/"),
    )
    return Response(buffer.getvalue(), media_type=ATOM_TYPE)


@router.get("/flagged.atom", summary="Flagged stories (Atom)")
def flagged_feed(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The newest flagged stories, one entry per story, as an Atom feed."""
    filters = build_filters(session, settings, flagged=True)
    return _feed(request, session, filters, "deportwatch: flagged stories", "flagged")


@router.get("/flagged/{category}.atom", summary="Flagged stories of one category (Atom)")
def category_feed(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    category: Annotated[str, Path(max_length=64)],
) -> Response:
    """The newest stories flagged in ``category`` (e.g. children), as an Atom feed."""
    filters = build_filters(session, settings, flagged=True, categories=[category])
    return _feed(
        request,
        session,
        filters,
        f"deportwatch: flagged stories ({category})",
        f"flagged/{category}",
    )
