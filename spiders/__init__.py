"""Spiders, one class per source *kind*; sources themselves are data."""

from spiders.base import SourceSpider
from spiders.feed import FeedSpider

SPIDERS_BY_KIND: dict[str, type[SourceSpider]] = {FeedSpider.kind: FeedSpider}

__all__ = ["SPIDERS_BY_KIND", "FeedSpider", "SourceSpider"]
