"""The ``feed`` kind: an RSS or Atom feed, each entry followed to its article page."""

from __future__ import annotations

import calendar
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import feedparser
import scrapy
from parsel import Selector
from scrapy.http import Response

from spiders.base import SourceSpider
from spiders.extract import FeedHints


def _iso(parsed: Any) -> str | None:
    """feedparser's UTC struct_time as ISO 8601."""
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC).isoformat()


def _plain(html: str | None) -> str | None:
    if not html:
        return None
    text = " ".join(Selector(text=f"<div>{html}</div>").xpath("string()").get("").split())
    return text or None


def entry_hints(entry: Any) -> FeedHints:
    """The fields of one feed entry that extraction may fall back on."""
    return FeedHints(
        title=entry.get("title") or None,
        published=_iso(entry.get("published_parsed") or entry.get("updated_parsed")),
        author=entry.get("author") or None,
        summary=_plain(entry.get("summary")),
        guid=entry.get("id") or None,
    )


class FeedSpider(SourceSpider):
    kind = "feed"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.source.start_urls:
            yield scrapy.Request(url, callback=self.parse_feed, errback=self.on_start_error)

    def parse_feed(self, response: Response) -> Iterator[scrapy.Request]:
        # Bytes, never a URL: feedparser would fetch a URL itself, outside Scrapy.
        feed = feedparser.parse(
            response.body,
            response_headers={
                "content-location": response.url,
                "content-type": (response.headers.get("Content-Type") or b"").decode("latin-1"),
            },
            sanitize_html=False,
            resolve_relative_uris=False,
        )
        if not feed.entries:
            self.start_failures += 1
            # feedparser names the format it recognised; none means not a feed at all.
            reason = (
                "feed has no entries"
                if feed.get("version")
                else f"not a readable feed ({feed.get('bozo_exception') or 'unknown format'})"
            )
            self.record_error(response.url, reason)
            return
        for entry in feed.entries[: self.source.max_items]:
            link = entry.get("link")
            if not link:
                self.record_error(
                    response.url, f"feed entry without a link: {entry.get('title')!r}"
                )
                continue
            yield self.article_request(response.urljoin(link), entry_hints(entry))
