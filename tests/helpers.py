"""Small builders shared by tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Request, XmlResponse

from pipeline.items import ArticleItem, DateCandidate
from spiders.middlewares.replay import snapshot_path
from tests.conftest import REPO, WEB
from tests.forked import Forked, run_forked

FETCHED = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
DEPORTWATCH = str(Path(sys.executable).parent / "deportwatch")


def snapshot_response(url: str, path: Path | None = None) -> HtmlResponse | XmlResponse:
    """A response for ``url`` built from its file in tests/fixtures/web."""
    file = path or snapshot_path(WEB, url)
    assert file is not None, f"no snapshot for {url}"
    cls = XmlResponse if file.suffix == ".xml" else HtmlResponse
    return cls(url=url, body=file.read_bytes(), encoding="utf-8", request=Request(url))


def article_item(**overrides: object) -> ArticleItem:
    values: dict[str, object] = {
        "source": "kyiv-independent",
        "url": "https://kyivindependent.com/a-story/?utm_source=rss",
        "final_url": "https://kyivindependent.com/a-story/?utm_source=rss",
        "title": "  Russia deported   children ",
        "text": "Russia deported children from occupied Kherson Oblast.\n\nOfficials said so.",
        "fetched_at": FETCHED,
        "date_candidates": [DateCandidate("page-meta", "2023-04-07T18:37:00+03:00")],
        "source_languages": ("en",),
    }
    values.update(overrides)
    return ArticleItem(**values)  # type: ignore[arg-type]


def cli_env(database_url: str, sources: Path, tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a test's deportwatch process; ``settings`` override DEPORTWATCH_*."""
    return (
        os.environ
        | {
            "DEPORTWATCH_DATABASE_URL": database_url,
            "DEPORTWATCH_SOURCES": str(sources),
            "DEPORTWATCH_KEYWORDS": str(REPO / "keywords.toml"),
            "DEPORTWATCH_LOG_DIR": str(tmp_path / "logs"),
            "DEPORTWATCH_SPOOL_DIR": str(tmp_path / "spool"),
            "DEPORTWATCH_WARC_DIR": str(tmp_path / "warc"),
            "DEPORTWATCH_DOWNLOAD_DELAY": "0",
            "DEPORTWATCH_RETRY_TIMES": "1",
            "DEPORTWATCH_RETRY_BACKOFF": "0.05",
            "DEPORTWATCH_DOWNLOAD_TIMEOUT": "10",
            "COLUMNS": "200",
        }
        | {f"DEPORTWATCH_{name.upper()}": value for name, value in settings.items()}
    )


def run_cli(
    args: list[str],
    database_url: str,
    sources: Path,
    tmp_path: Path,
    **settings: str,
) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own (forked: see tests/forked.py);
    ``settings`` override DEPORTWATCH_* values."""
    return run_command(args, cli_env(database_url, sources, tmp_path, **settings), tmp_path)


def run_command(
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    *,
    prefix: Sequence[str] = (),
    before: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``deportwatch ARGS`` forked from this process, ``before`` run in the child
    first; or, with DEPORTWATCH_TEST_EXEC=1, the installed executable under
    ``prefix`` (a command that does what ``before`` does, for a new process)."""
    if os.environ.get("DEPORTWATCH_TEST_EXEC"):
        return subprocess.run(
            [*prefix, DEPORTWATCH, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=cwd,
            check=False,
        )
    return run_forked(args, env, cwd, timeout=120, before=before)


def start_command(
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    *,
    output: Path | None = None,
    session: bool = False,
) -> subprocess.Popen[bytes] | Forked:
    """``deportwatch ARGS`` in the background, its stdout and stderr into
    ``output`` (or discarded), in a session and process group of its own if
    ``session``: forked from this process, or, with DEPORTWATCH_TEST_EXEC=1,
    the installed executable."""
    if not os.environ.get("DEPORTWATCH_TEST_EXEC"):
        return Forked(args, env, cwd, output=output, session=session)
    with open(output or os.devnull, "wb") as out:
        return subprocess.Popen(
            [DEPORTWATCH, *args],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=session,
        )


def feed(base: str, entries: list[tuple[str, str, str]]) -> str:
    items = "".join(
        f"<item><title>{title}</title><link>{base}{path}</link><guid>{path}</guid>"
        f"<pubDate>{date}</pubDate></item>"
        for path, title, date in entries
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Return once ``condition()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServedView:
    """``deportwatch serve`` in a subprocess on a free loopback port; ``prefix`` runs
    it through another command (one that drops privileges, say)."""

    def __init__(self, database_url: str, tmp_path: Path, prefix: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "serve.log"
        env = cli_env(database_url, REPO / "sources.toml", tmp_path)
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*prefix, DEPORTWATCH, "serve", "--port", str(self.port)],
                env=env,
                cwd=tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.base + "/static/style.css", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"serve did not answer within 30 s:\n{self.log.read_text()}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def head(self, path: str) -> tuple[int, Message, bytes]:
        """A HEAD request: status, headers, and whatever body came (there should be none)."""
        request = urllib.request.Request(self.base + path, method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()

    def stop(self) -> int:
        """SIGTERM, as a container stop sends; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)
