"""Evidence packages: the archived captures of some articles as one WACZ file.

A WACZ (the web-archiving community's package format, read by ReplayWeb.page
and pywb) is a ZIP holding:

- ``archive/evidence.warc.gz``: each capture's WARC record, copied byte for
  byte from the crawl's files (every record keeps its own digests and date);
- ``indexes/index.cdx``: the CDXJ index of those records (cdxj-indexer, the
  indexer the ``wacz`` tool itself uses);
- ``pages/pages.jsonl``: one page per article, at its capture's time;
- ``evidence/articles.json``: what the archive knows of each article (title,
  URLs, published, first seen, flags, story, versions, whether the source
  still has it), with where each capture lies in the package;
- ``datapackage.json`` listing every file with its SHA-256 and size, and
  ``datapackage-digest.json`` with the hash of that list.

WARCs and the index are stored uncompressed in the ZIP, as the format asks,
so a replay tool can seek into them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdxj_indexer.main import CDXJIndexer
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db.models import Article
from deportwatch.archive.captures import CaptureRef, capture_ref, warc_path
from deportwatch.archive.show import removal_note
from deportwatch.config.errors import DeportwatchError, UsageError

WACZ_VERSION = "1.1.1"
WARC_NAME = "evidence.warc.gz"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class NothingToExport(DeportwatchError):
    """No article matched, or none of those that did has a capture."""


@dataclass(frozen=True)
class ExportSummary:
    articles: int
    captures: int
    missing: int  # articles without any capture (captured before capture existed, or off)
    bytes: int


def select_articles(
    session: Session,
    ids: Sequence[int] = (),
    story: int | None = None,
    flagged: bool = False,
    since: datetime | None = None,
) -> list[Article]:
    """The articles an evidence export is asked for, oldest first."""
    if not ids and story is None and not flagged:
        raise UsageError("say which articles: IDs, --story ID or --flagged")
    query = select(Article).options(selectinload(Article.versions), selectinload(Article.source))
    if ids:
        query = query.where(Article.id.in_(list(ids)))
    if story is not None:
        query = query.where(Article.cluster_id == story)
    if flagged:
        query = query.where(Article.flagged.is_(True))
    if since is not None:
        query = query.where(Article.first_seen_at >= since)
    found = list(session.scalars(query.order_by(Article.id)))
    missing = sorted(set(ids) - {a.id for a in found})
    if missing:
        raise UsageError(f"no article {', '.join(map(str, missing))} in the archive")
    return found


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


class _Packer:
    """Copies records into one WARC file, each once, remembering where each went."""

    def __init__(self, warc_dir: Path, out: io.BufferedWriter) -> None:
        self.warc_dir = warc_dir
        self.out = out
        self.placed: dict[tuple[str, int], int] = {}

    def add(self, ref: CaptureRef) -> dict[str, Any]:
        key = (ref.file, ref.offset)
        if key not in self.placed:
            with warc_path(self.warc_dir, ref).open("rb") as source:
                source.seek(ref.offset)
                record = source.read(ref.length)
            if len(record) != ref.length:
                raise DeportwatchError(f"capture {ref.file} at {ref.offset} is cut short")
            self.placed[key] = self.out.tell()
            self.out.write(record)
        return {
            "warc": f"archive/{WARC_NAME}",
            "offset": self.placed[key],
            "length": ref.length,
            "digest": ref.digest,
            "captured_at": _iso(ref.captured_at),
            "original_file": ref.file,
        }


def _article_entry(article: Article, packer: _Packer) -> tuple[dict[str, Any], int]:
    captures = 0
    ref = capture_ref(article)
    entry: dict[str, Any] = {
        "id": article.id,
        "story": article.cluster_id,
        "source": article.source.name,
        "title": article.title,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "final_url": article.final_url,
        "published_at": _iso(article.published_at),
        "first_seen_at": _iso(article.first_seen_at),
        "flagged": article.flagged,
        "flag_categories": (article.flag_categories or "").split(",")
        if article.flag_categories
        else [],
        "flag_score": article.flag_score,
        "content_hash": article.content_hash,
        "source_state": article.source_state,
        "verified_at": _iso(article.verified_at),
        "removed_at": _iso(article.removed_at),
        "note": removal_note(article),
        "capture": packer.add(ref) if ref else None,
        "versions": [],
    }
    captures += ref is not None
    for version in article.versions:
        version_ref = capture_ref(version)
        captures += version_ref is not None
        entry["versions"].append(
            {
                "title": version.title,
                "content_hash": version.content_hash,
                "seen_from": _iso(version.seen_from),
                "seen_until": _iso(version.seen_until),
                "capture": packer.add(version_ref) if version_ref else None,
            }
        )
    return entry, captures


def _pages(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    pages = [{"format": "json-pages-1.0", "id": "pages", "title": "deportwatch evidence"}]
    for entry in entries:
        captured = [entry["capture"]] + [v["capture"] for v in entry["versions"]]
        for number, capture in enumerate(c for c in captured if c):
            pages.append(
                {
                    "id": f"article-{entry['id']}-{number}",
                    "url": entry["final_url"] or entry["url"],
                    "ts": capture["captured_at"],
                    "title": entry["title"],
                }
            )
    return pages


def _cdx(warc: Path) -> bytes:
    text = io.StringIO()
    CDXJIndexer(text, [str(warc)], sort=True, filename=WARC_NAME).process_all()
    return text.getvalue().encode("utf-8")


def export_wacz(
    session: Session, warc_dir: Path, articles: list[Article], output: Path
) -> ExportSummary:
    """Write ``articles``' captures and manifest to ``output`` (it appears only when complete)."""
    with tempfile.TemporaryDirectory() as scratch:
        warc = Path(scratch) / WARC_NAME
        entries = []
        captures = missing = 0
        with warc.open("wb") as out:
            packer = _Packer(warc_dir, out)
            for article in articles:
                entry, count = _article_entry(article, packer)
                entries.append(entry)
                captures += count
                missing += count == 0
        if not packer.placed:
            raise NothingToExport(
                f"none of the {len(articles)} articles has an archived capture "
                "(they were stored before capture began, or with DEPORTWATCH_CAPTURE=false)"
            )
        files: list[tuple[str, bytes | Path, int]] = [
            (f"archive/{WARC_NAME}", warc, zipfile.ZIP_STORED),
            ("indexes/index.cdx", _cdx(warc), zipfile.ZIP_STORED),
            (
                "pages/pages.jsonl",
                "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in _pages(entries)).encode(),
                zipfile.ZIP_DEFLATED,
            ),
            (
                "evidence/articles.json",
                json.dumps(
                    {"exported_at": _iso(datetime.now(UTC)), "articles": entries},
                    ensure_ascii=False,
                    indent=2,
                ).encode(),
                zipfile.ZIP_DEFLATED,
            ),
        ]
        partial = output.with_name(f".{output.name}.part")
        try:
            _write_zip(partial, files)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    return ExportSummary(len(articles), captures, missing, output.stat().st_size)


