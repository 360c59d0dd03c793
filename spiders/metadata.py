"""Structured metadata a page declares about itself: JSON-LD, OpenGraph, article:* meta.

Written here rather than taken from trafilatura's metadata extractor because
we need the full timestamp with its offset (trafilatura reduces dates to days)
and must know *where* each value came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from parsel import Selector

_ARTICLE_TYPES = {
    "article", "newsarticle", "reportagenewsarticle", "analysisnewsarticle",
    "blogposting", "webpage", "report", "liveblogposting",
}  # fmt: skip


@dataclass
class PageMetadata:
    title: str | None = None
    description: str | None = None
    author: str | None = None
    published: str | None = None
    canonical_url: str | None = None
    language: str | None = None
    declares_article: bool = False  # an article-typed JSON-LD object is on the page
    site_names: tuple[str, ...] = ()  # og:site_name, JSON-LD publisher: a title may end with one


def _walk_jsonld(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for child in node:
            yield from _walk_jsonld(child)
    elif isinstance(node, dict):
        yield node
        yield from _walk_jsonld(node.get("@graph", []))


def _is_article(node: dict[str, Any]) -> bool:
    types = node.get("@type", [])
    types = [types] if isinstance(types, str) else types
    return any(isinstance(t, str) and t.lower() in _ARTICLE_TYPES for t in types)


def _author_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        name = value.get("name")
        return name if isinstance(name, str) and name else None
    if isinstance(value, list):
        names = [n for n in (_author_name(v) for v in value) if n]
        return ", ".join(names) or None
    return None


def _names(value: Any) -> list[str]:
    if isinstance(value, list):
        return [name for item in value for name in _names(item)]
    name = _author_name(value)
    return [name.strip()] if name and name.strip() else []


def _jsonld_article(sel: Selector) -> dict[str, Any]:
    """The first article-typed JSON-LD object; broken JSON-LD is skipped, not fatal."""
    for raw in sel.css('script[type="application/ld+json"]::text').getall():
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        for node in _walk_jsonld(data):
            if _is_article(node):
                return node
    return {}


def _meta(sel: Selector, *keys: str) -> str | None:
    for key in keys:
        value = sel.xpath("//meta[@property=$k or @name=$k or @itemprop=$k]/@content", k=key).get()
        if value and value.strip():
            return value.strip()
    return None


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def read_metadata(sel: Selector) -> PageMetadata:
    """JSON-LD first (the most deliberate signal), then OpenGraph and meta tags."""
    ld = _jsonld_article(sel)
    lang = sel.xpath("/html/@lang").get() or _meta(sel, "og:locale")
    return PageMetadata(
        title=_str(ld.get("headline")) or _meta(sel, "og:title", "twitter:title"),
        description=_str(ld.get("description")) or _meta(sel, "og:description", "description"),
        author=_author_name(ld.get("author")) or _meta(sel, "article:author", "author"),
        published=_str(ld.get("datePublished"))
        or _meta(sel, "article:published_time", "datePublished", "pubdate"),
        canonical_url=sel.css('link[rel="canonical"]::attr(href)').get(),
        language=lang.strip()[:2].lower() if lang and lang.strip() else None,
        declares_article=bool(ld),
        site_names=tuple(
            dict.fromkeys([*_names(_meta(sel, "og:site_name")), *_names(ld.get("publisher"))])
        ),
    )
