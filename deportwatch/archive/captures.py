"""Reading the evidence WARC records an article links to (see spiders/middlewares/capture.py)."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator

from deportwatch.config.errors import DeportwatchError


class CaptureMissing(DeportwatchError):
    """The WARC record an article links to cannot be read."""


@dataclass(frozen=True)
class CaptureRef:
    file: str
    offset: int
    length: int
    digest: str
    captured_at: datetime | None


@dataclass(frozen=True)
class CapturedPage:
    url: str
    date: str  # WARC-Date
    digest: str  # WARC-Payload-Digest
    status: int
    headers: list[tuple[str, str]]
    content_type: str
    body: bytes  # the payload as the server sent it (still content-encoded, if it was)
    decoded: bytes  # the payload with any Content-Encoding undone


def capture_ref(row: object) -> CaptureRef | None:
    """An article's or a version's capture, from its columns (None if it has none)."""
    file = getattr(row, "capture_file", None)
    if not file:
        return None
    return CaptureRef(
        file=file,
        offset=int(getattr(row, "capture_offset", 0) or 0),
        length=int(getattr(row, "capture_length", 0) or 0),
        digest=str(getattr(row, "capture_digest", "") or ""),
        captured_at=getattr(row, "captured_at", None),
    )


def warc_path(warc_dir: Path, ref: CaptureRef) -> Path:
    # The name comes from the archive; it must not lead out of the WARC folder.
    path = (warc_dir / ref.file).resolve()
    if path.parent != warc_dir.resolve():
        raise CaptureMissing(f"capture {ref.file!r} is not a WARC file of {warc_dir}")
    return path


def read_capture(warc_dir: Path, ref: CaptureRef) -> CapturedPage:
    """The response record at ``ref``, read and checked against its digest."""
    path = warc_path(warc_dir, ref)
    try:
        with path.open("rb") as stream:
            stream.seek(ref.offset)
            for record in ArchiveIterator(stream, check_digests=True):
                if record.rec_type != "response" or record.http_headers is None:
                    break
                return _page(record, record.raw_stream.read())
    except OSError as exc:
        raise CaptureMissing(f"capture {ref.file} cannot be read: {exc.strerror or exc}") from None
    raise CaptureMissing(f"no response record at {ref.file} offset {ref.offset}")


def _page(record: Any, raw: bytes) -> CapturedPage:
    rec_headers = record.rec_headers
    http = record.http_headers
    encoding = (http.get_header("Content-Encoding") or "").lower()
    decoded = raw
    try:
        if encoding in ("gzip", "x-gzip"):
            decoded = gzip.decompress(raw)
        elif encoding == "deflate":
            decoded = zlib.decompress(raw)
    except (OSError, zlib.error):
        decoded = raw
    return CapturedPage(
        url=rec_headers.get_header("WARC-Target-URI"),
        date=rec_headers.get_header("WARC-Date"),
        digest=rec_headers.get_header("WARC-Payload-Digest") or "",
        status=int(http.get_statuscode() or 0),
        headers=list(http.headers),
        content_type=http.get_header("Content-Type") or "",
        body=raw,
        decoded=decoded,
    )
