"""Pipeline stage — flag: which deportation categories an article reports, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from scrapy.crawler import Crawler

from deportwatch.config.keywords import load_taxonomy
from pipeline.items import ArticleItem, Item
from pipeline.matcher import Matcher


class FlagPipeline:
    """Runs the compiled taxonomy over the article's title and body (never page
    chrome: extraction has already removed it) and attaches the result."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(Matcher(load_taxonomy(Path(crawler.settings["DEPORTWATCH_KEYWORDS"]))))

    def process_item(self, item: Item) -> Item:
        if not isinstance(item, ArticleItem):
            return item  # counter readings pass through to their own store stage
        item.flag = self.matcher.flag(item.title, item.text, item.language)
        return item
