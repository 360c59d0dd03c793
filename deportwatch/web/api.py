"""The JSON API: the same records as ``deportwatch search``/``show --format json``, over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from deportwatch.archive.dates import parse_since
from deportwatch.web.deps import MAX_ID, PageDep, SearchDep, SessionDep, SettingsDep
from deportwatch.web.views import (
    NotFoundError,
    article_view,
    figures_view,
    search_page,
    sources_view,
)

router = APIRouter(prefix="/api", tags=["api"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such article."}}
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {"description": 'Invalid parameters: {"error": "...", "status": 400}.'}
}


@router.get("/search", summary="Search the archive", responses=BAD_REQUEST)
def api_search(
    session: SessionDep,
    settings: SettingsDep,
    params: SearchDep,
    page: PageDep = 1,
    per_page: Annotated[int, Query(ge=1, le=100, description="Rows per page.")] = 20,
) -> dict[str, Any]:
    """Ranked hits, one per story unless ``all_copies``; each row as ``search --format json``."""
    filters = params.filters(session, settings)
    return search_page(session, filters, page, per_page, stories=not params.all_copies).record()


@router.get("/articles/{article_id}", summary="One article", responses=NOT_FOUND)
def api_article(
    session: SessionDep, article_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> dict[str, Any]:
    """Metadata, flag matches, the story's other members, versions and their diffs."""
    try:
        return article_view(session, article_id)
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/sources", summary="Source health and recent runs")
def api_sources(session: SessionDep, settings: SettingsDep) -> list[dict[str, Any]]:
    """Each configured source's health (as ``status --format json``) and its last runs."""
    return sources_view(session, settings)


@router.get("/figures", summary="Published figures", responses=BAD_REQUEST)
def api_figures(
    session: SessionDep,
    metric: Annotated[str | None, Query(max_length=64, description="deported, returned…")] = None,
    since: Annotated[str | None, Query(max_length=40, description="2023-01-01 or 90d.")] = None,
) -> list[dict[str, object]]:
    """The Children of War counters, one record per reading, oldest first (aggregates only)."""
    since_day = parse_since(since).date() if since else None
    return figures_view(session, metric, since_day)[0]
