"""A one-off crawl: one Scrapy process, one crawler per source, results in the archive.

This is the only module that turns deportwatch settings into Scrapy settings.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from scrapy import signals
from scrapy.crawler import Crawler, CrawlerProcess
from sqlalchemy.exc import InterfaceError, OperationalError

from db.engine import describe_url, explain_database_error, make_sessionmaker
from db.migrate import open_archive
from db.models import CrawlRun
from db.repository.runs import close_abandoned_runs, ensure_source, runs_by_id, start_run, take_run
from deportwatch.config.errors import DeportwatchError, UsageError
from deportwatch.config.settings import Settings
from deportwatch.config.sources import Source
from deportwatch.crawl.logs import setup_crawl_logging
from deportwatch.crawl.runs import apply_spooled_runs
from pipeline.spool import Spool
from spiders import SPIDERS_BY_KIND
from spiders.base import SourceSpider
from spiders.middlewares.replay import snapshot_time


@dataclass(frozen=True)
class RunSummary:
    source: str
    outcome: str
    pages: int
    new: int
    updated: int
    unchanged: int
    errors: int
    flagged: int
    duplicate: int
    readings: int
    error_text: str | None

    @classmethod
    def of(cls, source: str, run: CrawlRun) -> RunSummary:
        """A run's outcome and counts, as its ``crawl_runs`` row holds them."""
        return cls(
            source=source,
            outcome=run.outcome,
            pages=run.pages,
            new=run.articles_new,
            updated=run.articles_updated,
            unchanged=run.articles_unchanged,
            errors=run.errors,
            flagged=run.articles_flagged,
            duplicate=run.articles_duplicate,
            readings=run.readings_new,
            error_text=run.error_text,
        )


def scrapy_settings(settings: Settings, replay_dir: Path | None) -> dict[str, Any]:
    """A polite monitor: robots.txt, AutoThrottle, bounded sizes, retries with backoff."""
    middlewares: dict[str, int | None] = {
        "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
        "spiders.middlewares.retry.BackoffRetryMiddleware": 550,
        # Responses pass middlewares from the highest number down: pages are
        # decompressed (590) before their encoding is checked, and a redirect
        # is vetted before Scrapy's redirect middleware (600) follows it.
        "spiders.middlewares.encoding.CharsetRepairMiddleware": 580,
        "spiders.middlewares.redirects.RedirectGuardMiddleware": 650,
        # Evidence: the bytes as they came (595, before decompression), written
        # once decompression (590) accepted them (585).
        "spiders.middlewares.capture.RawCaptureMiddleware": 595,
        "spiders.middlewares.capture.WarcCaptureMiddleware": 585,
    }
    if replay_dir is not None:
        # After robots.txt, offsite and retry, in place of the network.
        middlewares["spiders.middlewares.replay.ReplayMiddleware"] = 950
    return {
        "BOT_NAME": "deportwatch",
        "USER_AGENT": settings.user_agent,
        "ROBOTSTXT_OBEY": settings.obey_robots,
        "AUTOTHROTTLE_ENABLED": True,
        "AUTOTHROTTLE_START_DELAY": settings.download_delay,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
        "DOWNLOAD_DELAY": settings.download_delay,
        "CONCURRENT_REQUESTS_PER_DOMAIN": settings.concurrent_requests_per_domain,
        "DOWNLOAD_TIMEOUT": settings.download_timeout,
        "DNS_TIMEOUT": min(settings.download_timeout, 20),
        "DOWNLOAD_MAXSIZE": settings.max_response_bytes,
        "DOWNLOAD_WARNSIZE": settings.max_response_bytes // 2,
        "RETRY_TIMES": settings.retry_times,
        "RETRY_GIVE_UP_LOG_LEVEL": "WARNING",
        "RETRY_BACKOFF_BASE": settings.retry_backoff,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "INFO",
        "LOG_INSTALL_ROOT_HANDLER": False,  # deportwatch.crawl.logs routes the records
        "DOWNLOADER_MIDDLEWARES": middlewares,
        "SPIDER_MIDDLEWARES": {"deportwatch.crawl.spool_drain.SpoolDrainMiddleware": 50},
        "LOG_FORMATTER": "deportwatch.crawl.logs.ItemLogFormatter",
        "ITEM_PIPELINES": {
            "pipeline.normalize.NormalizePipeline": 100,
            "pipeline.dedup.DedupPipeline": 300,
            "pipeline.flag.FlagPipeline": 500,
            "pipeline.store.StorePipeline": 900,
            "pipeline.readings.ReadingStorePipeline": 910,
        },
        "EXTENSIONS": {
            "deportwatch.crawl.runs.CrawlRunRecorder": 0,
            "scrapy.extensions.throttle.AutoThrottle": None,
            "spiders.middlewares.throttle.ConditionalAwareAutoThrottle": 0,
        },
        "DEPORTWATCH_DATABASE_URL": settings.database_url,
        "DEPORTWATCH_SPOOL_DIR": str(settings.spool_dir),
        "DEPORTWATCH_WARC_DIR": str(settings.warc_dir) if settings.capture else None,
        "DEPORTWATCH_WARC_MAX_BYTES": settings.warc_max_bytes,
        "DEPORTWATCH_KEYWORDS": str(settings.keywords),
        "DEPORTWATCH_DUPLICATE_THRESHOLD": settings.duplicate_threshold,
        "DEPORTWATCH_RECHECK_HOURS": settings.recheck_hours,
        "DEPORTWATCH_RECHECK_MINUTES": settings.recheck_minutes,
        "DEPORTWATCH_REQUEST_BATCH": settings.request_batch,
        "DEPORTWATCH_REPLAY_DIR": str(replay_dir) if replay_dir else None,
        "DEPORTWATCH_REFERENCE_TIME": snapshot_time(replay_dir) if replay_dir else None,
    }


