"""The ``listing`` kind: a site's own list of articles, for sites without a feed.

CSS selectors (data, in ``sources.toml``) name the item links and the link to
the next, older page. Pagination stops at ``max_pages`` or at the first page
whose items are all archived already: everything older was seen before.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator

import scrapy
from parsel import Selector
from scrapy.http import Response, TextResponse

from pipeline.urls import canonical_url
from spiders.base import SourceSpider
from spiders.extract import FeedHints


def _href(node: Selector) -> str | None:
    """The link of a matched element: its own href, else its first descendant's."""
    href = node.attrib.get("href") or node.css("a[href]::attr(href)").get()
    return href.strip() if href and href.strip() else None


def listing_links(response: TextResponse, items_css: str) -> list[tuple[str, FeedHints]]:
    """The article links a listing page shows, in page order, each once."""
    seen: set[str] = set()
    links = []
    for node in response.css(items_css):
        href = _href(node)
        if href is None or href.startswith(("#", "javascript:", "mailto:")):
            continue
        url = response.urljoin(href)
        if url in seen:
            continue
        seen.add(url)
        title = " ".join(node.xpath("string()").get("").split()) or None
        meta = hashlib.sha256((title or "").encode()).hexdigest()
        links.append((url, FeedHints(title=title, meta_hash=meta)))
    return links


class ListingSpider(SourceSpider):
    kind = "listing"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.source.start_urls:
            yield self.start_request(url, self.parse_listing, page=1)

    def parse_listing(self, response: Response) -> Iterator[scrapy.Request]:
        page = int(response.meta.get("page", 1))
        if page == 1 and self.unchanged(response):
            return
        listing = self.source.listing
        assert listing is not None  # the sources file guarantees it for this kind
        if not isinstance(response, TextResponse):
            self.document_failed(response, "listing page is not text", start=page == 1)
            return
        links = listing_links(response, listing.items)[: self.source.max_items]
        if not links:
            message = f"no items matched {listing.items!r} (markup changed?)"
            self.document_failed(response, message, start=page == 1)
            return
        self.listed(response, [link for link, _ in links])
        known = self.known([canonical_url(link) for link, _ in links])
        yield from self.article_requests(self.select_new(links, known))
        if len(known) == len(links):
            return  # everything here is archived: so is everything older
        next_href = response.css(listing.next).attrib.get("href") if listing.next else None
        if next_href and page < self.source.max_pages:
            yield self.next_page(response, next_href, self.parse_listing)
