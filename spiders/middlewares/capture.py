"""Evidence capture: every page the crawl keeps, as fetched, in WARC files (ISO 28500).

A stored body text is not evidence of what a page said; the response as it
came (status, headers, bytes), with its time and a SHA-256 digest, is. Two
downloader middlewares do the work, because what is kept must be the bytes the
server sent, yet only once the crawl has accepted them:

- ``RawCaptureMiddleware`` (595, before decompression) notes the status,
  headers and body as they arrived;
- ``WarcCaptureMiddleware`` (585, after decompression, which refuses a body
  over the size limit) writes them as a request and a response record, and
  puts the record's place (file, offset, length, digest, time) in the
  request's meta, where the spider copies it into the item. The record is
  flushed before the response goes on, so no item can name a record that is
  not yet in the file.

A response whose payload was captured before at the same URL becomes a
``revisit`` record, and the item points at the first, full record. Non-2xx
answers, types that are not text (a PDF, an image), and anything of the
``counters`` kind (the Children of War page shows missing children's names and
photos) are never written. If the disk fills, capture stops for the rest of
the crawl with one error on the run, and the articles are still stored.

Files are gzipped per record (each record one gzip member, as replay tools
expect) and a new file is begun once one reaches the size limit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from io import BytesIO
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import urlsplit

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response, TextResponse
from warcio.statusandheaders import StatusAndHeaders
from warcio.utils import Digester
from warcio.warcwriter import WARCWriter

from spiders.evidence import CAPTURE_KEY

log = logging.getLogger(__name__)

RAW_KEY = "_deportwatch_raw"  # request meta: the response as it arrived
INDEX_FILE = "captured.tsv"  # URL, payload digest -> the full record (for revisits)
PRIVATE_KINDS = frozenset({"counters"})
# Scrapy hands the body de-chunked; the header would make a replay tool
# de-chunk it again.
_DROPPED_HEADERS = frozenset({b"transfer-encoding"})


class Sha256WARCWriter(WARCWriter):  # type: ignore[misc]
    """warcio's writer with SHA-256 block and payload digests (it defaults to SHA-1)."""

    @staticmethod
    def _create_digester() -> Digester:
        return Digester("sha256")


def payload_digest(body: bytes) -> str:
    """A body's digest as a WARC record states it (``sha256:`` and base32)."""
    digester = Digester("sha256")
    digester.update(body)
    return str(digester)


@dataclass(frozen=True)
class RawResponse:
    status: int
    protocol: str
    headers: list[tuple[str, str]]
    body: bytes


_INDEXES: dict[Path, dict[tuple[str, str], dict[str, Any]]] = {}


class CaptureFailed(OSError):
    """The WARC file could not be written (a full disk, most often)."""