def _digest(data: bytes | Path) -> tuple[str, int]:
    if isinstance(data, Path):
        with data.open("rb") as stream:
            digest = hashlib.file_digest(stream, "sha256")
        return f"sha256:{digest.hexdigest()}", data.stat().st_size
    return f"sha256:{hashlib.sha256(data).hexdigest()}", len(data)


def _write_zip(path: Path, files: list[tuple[str, bytes | Path, int]]) -> None:
    resources = []
    with zipfile.ZipFile(path, "w") as package:
        for name, data, compression in files:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = compression
            with package.open(info, "w") as member:
                if isinstance(data, Path):
                    with data.open("rb") as stream:
                        while chunk := stream.read(1 << 20):
                            member.write(chunk)
                else:
                    member.write(data)
            digest, size = _digest(data)
            resources.append(
                {"name": os.path.basename(name), "path": name, "hash": digest, "bytes": size}
            )
        datapackage = json.dumps(
            {
                "profile": "data-package",
                "title": "deportwatch evidence",
                "resources": resources,
                "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "wacz_version": WACZ_VERSION,
                "software": "deportwatch",
            },
            indent=2,
        ).encode()
        package.writestr(zipfile.ZipInfo("datapackage.json", ZIP_TIME), datapackage)
        package_digest = json.dumps(
            {"path": "datapackage.json", "hash": _digest(datapackage)[0]}, indent=2
        ).encode()
        package.writestr(zipfile.ZipInfo("datapackage-digest.json", ZIP_TIME), package_digest)
