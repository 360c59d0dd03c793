"""The ``feed`` kind: an RSS or Atom feed, each entry followed to its article page."""

from __future__ import annotations

import calendar
import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from xml.sax import SAXParseException

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
    title = entry.get("title") or None
    summary = _plain(entry.get("summary"))
    # The date is left out on purpose: some sites change it on every refresh.
    meta = hashlib.sha256(f"{title or ''}\n{summary or ''}".encode()).hexdigest()
    return FeedHints(
        title=title,
        published=_iso(entry.get("published_parsed") or entry.get("updated_parsed")),
        author=entry.get("author") or None,
        summary=summary,
        guid=entry.get("id") or None,
        meta_hash=meta,
    )


# RSS 1.0 syndication module: how often the publisher says the feed changes.
_PERIOD_SECONDS = {
    "hourly": 3600,
    "daily": 86400,
    "weekly": 7 * 86400,
    "monthly": 30 * 86400,
    "yearly": 365 * 86400,
}


def update_period(channel: Any) -> int | None:
    """Seconds between updates as the feed declares them (``sy:updatePeriod`` divided
    by ``sy:updateFrequency``); ``None`` when it declares nothing usable. Saved
    with the feed's fetch state for the scheduler, which clamps it."""
    period = str(channel.get("sy_updateperiod") or "").strip().lower()
    if period not in _PERIOD_SECONDS:
        return None
    try:
        frequency = max(1, int(str(channel.get("sy_updatefrequency") or "1").strip()))
    except ValueError:
        frequency = 1
    return _PERIOD_SECONDS[period] // frequency


def malformed(feed: Any) -> str | None:
    """Why a feed is not well-formed XML, if it is not. Undefined entities (HTML's
    ``&nbsp;`` in RSS) are not counted: they are common, and read as HTML's."""
    exc = feed.get("bozo_exception")
    if not isinstance(exc, SAXParseException) or "undefined entity" in exc.getMessage():
        return None
    return f"{exc.getMessage()} at line {exc.getLineNumber()}, column {exc.getColumnNumber()}"


class FeedSpider(SourceSpider):
    kind = "feed"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.source.start_urls:
            yield self.start_request(url, self.parse_feed)

    def parse_feed(self, response: Response) -> Iterator[scrapy.Request]:
        if self.unchanged(response):
            return
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
            # feedparser names the format it recognised; none means not a feed at all.
            reason = (
                "feed has no entries"
                if feed.get("version")
                else f"not a readable feed ({feed.get('bozo_exception') or 'unknown format'})"
            )
            self.document_failed(response, reason)
            return
        broken = malformed(feed)
        if broken:
            # Read as far as feedparser's lenient parser could: what it found is
            # followed, and the run says the feed itself is broken.
            self.record_error(
                response.url,
                f"feed is not well-formed XML ({broken}): read {len(feed.entries)} entries anyway",
            )
        links = []
        for entry in feed.entries[: self.source.max_items]:
            link = entry.get("link")
            if not link:
                self.record_error(
                    response.url, f"feed entry without a link: {entry.get('title')!r}"
                )
                continue
            links.append((response.urljoin(link), entry_hints(entry)))
        pending = self.listed(response, [link for link, _ in links])
        if pending is not None:
            pending.update_seconds = update_period(feed.feed)
        yield from self.article_requests(self.select_new(links))
