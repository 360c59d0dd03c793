"""The ``feed`` kind: an RSS or Atom feed, each entry followed to its article page."""

from __future__ import annotations

import calendar
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import feedparser
import scrapy
from parsel import Selector
from scrapy.http import Response

from db.models import FetchState
from db.repository import KnownEntry, fetch_state, known_entries
from pipeline.urls import canonical_url
from spiders.base import PendingFetchState, SourceSpider, conditional_headers, header_value
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


class FeedSpider(SourceSpider):
    kind = "feed"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._states: dict[str, FetchState | None] = {}

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.source.start_urls:
            state = self._state(url)
            headers = conditional_headers(state.etag, state.last_modified) if state else {}
            yield scrapy.Request(
                url,
                headers=headers,
                callback=self.parse_feed,
                errback=self.on_start_error,
                meta={"handle_httpstatus_list": [304], "feed_url": url},
            )

    def _state(self, url: str) -> FetchState | None:
        """A start URL's fetch state, read once per crawl (it is only written at the end)."""
        if self.archive is None:
            return None
        if url not in self._states:
            with self.archive() as session:
                self._states[url] = fetch_state(session, url)
        return self._states[url]

    def _unchanged(self, response: Response) -> bool:
        """304, or the same bytes as last time (for servers without validators)."""
        url = response.meta.get("feed_url", response.url)
        state = self._state(url)
        body_hash = hashlib.sha256(response.body).hexdigest()
        if response.status == 304 or (state is not None and state.body_hash == body_hash):
            # Everything it lists was handled by the last crawl that ended well.
            listed = json.loads(state.entry_urls or "[]") if state is not None else []
            self.skipped.extend(listed)
            self.stat("deportwatch/articles/unchanged", len(listed))
            self.stat("deportwatch/feeds/unchanged")
            return True
        self.pending_states[url] = PendingFetchState(
            etag=header_value(response, "ETag"),
            last_modified=header_value(response, "Last-Modified"),
            body_hash=body_hash,
            entry_urls=[],
        )
        return False

    def _to_fetch(
        self, links: list[tuple[str, FeedHints]]
    ) -> list[tuple[str, FeedHints, KnownEntry | None]]:
        """Drop entries already archived whose title and summary did not change,
        unless they are recent enough that an edit is still likely (those are
        re-checked with their validators, so an unedited page answers 304)."""
        if self.archive is None:
            return [(link, hints, None) for link, hints in links]
        keys = [canonical_url(link) for link, _ in links]
        with self.archive() as session:
            known = known_entries(session, keys)
        cutoff = datetime.now(UTC) - self.recheck_window
        wanted: list[tuple[str, FeedHints, KnownEntry | None]] = []
        for key, (link, hints) in zip(keys, links, strict=True):
            entry = known.get(key)
            if entry and entry.feed_meta_hash == hints.meta_hash and entry.first_seen_at < cutoff:
                self.skipped.append(key)
                continue
            wanted.append((link, hints, entry))
        if len(wanted) < len(links):
            self.stat("deportwatch/articles/unchanged", len(links) - len(wanted))
        return wanted

    def parse_feed(self, response: Response) -> Iterator[scrapy.Request]:
        if self._unchanged(response):
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
            self.start_failures += 1
            # feedparser names the format it recognised; none means not a feed at all.
            reason = (
                "feed has no entries"
                if feed.get("version")
                else f"not a readable feed ({feed.get('bozo_exception') or 'unknown format'})"
            )
            self.record_error(response.url, reason)
            return
        links = []
        for entry in feed.entries[: self.source.max_items]:
            link = entry.get("link")
            if not link:
                self.record_error(
                    response.url, f"feed entry without a link: {entry.get('title')!r}"
                )
                continue
            links.append((response.urljoin(link), entry_hints(entry)))
        pending = self.pending_states.get(response.meta.get("feed_url", response.url))
        if pending is not None:
            pending.entry_urls.extend(canonical_url(link) for link, _ in links)
        for link, hints, known in self._to_fetch(links):
            yield self.article_request(link, hints, known)
