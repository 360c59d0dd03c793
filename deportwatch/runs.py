"""Writes each crawl's outcome into ``crawl_runs`` when its spider closes."""

from __future__ import annotations

from typing import Any, Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from twisted.python.failure import Failure

from db.repository import RunCounts, finish_run, mark_seen, save_fetch_state
from db.types import utcnow
from pipeline.store import FLAGGED_STAT, READINGS_STAT, STAT_PREFIX, UNDATED_STAT
from pipeline.writer import release, shared_writer
from spiders.base import SourceSpider


def run_outcome(reason: str, spider: SourceSpider) -> str:
    """ok, partial (some errors), failed (no start URL could be read) or interrupted."""
    if reason in ("shutdown", "cancelled"):
        return "interrupted"
    if spider.start_failures >= len(spider.source.start_urls):
        return "failed"
    return "partial" if spider.error_count else "ok"


class CrawlRunRecorder:
    """Scrapy extension: errors raised anywhere in the crawl count against the run,
    and the run's row is completed with counts from the crawl's stats."""

    def __init__(self, crawler: Crawler, database_url: str) -> None:
        self.crawler = crawler
        # The process's one writer: a second write transaction in this thread
        # would wait on the batch the pipelines hold (pipeline/writer.py).
        self.writer = shared_writer(database_url)
        self._failures_before = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        recorder = cls(crawler, crawler.settings["DEPORTWATCH_DATABASE_URL"])
        crawler.signals.connect(recorder.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(recorder.spider_error, signal=signals.spider_error)
        crawler.signals.connect(recorder.item_error, signal=signals.item_error)
        crawler.signals.connect(recorder.spider_closed, signal=signals.spider_closed)
        return recorder

    def spider_opened(self, spider: Spider) -> None:
        self._failures_before = len(self.writer.failures)

    def spider_error(self, failure: Failure, response: Response, spider: Spider) -> None:
        if isinstance(spider, SourceSpider):
            exc = failure.value
            spider.record_error(response.url, f"parse error: {type(exc).__name__}: {exc}")

    def item_error(self, item: Any, response: Response | None, spider: Spider, failure: Failure):  # type: ignore[no-untyped-def]
        if isinstance(spider, SourceSpider):
            exc = failure.value
            where = response.url if response is not None else getattr(item, "url", "?")
            spider.record_error(where, f"not stored: {type(exc).__name__}: {exc}")

    def spider_closed(self, spider: Spider, reason: str) -> None:
        try:
            if isinstance(spider, SourceSpider) and spider.run_id is not None:
                self._record(spider, spider.run_id, reason)
        finally:
            release(self.writer)

    def _record(self, spider: SourceSpider, run_id: int, reason: str) -> None:
        # Batches of this crawl's items that the database refused (they were
        # not stored, so the next crawl fetches them again).
        for failure in self.writer.failures[self._failures_before :]:
            spider.record_error("archive", failure)
        stats = self.crawler.stats
        assert stats is not None

        def stat(key: str) -> int:
            return int(stats.get_value(key, 0) or 0)

        counts = RunCounts(
            pages=stat("response_received_count"),
            new=stat(f"{STAT_PREFIX}/new"),
            updated=stat(f"{STAT_PREFIX}/updated"),
            unchanged=stat(f"{STAT_PREFIX}/unchanged"),
            errors=spider.error_count,
            flagged=stat(FLAGGED_STAT),
            duplicate=stat(f"{STAT_PREFIX}/duplicate"),
            undated=stat(UNDATED_STAT),
            readings=stat(READINGS_STAT),
        )
        outcome = run_outcome(reason, spider)
        with self.writer.item() as session:
            mark_seen(session, spider.skipped, utcnow())
            if outcome == "ok":
                for url, state in spider.pending_states.items():
                    save_fetch_state(
                        session,
                        url,
                        etag=state.etag,
                        last_modified=state.last_modified,
                        body_hash=state.body_hash,
                        entry_urls=state.entry_urls,
                        checked_at=utcnow(),
                        update_seconds=state.update_seconds,
                    )
            finish_run(
                session,
                run_id,
                outcome=outcome,
                finish_reason=reason,
                counts=counts,
                error_text="\n".join(spider.error_lines) or None,
            )
        self.writer.commit()
