"""Writes each crawl's outcome into ``crawl_runs`` when its spider closes."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any, Self

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from sqlalchemy.orm import Session, sessionmaker
from twisted.python.failure import Failure

from db.models import CrawlRun
from db.repository.runs import RunCounts, finish_run, mark_checked, mark_seen, save_fetch_state
from db.types import utcnow
from pipeline.spool import RUNS, Spool, read_records
from pipeline.store import FLAGGED_STAT, READINGS_STAT, STAT_PREFIX, UNDATED_STAT, writer_of
from pipeline.writer import ArchiveUnavailable, release
from spiders.base import SourceSpider

log = logging.getLogger(__name__)


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

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        # The process's one writer: a second write transaction in this thread
        # would wait on the batch the pipelines hold (pipeline/writer.py).
        self.writer = writer_of(crawler)
        self._failures_before = 0
        self._kept_before = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        recorder = cls(crawler)
        crawler.signals.connect(recorder.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(recorder.spider_error, signal=signals.spider_error)
        crawler.signals.connect(recorder.item_error, signal=signals.item_error)
        crawler.signals.connect(recorder.spider_closed, signal=signals.spider_closed)
        return recorder

    def spider_opened(self, spider: Spider) -> None:
        self._failures_before = len(self.writer.failures)
        self._kept_before = self._kept(spider)

    def _kept(self, spider: Spider) -> int:
        """Items of this spider's source this process has put in the spool."""
        spool = self.writer.spool
        return spool.kept.get(spider.name, 0) if spool is not None else 0

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
        # Batches the database refused while this crawl ran (spooled for the
        # next crawl, or, without a spool, fetched again by it).
        for failure in self.writer.failures[self._failures_before :]:
            spider.record_error("archive", failure)
        kept = self._kept(spider) - self._kept_before
        if kept and self.writer.spool is not None:
            spider.record_error(
                "archive",
                f"{kept} items of this crawl wait in the spool {self.writer.spool.directory} "
                "and are stored by the next crawl of this source",
            )
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
        ending = {
            "run_id": run_id,
            "outcome": outcome,
            "finish_reason": reason,
            "counts": dataclasses.asdict(counts),
            "error_text": "\n".join(spider.error_lines) or None,
            "finished_at": utcnow().isoformat(),
        }
        try:
            with self.writer.item() as session:
                mark_seen(session, spider.skipped, utcnow())
                mark_checked(session, spider.not_modified, utcnow())
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
                close_run(session, ending)
            self.writer.commit()
        except ArchiveUnavailable as exc:
            # How the run ended waits in the spool too; the next crawl writes it.
            # (No fetch state is kept: the next crawl reads every listing again.)
            log.error("run %s of %s not recorded: %s", run_id, spider.name, exc)
            if self.writer.spool is not None:
                self.writer.spool.keep_run(ending)


def close_run(session: Session, ending: dict[str, Any]) -> bool:
    """Write how a run ended (as the recorder put it), unless it was closed since
    (the scheduler closes a child's run it had to stop)."""
    run = session.get(CrawlRun, ending["run_id"])
    if run is None or run.outcome != "running":
        return False
    finish_run(
        session,
        run.id,
        outcome=ending["outcome"],
        finish_reason=ending["finish_reason"],
        counts=RunCounts(**ending["counts"]),
        error_text=ending["error_text"],
        finished_at=datetime.fromisoformat(ending["finished_at"]),
    )
    return True


def apply_spooled_runs(spool: Spool, sessions: sessionmaker[Session]) -> int:
    """Write the run endings waiting in the spool, then delete their files;
    returns how many were written. A file another crawl is reading is left to it."""
    claimed = spool.claim(RUNS)
    written = 0
    try:
        with sessions.begin() as session:
            for spooled in claimed:
                for _, record in read_records(spooled):
                    if isinstance(record, str) or record.get("type") != "run":
                        log.warning("%s: %s", spooled.path, record)
                        continue
                    written += close_run(session, record["run"])
    except BaseException:
        for spooled in claimed:
            spooled.release(delete=False)
        raise
    for spooled in claimed:
        spooled.release(delete=True)
    return written
