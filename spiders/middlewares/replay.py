"""Offline crawls: answer every request from recorded responses on disk.

A snapshot directory mirrors URLs as ``DIR/<host>/<path>``. A path ending in
``/`` is stored as ``index.html``, ``index.xml`` or ``index`` inside that
folder; a query string is kept in the file name (``page?p=2``). A URL with no
file answers 404, as a real site would.
"""

from __future__ import annotations

import mimetypes
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.responsetypes import responsetypes

from deportwatch.config.errors import ConfigError

INDEX_NAMES = ("index.html", "index.xml", "index")
SNAPSHOT_FILE = "snapshot.toml"  # optional: taken_at = <when the snapshot was recorded>
_EXTRA_TYPES = {".rss": "application/rss+xml", ".atom": "application/atom+xml"}


def snapshot_path(root: Path, url: str) -> Path | None:
    """The file that answers ``url`` in snapshot directory ``root``, if any.

    A query string the snapshot has no file for is ignored, as real sites
    ignore tracking parameters (``?utm_source=rss``).
    """
    parts = urlsplit(url)
    if parts.query:
        with_query = _lookup(root, parts.hostname, unquote(parts.path) + f"?{parts.query}")
        if with_query is not None:
            return with_query
    return _lookup(root, parts.hostname, unquote(parts.path))


def _lookup(root: Path, hostname: str | None, path: str) -> Path | None:
    relative = path.lstrip("/")
    base = (root / (hostname or "").lower()).resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):  # "../" in a URL never leaves the snapshot
        return None
    if target.is_file() and not path.endswith("/"):
        return target
    if target.is_dir():
        for name in INDEX_NAMES:
            if (target / name).is_file():
                return target / name
    return None


def snapshot_time(root: Path) -> str | None:
    """When the snapshot directory was recorded (ISO 8601), if it says.

    Look-backs ("entries of the last 14 days") are measured from this time in
    an offline crawl, so a snapshot replays the web as it was when recorded.
    """
    meta = root / SNAPSHOT_FILE
    if not meta.is_file():
        return None
    try:
        taken = tomllib.loads(meta.read_text(encoding="utf-8")).get("taken_at")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{meta}: unreadable snapshot description ({exc})") from None
    if isinstance(taken, datetime) and taken.tzinfo is not None:
        return taken.isoformat()
    raise ConfigError(f"{meta}: taken_at must be a date-time with an offset (2023-10-20T09:00Z)")


def content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


class ReplayMiddleware:
    """Downloader middleware that serves requests from a snapshot directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        root = crawler.settings.get("DEPORTWATCH_REPLAY_DIR")
        if not root:
            raise NotConfigured
        return cls(Path(root))

    def process_request(self, request: Request) -> Response:
        path = snapshot_path(self.root, request.url)
        if path is None:
            return Response(request.url, status=404, request=request)
        body = path.read_bytes()
        ctype = "application/gzip" if path.suffix == ".gz" else content_type(path)
        headers = {b"Content-Type": ctype.encode()} if not ctype.endswith("octet-stream") else {}
        cls = responsetypes.from_args(headers=headers, url=request.url, body=body)
        return cls(request.url, status=200, headers=headers, body=body, request=request)
