"""The ``sitemap`` kind: sitemap indexes, news sitemaps, WordPress ``wp-sitemap.xml``,
gzipped sitemaps; only entries newer than the source's look-back are followed.

Sitemaps are read with lxml directly rather than Scrapy's ``Sitemap`` helper,
because that helper flattens nested elements and so loses the news sitemap's
``<news:title>`` and ``<news:publication_date>``.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime

import scrapy
from lxml import etree
from scrapy.http import Response
from scrapy.utils.gz import gunzip

from pipeline.dates import parse_date
from spiders.base import SourceSpider
from spiders.extract import FeedHints

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class SitemapEntry:
    """A ``<url>`` of a urlset or a ``<sitemap>`` of an index."""

    loc: str
    lastmod: str | None = None
    title: str | None = None  # news:title
    published: str | None = None  # news:publication_date

    @property
    def date(self) -> datetime | None:
        """The entry's newest known date: publication, else last modification."""
        for value in (self.published, self.lastmod):
            if value and (parsed := parse_date(value)) is not None:
                return parsed
        return None


class SitemapError(ValueError):
    """The document is not a sitemap."""


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def read_sitemap(body: bytes, max_size: int = 0) -> tuple[str, list[SitemapEntry]]:
    """A sitemap's type (``urlset`` or ``sitemapindex``) and its entries.

    Gzipped bodies are unpacked (bounded by ``max_size`` against gzip bombs).
    Entities are never resolved and nothing is fetched from the network.
    """
    if body.startswith(_GZIP_MAGIC):
        try:
            body = gunzip(body, max_size=max_size)
        except (OSError, EOFError, zlib.error) as exc:
            raise SitemapError(f"broken gzip data ({exc})") from None
        except ValueError:  # Scrapy's "decompressed size exceeded" (a gzip bomb)
            raise SitemapError(f"gzipped sitemap unpacks to more than {max_size} bytes") from None
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise SitemapError(f"not a sitemap (unreadable XML: {exc})") from None
    if root is None or _local(root.tag) not in ("urlset", "sitemapindex"):
        found = _local(root.tag) if root is not None else "nothing readable"
        raise SitemapError(f"not a sitemap (root element: {found or 'none'})")
    entries = []
    for node in root:
        if _local(node.tag) not in ("url", "sitemap"):
            continue
        fields: dict[str, str] = {}
        for child in node.iter():
            name = _local(child.tag)
            text = (child.text or "").strip()
            if name in ("loc", "lastmod", "title", "publication_date") and text:
                fields.setdefault(name, text)
        if "loc" in fields:
            entries.append(
                SitemapEntry(
                    loc=fields["loc"],
                    lastmod=fields.get("lastmod"),
                    title=fields.get("title"),
                    published=fields.get("publication_date"),
                )
            )
    return _local(root.tag), entries


def sitemap_hints(entry: SitemapEntry) -> FeedHints:
    # lastmod changes when the page is edited: a changed one is fetched again.
    meta = hashlib.sha256(f"{entry.lastmod or ''}\n{entry.title or ''}".encode()).hexdigest()
    return FeedHints(title=entry.title, published=entry.published, meta_hash=meta)


class SitemapSpider(SourceSpider):
    kind = "sitemap"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.source.start_urls:
            yield self.start_request(url, self.parse_sitemap)

    def _recent(self, entries: list[SitemapEntry]) -> list[SitemapEntry]:
        """Entries inside the look-back, newest first; undated ones are kept (a
        sitemap without dates cannot be filtered) but come last."""
        cutoff = self.now() - self.source.lookback_delta
        dated = [(entry.date, entry) for entry in entries]
        recent = [pair for pair in dated if pair[0] is None or pair[0] >= cutoff]
        skipped = len(dated) - len(recent)
        if skipped:
            self.stat("deportwatch/sitemap/older_than_lookback", skipped)
        # Dated before undated, then newest first.
        recent.sort(key=lambda pair: (pair[0] is not None, pair[0]), reverse=True)
        return [entry for _, entry in recent]

    def parse_sitemap(self, response: Response) -> Iterator[scrapy.Request]:
        top = response.meta.get("top", True)
        if response.status == 304 and self.unchanged(response):
            return
        max_size = self.settings.getint("DOWNLOAD_MAXSIZE") if hasattr(self, "crawler") else 0
        try:
            kind, entries = read_sitemap(response.body, max_size=max_size)
            if not entries:
                raise SitemapError("sitemap lists nothing")
        except SitemapError as exc:
            self.document_failed(response, str(exc), start=top)
            return
        if kind == "sitemapindex":
            # An index rarely changes when its children do: always read the children.
            yield from self._children(response, self._recent(entries))
            return
        # A urlset (the top document or a child) is skipped when unchanged.
        if self.unchanged(response):
            return
        links = [(response.urljoin(e.loc), sitemap_hints(e)) for e in self._recent(entries)]
        links = links[: self.source.max_items]
        self.listed(response, [link for link, _ in links])
        yield from self.article_requests(self.select_new(links))

    def _children(
        self, response: Response, entries: list[SitemapEntry]
    ) -> Iterator[scrapy.Request]:
        patterns = [re.compile(p) for p in self.source.follow]
        for entry in entries:
            if patterns and not any(p.search(entry.loc) for p in patterns):
                continue
            url = response.urljoin(entry.loc)
            yield scrapy.Request(
                url,
                callback=self.parse_sitemap,
                errback=self.on_page_error,
                meta={"top": False, "start_url": url},
            )