class WarcStore:
    """Writes records to rotating ``.warc.gz`` files in ``directory``."""

    def __init__(self, directory: Path, max_bytes: int, prefix: str) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.prefix = prefix
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._seq = 0
        self._index: dict[tuple[str, str], dict[str, Any]] | None = None

    def _open(self) -> tuple[Path, IO[bytes]]:
        if self._file is not None and self._path is not None:
            if self._file.tell() < self.max_bytes:
                return self._path, self._file
            self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
        self._seq += 1
        self._path = self.directory / f"{self.prefix}-{stamp}-{os.getpid()}-{self._seq:05d}.warc.gz"
        # Unbuffered: each record reaches the file when written, and a write
        # the disk refuses fails there, not at a later flush or close.
        self._file = self._path.open("xb", buffering=0)
        return self._path, self._file

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._file.fileno())
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = self._path = None

    def _known(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Full records captured before, by URL and payload digest (read once per
        process and folder: the crawls of one process share it)."""
        if self._index is None:
            self._index = _INDEXES.get(self.directory.resolve())
        if self._index is None:
            self._index = _INDEXES[self.directory.resolve()] = {}
            path = self.directory / INDEX_FILE
            if path.is_file():
                with path.open(encoding="utf-8") as lines:
                    for line in lines:
                        fields = line.rstrip("\n").split("\t")
                        if len(fields) != 6 or not line.endswith("\n"):
                            continue  # a line cut short by a crash
                        url, digest, date, file, offset, length = fields
                        self._index[(url, digest)] = _ref(
                            file, int(offset), int(length), digest, date
                        )
        return self._index

    def capture(
        self,
        url: str,
        raw: RawResponse,
        request_headers: list[tuple[str, str]],
        method: str = "GET",
    ) -> dict[str, Any]:
        """Write ``raw`` (and the request that asked for it); returns the place of
        the full record holding its payload (an earlier one, for a revisit)."""
        digest = payload_digest(raw.body)
        date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        earlier = self._known().get((url, digest))
        try:
            path, out = self._open()
        except OSError as exc:
            raise CaptureFailed(exc.errno, f"{self.directory}: {exc.strerror or exc}") from exc
        offset = out.tell()
        writer = Sha256WARCWriter(out, gzip=True)
        http_headers = StatusAndHeaders(
            f"{raw.status} {_phrase(raw.status)}", raw.headers, protocol=raw.protocol
        )
        warc_headers = {"WARC-Date": date}
        if earlier is None:
            record = writer.create_warc_record(
                url,
                "response",
                payload=BytesIO(raw.body),
                length=len(raw.body),
                http_headers=http_headers,
                warc_headers_dict={**warc_headers, "WARC-Payload-Digest": digest},
            )
        else:
            record = writer.create_revisit_record(
                url,
                digest,
                url,
                earlier["captured_at"],
                http_headers=http_headers,
                warc_headers_dict=warc_headers,
            )
        request_record = writer.create_warc_record(
            url,
            "request",
            payload=BytesIO(b""),
            length=0,
            http_headers=_request_headers(url, method, request_headers),
            warc_headers_dict=dict(warc_headers),
        )
        request_record.rec_headers.add_header(
            "WARC-Concurrent-To", record.rec_headers.get_header("WARC-Record-ID")
        )
        try:
            writer.write_record(record)
            length = out.tell() - offset
            writer.write_record(request_record)
        except OSError as exc:
            # Leave no partial record behind: cut the file back to where it was.
            with contextlib.suppress(OSError):
                out.truncate(offset)
            self.close()
            raise CaptureFailed(exc.errno, f"{path}: {exc.strerror or exc}") from exc
        if earlier is not None:
            return {**earlier, "revisit_at": date}
        ref = _ref(path.name, offset, length, digest, date)
        self._remember(url, ref)
        return ref

    def _remember(self, url: str, ref: dict[str, Any]) -> None:
        self._known()[(url, ref["digest"])] = ref
        line = "\t".join(
            [
                url,
                ref["digest"],
                ref["captured_at"],
                ref["file"],
                str(ref["offset"]),
                str(ref["length"]),
            ]
        )
        # A lost line only costs a second full copy next time, never a wrong link.
        with contextlib.suppress(OSError), (self.directory / INDEX_FILE).open("a") as index:
            index.write(line + "\n")


def _ref(file: str, offset: int, length: int, digest: str, date: str) -> dict[str, Any]:
    return {"file": file, "offset": offset, "length": length, "digest": digest, "captured_at": date}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _request_headers(url: str, method: str, sent: list[tuple[str, str]]) -> StatusAndHeaders:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return StatusAndHeaders(
        f"{method} {target} HTTP/1.1",
        [("Host", parts.netloc), *sent],
        protocol="HTTP/1.1",
        is_http_request=True,
    )


def scrapy_request_headers(request: Request) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, values in request.headers.items()
        for value in values
    ]


def _capturable(response: Response) -> bool:
    """A page, feed or sitemap the crawl may keep: 2xx and a text-like type."""
    if not 200 <= response.status < 300 or not response.body:
        return False
    ctype = (response.headers.get(b"Content-Type") or b"").decode("latin-1")
    mime = ctype.split(";")[0].strip().lower()
    if not mime:
        return isinstance(response, TextResponse)  # what the spiders would read as text
    return (
        mime.startswith("text/")
        or "xml" in mime
        or "json" in mime
        or mime in ("application/gzip", "application/x-gzip")
    )


def _private(spider: Spider | None) -> bool:
    source = getattr(spider, "source", None)
    return getattr(source, "kind", None) in PRIVATE_KINDS


class RawCaptureMiddleware:
    """Notes a response as it arrived, before it is decompressed or re-encoded."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        if not crawler.settings.get("DEPORTWATCH_WARC_DIR"):
            raise NotConfigured
        return cls(crawler)

    def process_response(
        self, request: Request, response: Response, spider: Any = None
    ) -> Response:
        if _private(self.crawler.spider) or not _capturable(response):
            return response
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, values in response.headers.items()
            if name.lower() not in _DROPPED_HEADERS
            for value in values
        ]
        protocol = response.protocol or "HTTP/1.1"
        request.meta[RAW_KEY] = RawResponse(response.status, protocol, headers, response.body)
        return response


class WarcCaptureMiddleware:
    """Writes the response noted by ``RawCaptureMiddleware`` once it was accepted."""

    def __init__(self, crawler: Crawler, store: WarcStore) -> None:
        self.crawler = crawler
        self.store = store
        self.stopped: str | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        directory = crawler.settings.get("DEPORTWATCH_WARC_DIR")
        if not directory:
            raise NotConfigured
        prefix = f"deportwatch-{socket.gethostname()}"
        store = WarcStore(
            Path(directory), crawler.settings.getint("DEPORTWATCH_WARC_MAX_BYTES"), prefix
        )
        middleware = cls(crawler, store)
        crawler.signals.connect(middleware.spider_closed, signals.spider_closed)
        return middleware

    def spider_closed(self) -> None:
        self.store.close()

    def process_response(
        self, request: Request, response: Response, spider: Any = None
    ) -> Response:
        raw: RawResponse | None = request.meta.pop(RAW_KEY, None)
        if raw is None or self.stopped is not None:
            return response
        try:
            request.meta[CAPTURE_KEY] = self.store.capture(
                response.url, raw, scrapy_request_headers(request), request.method
            )
        except CaptureFailed as exc:
            # One clear error, on the run; the crawl goes on storing articles
            # without captures, and the next crawl captures again.
            self.stopped = str(exc)
            message = f"evidence capture stopped: {exc}"
            record_error = getattr(self.crawler.spider, "record_error", None)
            if record_error is not None:
                record_error(response.url, message)
            else:
                log.error(message)
        return response
