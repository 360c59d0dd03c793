"""What a spider hands to the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.matcher import FlagResult


@dataclass
class DateCandidate:
    """A publication date as found, before normalization picks and parses one.

    ``value`` is an ISO 8601 string, or the text as the page shows it
    (``"11 June 2019, 11:02"``); naive values are Kyiv local time.
    """

    origin: str  # selector | page-meta | feed | page-text
    value: str


@dataclass
class ArticleItem:
    """One article as extracted from a page (and its feed entry)."""

    source: str
    url: str  # the URL we were led to (feed link), kept as found
    final_url: str  # the URL that answered, after redirects
    title: str
    text: str
    fetched_at: datetime
    page_canonical_url: str | None = None
    feed_guid: str | None = None
    feed_meta_hash: str | None = None
    etag: str | None = None  # the page's validators, for conditional re-checks
    last_modified: str | None = None
    links_to: str | None = None  # the article a short post links to (link preview)
    author: str | None = None
    summary: str | None = None
    date_candidates: list[DateCandidate] = field(default_factory=list)
    source_languages: tuple[str, ...] = ()
    page_language: str | None = None  # <html lang> or og:locale
    details: dict[str, object] | None = None  # kind-specific facts (a post's views, ...)
    # Where the page was archived as fetched (WARC file, offset, length, digest,
    # captured_at); spooled with the item, so a late store still links it.
    capture: dict[str, object] | None = None

    # Filled by the normalize stage.
    canonical_url: str | None = None
    published_at: datetime | None = None
    date_origin: str | None = None
    language: str | None = None
    content_hash: str | None = None

    # Filled by the dedup stage.
    archived_known: bool = False  # the dedup stage looked the item up: archived_id is final
    archived_id: int | None = None  # the archived article this item is (its own row)
    minhash: bytes | None = None
    band_keys: list[int] = field(default_factory=list)
    duplicate_of: int | None = None  # id of the archived article this copies
    similarity: float | None = None
    language_of: int | None = None  # id of the archived article this is a language version of
    language_score: float | None = None

    # Filled by the flag stage.
    flag: FlagResult | None = None


@dataclass
class CounterItem:
    """One labelled total read off a figures page (``counters`` kind).

    Only the number and its label: never anything else from the page.
    """

    source: str
    metric: str  # deported | returned | killed | injured | missing | found | ...
    label: str  # the label as the page words it
    value: int
    as_of: date  # the page's "as of" date, else the fetch day in Kyiv
    fetched_at: datetime
    url: str


Item = ArticleItem | CounterItem
