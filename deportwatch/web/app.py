"""The web application: routes, error pages, security headers, and a database it cannot write.

Read-only by construction: the engine is opened read-only by the database
itself (``db.engine.make_readonly_engine``) and every route answers GET (and
HEAD, its headers alone) only.
Errors are one readable message (a page, or ``{"error": ...}`` under /api);
a stack trace never leaves the server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.engine import ArchiveUnreadableError, make_readonly_engine, make_sessionmaker
from deportwatch import __version__
from deportwatch.config.errors import UsageError
from deportwatch.config.settings import Settings
from deportwatch.web import api, feeds, pages
from deportwatch.web.render import environment

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("deportwatch.web")

# Scraped pages are hostile: even if something slipped past escaping, the
# browser runs no inline script, loads nothing from elsewhere and is not framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Following a link to an outlet must not tell it what was being researched.
    "Referrer-Policy": "no-referrer",
}
UNAVAILABLE = (
    "The archive cannot be read: it may not exist yet (run a crawl first) or its "
    "database may be down. The server log has the details."
)


def _error(request: Request, status: int, message: str) -> Response:
    path = request.url.path
    if path.startswith("/api"):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    if path.startswith(("/feeds", "/static")):
        return PlainTextResponse(message, status_code=status)
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"] if p not in ("query", "path"))
        parts.append(f"{name}: {error['msg']}" if name else str(error["msg"]))
    return "bad request: " + "; ".join(parts)


def _add_error_handlers(app: FastAPI) -> None:
    async def bad_parameters(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _error(request, 400, _validation_message(exc))

    async def usage(request: Request, exc: Exception) -> Response:
        return _error(request, 400, str(exc))

    async def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(request, exc.status_code, str(exc.detail))

    async def database(request: Request, exc: Exception) -> Response:
        log.error("archive unreadable on %s: %s", request.url.path, exc)
        return _error(request, 503, UNAVAILABLE)

    app.add_exception_handler(RequestValidationError, bad_parameters)
    app.add_exception_handler(UsageError, usage)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(SQLAlchemyError, database)
    app.add_exception_handler(ArchiveUnreadableError, database)


class HeadAsGet:
    """HEAD answered as GET without the body (RFC 9110 9.3.2), on every route.

    Uptime monitors and ``curl -I`` ask HEAD; FastAPI's routes answer only the
    methods they declare, and declaring HEAD on each would list every operation
    twice in the OpenAPI schema.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def create_app(settings: Settings) -> FastAPI:
    engine = make_readonly_engine(settings.web_database_url or settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="deportwatch",
        version=__version__,
        summary="Read-only access to the deportwatch archive: search, articles, sources, figures.",
        lifespan=lifespan,
        # The interactive docs load their scripts from a CDN; the view must work offline.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.templates = Jinja2Templates(env=environment())
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(pages.router)
    app.include_router(feeds.router)
    app.include_router(api.router)
    _add_error_handlers(app)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            response = await call_next(request)
        except Exception:
            # Never a traceback to the reader: log it, answer one line.
            log.exception("unexpected error on %s", request.url.path)
            response = _error(request, 500, "internal error: the server log has the details")
        for name, value in SECURITY_HEADERS.items():
            # A route may set a stricter or narrower one (an archived capture's frame).
            if name not in response.headers:
                response.headers[name] = value
        return response

    app.add_middleware(HeadAsGet)
    return app
