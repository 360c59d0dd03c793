"""The HTML pages: search, flagged stories, an article, sources, figures, the API index."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from deportwatch.archive.dates import parse_since
from deportwatch.archive.filters import LANGUAGES, known_categories, known_sources
from deportwatch.archive.show import FRAME_DIMENSIONS
from deportwatch.web.chart import line_chart
from deportwatch.web.deps import (
    MAX_ID,
    PAGE_SIZE,
    PageDep,
    SearchDep,
    SearchParams,
    SessionDep,
    SettingsDep,
)
from deportwatch.web.render import marked
from deportwatch.web.views import (
    NotFoundError,
    article_view,
    capture_view,
    figures_view,
    search_page,
    sources_view,
)
from service.queue import waiting_crawls

router = APIRouter(default_response_class=HTMLResponse, include_in_schema=False)


def _render(request: Request, name: str, **context: Any) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context)


def _page_url(request: Request, page: int) -> str:
    return str(request.url.include_query_params(page=page))


@router.get("/")
def search_view(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    params: SearchDep,
    page: PageDep = 1,
) -> HTMLResponse:
    filters = params.filters(session, settings)
    results = search_page(session, filters, page, PAGE_SIZE, stories=not params.all_copies)
    return _render(
        request,
        "search.html",
        params=params,
        results=results,
        sources=known_sources(session, settings),
        categories=known_categories(settings),
        languages=LANGUAGES,
        previous_url=_page_url(request, page - 1) if page > 1 else None,
        next_url=_page_url(request, page + 1) if results.has_more else None,
    )


@router.get("/flagged")
def flagged_view(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    category: Annotated[str | None, Query(max_length=64)] = None,
    page: PageDep = 1,
) -> HTMLResponse:
    chosen = (category or "").strip()
    params = SearchParams(
        q=None,
        flagged=True,
        category=(chosen,) if chosen else (),
        source=(),
        lang=(),
        since=None,
        until=None,
        all_copies=False,
    )
    results = search_page(session, params.filters(session, settings), page, PAGE_SIZE)
    return _render(
        request,
        "flagged.html",
        results=results,
        category=chosen,
        categories=known_categories(settings),
        previous_url=_page_url(request, page - 1) if page > 1 else None,
        next_url=_page_url(request, page + 1) if results.has_more else None,
    )


@router.get("/articles/{article_id}")
def article_page(
    request: Request, session: SessionDep, article_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> HTMLResponse:
    try:
        record = article_view(session, article_id)
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    # Only matches that counted are marked in the text; vetoed ones are listed as evidence.
    spans = {
        field: [
            (m["start"], m["end"])
            for m in record["matches"]
            if m["field"] == field and m["verdict"] != "vetoed"
        ]
        for field in ("title", "text")
    }
    return _render(
        request,
        "article.html",
        article=record,
        frame_dimensions=FRAME_DIMENSIONS,
        title=marked(record["title"] or "(untitled)", spans["title"]),
        body=marked(record["text"] or "", spans["text"]),
    )


# The captured page's frame: nothing runs (sandbox without allow-scripts, no
# script source), nothing is requested from anywhere (default-src 'none'),
# only inline styles apply, and only this view may frame it.
CAPTURE_FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; sandbox; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)
# The page around it: the view's usual policy, plus framing its own capture.
CAPTURE_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@router.get("/articles/{article_id}/capture")
def capture_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    article_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> HTMLResponse:
    try:
        record, _ = capture_view(session, settings, article_id)
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    response = _render(request, "capture.html", article=record, capture=record["capture"])
    response.headers["Content-Security-Policy"] = CAPTURE_PAGE_CSP
    return response


@router.get("/articles/{article_id}/capture/page")
def capture_frame(
    session: SessionDep,
    settings: SettingsDep,
    article_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> HTMLResponse:
    try:
        _, html = capture_view(session, settings, article_id)
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    return HTMLResponse(
        html,
        headers={"Content-Security-Policy": CAPTURE_FRAME_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


@router.get("/sources")
def sources_page(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    return _render(
        request,
        "sources.html",
        sources=sources_view(session, settings),
        queue=waiting_crawls(settings),
    )


@router.get("/figures")
def figures_page(
    request: Request,
    session: SessionDep,
    metric: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    chosen = (metric or "").strip() or None
    since_text = (since or "").strip()
    since_day = parse_since(since_text).date() if since_text else None
    records, series = figures_view(session, chosen, since_day)
    title = "Children of War counters over time"
    return _render(
        request,
        "figures.html",
        records=records,
        chart=line_chart(series, title),
        chart_title=title,
        metric=chosen,
        since=since_text,
    )


@router.get("/api")
def api_index(request: Request) -> HTMLResponse:
    schema = request.app.openapi()
    endpoints = [
        (path, operation.get("summary", ""), operation.get("description", ""))
        for path, methods in schema["paths"].items()
        for operation in methods.values()
    ]
    return _render(request, "api.html", endpoints=endpoints)
