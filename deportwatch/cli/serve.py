"""``deportwatch serve``: the read-only web view, served by uvicorn.

The web stack is imported when the command runs, so the other commands do not
pay for it at start-up.
"""

from __future__ import annotations

import signal
import socket
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from db.engine import explain_database_error
from db.migrate import open_archive_readonly
from deportwatch.cli.common import err, reported_errors
from deportwatch.config.errors import DeportwatchError, UsageError
from deportwatch.config.settings import load_settings


def _check_can_listen(host: str, port: int) -> None:
    """Fail with one line before uvicorn would log a traceback-like error and exit."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _note_unreadable_archive(url: str) -> None:
    """One line at start-up when the archive cannot be read as it is; the view
    still starts, since a crawl or ``deportwatch init`` (the container's
    scheduler, say) may make it readable while it runs."""
    try:
        with open_archive_readonly(url):
            return
    except (DeportwatchError, SQLAlchemyError) as exc:
        reason = explain_database_error(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
    err.print(
        f"note: {reason}; the pages answer 503 until it can be read",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default 127.0.0.1: this machine only)."),
    ] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default 8080).")] = None,
) -> None:
    """Serve a read-only web view of the archive: search, flagged stories, an article's
    evidence and versions, source health, figures, Atom feeds and a JSON API.

    It never writes: the database is opened read-only. Listening on 0.0.0.0
    exposes the archive to the network; put it behind a proxy with authentication.

    Example: deportwatch serve --port 8080, then open http://127.0.0.1:8080/
    """
    with reported_errors():
        settings = load_settings()
        host = host or settings.web_host
        port = port or settings.web_port
        _check_can_listen(host, port)
        import uvicorn

        from deportwatch.web.app import create_app

        web_app = create_app(settings)
        _note_unreadable_archive(settings.web_database_url or settings.database_url)
    shown = f"[{host}]" if ":" in host else host
    err.print(
        f"Serving the archive read-only at http://{shown}:{port}/", highlight=False, markup=False
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal
    # to whatever handler was there before it. This one makes that a normal
    # return, so a stopped view exits 0 like ``deportwatch schedule``.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    uvicorn.run(web_app, host=host, port=port, server_header=False, log_level="info")
    err.print("Stopped.", highlight=False)
