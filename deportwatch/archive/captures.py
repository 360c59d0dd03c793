"""Reading the evidence WARC records an article links to (see spiders/middlewares/capture.py)."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import lxml.etree
import lxml.html
from lxml_html_clean import Cleaner
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


def ref_from_record(capture: dict[str, Any]) -> CaptureRef:
    """A capture as ``show --format json`` gives it, as a reference to read."""
    return CaptureRef(
        file=str(capture["file"]),
        offset=int(capture["offset"]),
        length=int(capture["length"]),
        digest=str(capture["digest"]),
        captured_at=None,
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


def static_html(page: CapturedPage) -> str:
    """A captured page as inert HTML: no scripts, handlers, frames, objects, forms'
    actions or base URL (lxml's cleaner). What is left is shown in a sandboxed
    frame under a CSP that forbids every request out, so a hostile page can
    neither run nor call home."""
    charset = None
    if "charset=" in page.content_type.lower():
        charset = page.content_type.lower().split("charset=", 1)[1].split(";")[0].strip()
    parser = lxml.html.HTMLParser(encoding=charset) if charset else None
    try:
        document = lxml.html.document_fromstring(page.decoded, parser=parser)
    except (ValueError, lxml.etree.ParserError, LookupError):
        return "<p>(the capture is not an HTML page)</p>"
    for base in document.iter("base"):
        base.drop_tree()
    cleaned = _CLEANER.clean_html(document)
    return str(lxml.html.tostring(cleaned, encoding="unicode", doctype="<!DOCTYPE html>"))


_CLEANER = Cleaner(
    scripts=True,
    javascript=True,
    comments=True,
    style=False,  # the page's look is part of what it said; styles cannot load anything here
    links=True,
    meta=True,
    page_structure=False,
    processing_instructions=True,
    embedded=True,
    frames=True,
    forms=True,
    annoying_tags=True,
    remove_unknown_tags=False,
    safe_attrs_only=True,
)
