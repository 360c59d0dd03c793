"""Pipeline stage 1 — normalize: canonical URL, clean text, one UTC date, language, hash."""

from __future__ import annotations

from datetime import datetime
from typing import Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from scrapy.crawler import Crawler

from pipeline.dates import KYIV, parse_date
from pipeline.items import ArticleItem, Item
from pipeline.language import detect_language
from pipeline.text import clean_line, clean_text, content_hash
from pipeline.urls import canonical_url


def choose_canonical(item: ArticleItem) -> str:
    """The archive key: the page's own canonical link when it is trustworthy.

    Some sites point every page's ``rel=canonical`` at their home page or at
    another host; such a link would merge unrelated articles, so it is used only
    when it names a page (not the root) on the host that served the article.
    """
    served = canonical_url(item.final_url or item.url)
    if item.page_canonical_url:
        declared = canonical_url(item.page_canonical_url)
        same_host = urlsplit(declared).netloc == urlsplit(served).netloc
        if same_host and urlsplit(declared).path not in ("", "/"):
            return declared
    return served


class NormalizePipeline:
    """Turns what a spider found into the fields the archive stores.

    The date is the first candidate that parses, in the order the spider gave
    (selector, page metadata, feed, page text); with none, the fetch time,
    marked as such so users can tell a real publication date from a guess.
    """

    def __init__(self, local_zone: ZoneInfo = KYIV) -> None:
        self.local_zone = local_zone

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(ZoneInfo(crawler.settings.get("DEPORTWATCH_LOCAL_ZONE", "Europe/Kyiv")))

    def process_item(self, item: Item) -> Item:
        if not isinstance(item, ArticleItem):
            return item  # counter readings pass through to their own store stage
        item.title = clean_line(item.title) or ""
        item.author = clean_line(item.author)
        item.summary = clean_line(item.summary)
        item.text = clean_text(item.text)
        item.canonical_url = choose_canonical(item)
        item.published_at, item.date_origin = self._pick_date(item)
        fallback = item.page_language or (
            item.source_languages[0] if len(item.source_languages) == 1 else None
        )
        item.language = detect_language(item.text or item.title, fallback=fallback)
        item.content_hash = content_hash(item.text)
        return item

    def _pick_date(self, item: ArticleItem) -> tuple[datetime, str]:
        for candidate in item.date_candidates:
            parsed = parse_date(candidate.value, self.local_zone, now=item.fetched_at)
            if parsed is not None:
                return parsed, candidate.origin
        return item.fetched_at, "fetch-time"
