"""Search results and exports as records, CSV, JSON lines and Atom.

Exports are written row by row as the database streams them, so a million
articles take no more memory than a hundred.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any, TextIO

from sqlalchemy.engine import Row

from db.models import Article
from db.search import Hit
from db.types import utcnow
from deportwatch.archive.show import category_list, iso_time, match_record, removal_note

SEARCH_FIELDS = [
    "id",
    "cluster_id",
    "story_id",
    "story_languages",
    "source",
    "story_sources",
    "story_size",
    "story_members",
    "title",
    "url",
    "canonical_url",
    "published_at",
    "first_seen_at",
    "language",
    "flagged",
    "flag_categories",
    "flag_score",
    "snippet",
    "rank",
    "matches",
]
EXPORT_FIELDS = [
    "id",
    "cluster_id",
    "story_id",
    "source",
    "title",
    "url",
    "canonical_url",
    "published_at",
    "first_seen_at",
    "last_seen_at",
    "language",
    "flagged",
    "flag_categories",
    "flag_score",
    "author",
    "captured_at",
    "capture_digest",
    "source_note",
    "text",
]
ATOM = "http://www.w3.org/2005/Atom"
# Characters XML 1.0 cannot carry even escaped (C0 controls but tab, LF, CR).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
SUMMARY_CHARS = 600


def hit_record(hit: Hit) -> dict[str, Any]:
    """A search hit with every stored field a user may cite."""
    a = hit.article
    return {
        "id": a.id,
        "cluster_id": a.cluster_id,
        # One story whatever its languages: the id its language versions share.
        "story_id": hit.story_id,
        "story_languages": hit.languages,
        "source": a.source.name,
        "story_sources": hit.story_sources,
        "story_size": hit.story_size,
        "story_members": [
            {"id": m.id, "source": m.source, "url": m.url, "language": m.language}
            for m in hit.members
        ],
        "title": a.title,
        "url": a.url,
        "canonical_url": a.canonical_url,
        "published_at": iso_time(a.published_at),
        "first_seen_at": iso_time(a.first_seen_at),
        "language": a.language,
        "flagged": a.flagged,
        "flag_categories": category_list(a.flagged, a.flag_categories),
        "flag_score": a.flag_score,
        "snippet": hit.snippet,
        "rank": hit.rank,
        "matches": [match_record(m) for m in a.matches],
    }


def row_record(row: Row[Any] | Article) -> dict[str, Any]:
    """An exported article: a row from ``db.search.iter_matches``, or an Article."""
    return {
        "id": row.id,
        "cluster_id": row.cluster_id,
        "story_id": _story_id(row),
        "source": row.source.name if isinstance(row, Article) else row.source_name,
        "title": row.title,
        "url": row.url,
        "canonical_url": row.canonical_url,
        "published_at": iso_time(row.published_at),
        "first_seen_at": iso_time(row.first_seen_at),
        "last_seen_at": iso_time(row.last_seen_at),
        "language": row.language,
        "flagged": row.flagged,
        "flag_categories": category_list(row.flagged, row.flag_categories),
        "flag_score": row.flag_score,
        "author": row.author,
        "captured_at": iso_time(row.captured_at),
        "capture_digest": row.capture_digest,
        "source_note": removal_note(row),
        "text": row.text,
    }


def _story_id(row: Row[Any] | Article) -> int | None:
    if isinstance(row, Article):
        cluster = row.cluster
        group = cluster.language_group_id if cluster is not None else None
        return group if group is not None else row.cluster_id
    return int(row.story_id) if row.story_id is not None else None


def _flat(value: Any) -> Any:
    """A value for one CSV cell: lists joined with ';', nested records as JSON."""
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return json.dumps(value, ensure_ascii=False)
        return ";".join(map(str, value))
    return value


def write_csv(records: Iterable[dict[str, Any]], fields: list[str], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow({k: _flat(v) for k, v in record.items()})
        count += 1
    return count


def write_jsonl(records: Iterable[dict[str, Any]], out: TextIO) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def _xml_text(value: str | None) -> str:
    return _NOT_XML.sub("", value or "")


def _element(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: _xml_text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = _xml_text(text)
    return element


def _atom_entry(record: dict[str, Any], archive_base: str | None) -> str:
    entry = ET.Element("entry")
    _element(entry, "id", f"tag:deportwatch,2023:article/{record['id']}")
    _element(entry, "title", record["title"] or "(untitled)")
    updated = record["last_seen_at"] or record["first_seen_at"]
    _element(entry, "updated", updated)
    if record["published_at"]:
        _element(entry, "published", record["published_at"])
    # Only http(s) links: a hostile feed's javascript: URL never becomes a link.
    if str(record["url"]).startswith(("http://", "https://")):
        _element(entry, "link", href=record["url"], rel="alternate")
    if archive_base is not None:
        _element(entry, "link", href=f"{archive_base}/articles/{record['id']}", rel="related")
    author = _element(entry, "author")
    _element(author, "name", record["source"])
    for category in record["flag_categories"]:
        _element(entry, "category", term=category, label=category)
    text = record["text"] or ""
    summary = text[:SUMMARY_CHARS] + ("…" if len(text) > SUMMARY_CHARS else "")
    _element(entry, "summary", summary, type="text")
    return ET.tostring(entry, encoding="unicode")


def write_atom(
    records: Iterable[dict[str, Any]],
    out: TextIO,
    title: str,
    *,
    feed_id: str = "export",
    self_url: str | None = None,
    archive_base: str | None = None,
) -> int:
    """A valid Atom 1.0 feed of ``records`` (export records), written as they come.

    With ``archive_base`` (the web view's address) each entry also links to its
    archive page.
    """
    head = ET.Element("feed", {"xmlns": ATOM})
    _element(head, "id", f"tag:deportwatch,2023:{feed_id}")
    _element(head, "title", title)
    if self_url is not None:
        _element(head, "link", href=self_url, rel="self")
    _element(head, "updated", utcnow().isoformat())
    _element(_element(head, "author"), "name", "deportwatch")
    _element(head, "generator", "deportwatch")
    opening = ET.tostring(head, encoding="unicode").removesuffix("</feed>")
    out.write('<?xml version="1.0" encoding="utf-8"?>\n' + opening + "\n")
    count = 0
    for record in records:
        out.write(_atom_entry(record, archive_base) + "\n")
        count += 1
    out.write("</feed>\n")
    return count
