"""Shared fixtures: the archive on SQLite and PostgreSQL, a loopback web server."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from pipeline.writer import ArchiveWriter
from spiders.middlewares.replay import content_type, snapshot_path
from tests.loopback import LoopbackServer

pytest_plugins = ["tests.corpus", "tests.brokers", "tests.file_order", "pytester"]

# pytest-xdist's workers start with COLUMNS=80 and LINES=24 set (execnet sets them).
# The CLI takes a set COLUMNS as a terminal's width and would cut its tables to 80
# columns, where tests read its output as a pipe gives it (140 columns).
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)

FIXTURES = Path(__file__).parent / "fixtures"
WEB = FIXTURES / "web"
REPO = Path(__file__).parent.parent
PG_ENV = "DEPORTWATCH_TEST_DATABASE_URL"


def _postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL not tested: set {PG_ENV} (e.g. postgresql://postgres@127.0.0.1/test)"
        )
    return url


@contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """An empty database: a SQLite file in ``directory``, or a PostgreSQL schema of
    its own (dropped afterwards) so tests never see each other's rows."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'archive.db'}"
        return
    base = make_url(_postgres_url())
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = base.update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind; PostgreSQL gets a schema of its own per test."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The schema as the real Alembic migrations make it."""
    eng = make_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def writer(engine: Engine) -> Iterator[ArchiveWriter]:
    """The pipeline stages' writer, in batches of one item: each item is
    committed before the test looks."""
    archive_writer = ArchiveWriter(engine, batch_items=1)
    yield archive_writer
    archive_writer.close()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with make_sessionmaker(engine)() as s:
        yield s


class SiteHandler(SimpleHTTPRequestHandler):
    """Serves DIR/site/<path> with the snapshot layout's rules (index files, queries).

    ``site.delays[path] = 5`` answers that path five seconds late (a slow or hung site).
    ``site.fail(path, 503, 503)`` makes the next requests of a path answer those
    statuses first; every request is logged with its time in ``site.requests``.
    """

    site: LoopbackSite

    def do_GET(self) -> None:
        self.site.requests.append((self.path, time.monotonic()))
        time.sleep(self.site.delays.get(self.path, 0))
        target = self.site.redirects.get(self.path)
        if target is not None:
            self.send_response(301)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        scripted = self.site.failures.get(self.path)
        if scripted:
            self.send_response(scripted.pop(0))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = snapshot_path(self.site.root, f"http://site{self.path}")
        if path is None:
            self.send_error(404)
            return
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.site.etags and self.headers.get("If-None-Match") == etag:
            self.site.not_modified.append(self.path)
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        if self.site.etags:
            self.send_header("ETag", etag)
        self.send_header("Content-Type", content_type(path))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class LoopbackSite:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, float]] = []
        self.failures: dict[str, list[int]] = {}
        self.etags = False  # answer conditional GETs with ETags and 304s
        self.not_modified: list[str] = []  # paths answered 304
        self.redirects: dict[str, str] = {}  # path -> Location of a 301
        self.delays: dict[str, float] = {}  # path -> seconds before the answer
        handler = type("Handler", (SiteHandler,), {"site": self})
        self.server = LoopbackServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(self, path: str, *statuses: int) -> None:
        self.failures[path] = list(statuses)

    def times(self, path: str) -> list[float]:
        return [t for p, t in self.requests if p == path]

    def write(self, path: str, content: str | bytes) -> None:
        """Put a file on the site at URL path ``path`` (``/feed.xml``, ``/a/``)."""
        target = self.root / "site" / path.lstrip("/")
        if path.endswith("/"):
            target = target / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[LoopbackSite]:
    """A real HTTP server on 127.0.0.1 serving files the test writes."""
    loopback = LoopbackSite(tmp_path / "www")
    loopback.thread.start()
    yield loopback
    loopback.server.shutdown()
    loopback.server.server_close()


class WebhookReceiver:
    """A loopback webhook for alerts: keeps every JSON body POSTed to it.

    ``receiver.statuses = [500]`` answers the next posts with those statuses
    first (a target that is down), then 200.
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, object]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.messages.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = LoopbackServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The apprise URL of this receiver."""
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()