def _register_runs(
    settings: Settings, sources: list[Source], given_run_id: int | None
) -> dict[str, int]:
    """Make the schema current and open one ``crawl_runs`` row per source.

    The scheduler opens the row itself and passes its id (``given_run_id``), so
    that it can close the row when it has to stop a crawl that ran too long.
    """
    with open_archive(settings.database_url, writer=True) as engine:
        sessions = make_sessionmaker(engine)
        # First the endings of runs the archive could not take when they ended,
        # then the runs of crawl processes that were killed.
        apply_spooled_runs(Spool(settings.spool_dir, settings.database_url), sessions)
        with sessions.begin() as session:
            close_abandoned_runs(session)
            run_ids = {}
            for source in sources:
                row = ensure_source(session, source.name, source.kind, source.enabled)
                if given_run_id is None:
                    run_ids[source.name] = start_run(session, row.id).id
                    continue
                run = session.get(CrawlRun, given_run_id)
                if run is None or run.source_id != row.id or run.outcome != "running":
                    raise UsageError(
                        f"--run-id {given_run_id}: no running crawl of '{source.name}'"
                    )
                take_run(run)  # the scheduler opened it; this process runs it
                run_ids[source.name] = run.id
        return run_ids


def _read_summaries(settings: Settings, run_ids: list[int]) -> list[RunSummary]:
    try:
        return _summaries(settings, run_ids)
    except (OperationalError, InterfaceError, DeportwatchError) as exc:
        # The archive went away during the crawl: say so, and where the items are.
        waiting = waiting_in_spool(settings)
        kept = (
            f"{sum(waiting.values())} fetched items wait in the spool {settings.spool_dir} "
            "and the next crawl stores them"
            if waiting
            else "nothing fetched waits to be stored"
        )
        reason = explain_database_error(exc)
        raise DeportwatchError(
            f"the archive {describe_url(settings.database_url)} could not be read after "
            f"the crawl: {reason}; {kept}"
        ) from None


def waiting_in_spool(settings: Settings) -> dict[str, int]:
    """Fetched items the archive has not taken yet, per source (the spool)."""
    return Spool(settings.spool_dir, settings.database_url).pending()


def _summaries(settings: Settings, run_ids: list[int]) -> list[RunSummary]:
    with (
        open_archive(settings.database_url, migrate=False) as engine,
        make_sessionmaker(engine)() as session,
    ):
        return [RunSummary.of(name, run) for name, run in runs_by_id(session, run_ids)]


REFRESH_SECONDS = 0.1


def _track(progress: Progress, crawler: Crawler, source: str) -> None:
    """Show a source's pages, items and errors live as its crawl proceeds."""
    task = progress.add_task(source, total=None, pages=0, items=0, errors=0)

    shown = [0.0]  # when the line was last redrawn

    def refresh(force: bool = False, **_: Any) -> None:
        # Drawing the line costs as much as a page's storage would: at most
        # ten times a second, and once more at the end.
        now = time.monotonic()
        if not force and now - shown[0] < REFRESH_SECONDS:
            return
        shown[0] = now
        spider = crawler.spider
        stats = crawler.stats
        assert stats is not None
        progress.update(
            task,
            pages=stats.get_value("response_received_count", 0),
            items=stats.get_value("item_scraped_count", 0),
            errors=spider.error_count if isinstance(spider, SourceSpider) else 0,
        )

    def closed(**_: Any) -> None:
        refresh(force=True)
        progress.update(task, total=1, completed=1)

    # weak=False: the closures would otherwise be collected at once.
    crawler.signals.connect(refresh, signal=signals.response_received, weak=False)
    crawler.signals.connect(refresh, signal=signals.item_scraped, weak=False)
    crawler.signals.connect(closed, signal=signals.spider_closed, weak=False)


def run_crawl(
    settings: Settings,
    sources: list[Source],
    console: Console,
    *,
    replay_dir: Path | None = None,
    verbose: bool = False,
    run_id: int | None = None,
) -> list[RunSummary]:
    """Crawl ``sources`` concurrently, once, and return each run's summary."""
    if run_id is not None and len(sources) != 1:
        raise UsageError("--run-id goes with exactly one source")
    run_ids = _register_runs(settings, sources, run_id)
    setup_crawl_logging(console, settings.log_dir, verbose)
    process = CrawlerProcess(scrapy_settings(settings, replay_dir))
    progress = Progress(
        SpinnerColumn(finished_text="✓"),
        TextColumn("[bold]{task.description}"),
        TextColumn("pages {task.fields[pages]} · items {task.fields[items]}"),
        TextColumn("· errors {task.fields[errors]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        # Drawing it took 3% of a crawl's CPU: a few times a second on a terminal,
        # not at all where nobody watches (the service's child crawls, cron, logs).
        refresh_per_second=4,
        disable=not console.is_terminal,
    )
    with progress:
        for source in sources:
            crawler = process.create_crawler(SPIDERS_BY_KIND[source.kind])
            _track(progress, crawler, source.name)
            process.crawl(crawler, source=source, run_id=run_ids[source.name])
        process.start()
    summaries = _read_summaries(settings, list(run_ids.values()))
    return [_unrecorded(s) if s.outcome == "running" else s for s in summaries]


def _unrecorded(summary: RunSummary) -> RunSummary:
    """A run whose end the archive could not take (it waits in the spool)."""
    return dataclasses.replace(
        summary,
        outcome="unrecorded",
        error_text="the archive was unavailable when the crawl ended; the run's counts "
        "wait in the spool and are written by the next crawl",
    )
