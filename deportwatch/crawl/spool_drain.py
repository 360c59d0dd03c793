"""A crawl first stores what earlier crawls of its source could not (the spool).

Scrapy spider middleware: before the spider's own start requests, every item
waiting in the spool for this source (``pipeline/spool.py``) is sent through
the pipeline again — normalize, dedup, flag, store — and counted in this
crawl's run like any item it found. A spool file is deleted only when every
item read from it has come out of the pipeline (stored, spooled again, or
failed with an error the run records); a crawl stopped before that leaves the
file for the next one, which stores its items once (storing is idempotent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from pipeline.spool import Spool, SpooledFile, read_items
from spiders.base import SourceSpider

READ_STAT = "deportwatch/spool/read"


class SpoolDrainMiddleware:
    def __init__(self, crawler: Crawler, spool: Spool) -> None:
        self.crawler = crawler
        self.spool = spool
        self.claimed: list[SpooledFile] = []
        self.outstanding: set[int] = set()  # ids of items still in the pipeline
        self.read_all = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        directory = crawler.settings.get("DEPORTWATCH_SPOOL_DIR")
        if not directory:
            raise NotConfigured("no spool")
        spool = Spool(Path(directory), crawler.settings["DEPORTWATCH_DATABASE_URL"])
        middleware = cls(crawler, spool)
        for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(middleware.item_done, signal=signal)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        spider = self.crawler.spider
        if isinstance(spider, SourceSpider):
            self.claimed = self.spool.claim(spider.name)
            for spooled in self.claimed:
                for _, item in read_items(spooled):
                    if isinstance(item, str):
                        spider.record_error(str(spooled.path), f"spool: {item}")
                        continue
                    self.outstanding.add(id(item))
                    spider.stat(READ_STAT)
                    yield item
        self.read_all = True
        async for request_or_item in start:
            yield request_or_item

    def item_done(self, item: Any, **_: Any) -> None:
        self.outstanding.discard(id(item))

    def spider_closed(self, spider: Spider) -> None:
        complete = self.read_all and not self.outstanding
        for spooled in self.claimed:
            spooled.release(delete=complete)
        self.claimed = []
