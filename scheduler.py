"""The background service: every enabled source crawled on its schedule.

APScheduler (3.x, a ``BackgroundScheduler``) keeps one job per enabled source.
A job runs the source's crawl in a child process (``service.child``) and
waits for it, so the pool's size is the limit on concurrent crawls; the
scheduler process itself never starts Twisted. After each crawl, newly
flagged stories and health changes are queued and sent as alerts.

Signals: SIGTERM or SIGINT stop scheduling, give running crawls
``shutdown_grace`` seconds, then stop them; SIGHUP re-reads the sources file
and, if it is broken, keeps the configuration that is running.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor as JobPool
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from kombu.exceptions import OperationalError
from sqlalchemy import Engine

from db.engine import make_sessionmaker, make_writer_engine
from db.migrate import upgrade
from db.repository.runs import last_runs
from db.types import utcnow
from deportwatch.archive.health import FAILED_OUTCOMES
from deportwatch.config.errors import ConfigError
from deportwatch.config.keywords import load_taxonomy
from deportwatch.config.settings import Settings
from deportwatch.config.sources import Schedule, Source, SourcesFile, interval_delta, read_sources
from service.alerts import alert_targets, queue_health_alerts, queue_story_alerts, send_alerts
from service.child import KILL_AFTER, ChildCrawl, CrawlResult
from service.events import log_event
from service.locks import ArchiveLock
from service.queue import enqueue, make_app, queue_depth, source_timeout, visibility_timeout

VERIFY_JOB = "_verify"  # not a source name: source names never start with "_"
ENQUEUE_JOB = "_enqueue"
LEADER_LOCK = "scheduler"
CRON_JITTER_CAP = 30.0  # seconds; a cron line may fire every minute


def source_interval(source: Source, settings: Settings) -> timedelta | None:
    """The interval between runs, or None for a crontab schedule."""
    if source.schedule is None:
        return interval_delta(settings.default_interval)
    return source.schedule.interval


def make_trigger(source: Source, settings: Settings, jitter: bool = True) -> BaseTrigger:
    """The source's schedule as an APScheduler trigger (times in UTC)."""
    interval = source_interval(source, settings)
    if interval is None:
        assert source.schedule is not None
        assert source.schedule.cron is not None
        spread = min(settings.schedule_jitter, CRON_JITTER_CAP) if jitter else 0
        trigger = CronTrigger.from_crontab(source.schedule.cron, timezone=UTC)
        trigger.jitter = int(spread) or None  # from_crontab takes no jitter argument
        return trigger
    # Jitter spreads sources that share an interval, never by more than a tenth of it.
    spread = min(settings.schedule_jitter, interval.total_seconds() / 10) if jitter else 0
    return IntervalTrigger(
        seconds=int(interval.total_seconds()), timezone=UTC, jitter=int(spread) or None
    )


def next_due(source: Source, settings: Settings, last_started: datetime | None) -> datetime | None:
    """When the source is next due after its last run (None: never crawled, due now)."""
    if last_started is None:
        return None
    interval = source_interval(source, settings)
    if interval is not None:
        return last_started + interval
    trigger = make_trigger(source, settings, jitter=False)
    fire: datetime | None = trigger.get_next_fire_time(None, last_started + timedelta(seconds=1))
    return fire


def last_started(engine: Engine) -> dict[str, datetime]:
    """When each source's newest run started, by source name."""
    return {name: started for name, (_, started) in newest_runs(engine).items()}


def newest_runs(engine: Engine) -> dict[str, tuple[int, datetime]]:
    """Each source's newest run: its id and when it started, by source name."""
    with make_sessionmaker(engine)() as session:
        return {name: (run.id, run.started_at) for name, run in last_runs(session).items()}


class ConfigSnapshot:
    """The sources file as last loaded without error, copied where children read it.

    Children get the copy (DEPORTWATCH_SOURCES), not the file users edit, so a
    half-saved or broken edit never reaches a crawl: changes take effect on
    SIGHUP or restart, and only if the file is valid.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._dir = tempfile.TemporaryDirectory(prefix="deportwatch-")
        self.copy = Path(self._dir.name) / "sources.toml"
        self.config = self.load()

    def load(self) -> SourcesFile:
        """Read and validate the file; only a valid file replaces the copy."""
        raw, config = read_sources(self.path)
        self.copy.write_bytes(raw)
        return config

    def close(self) -> None:
        self._dir.cleanup()


class Service:
    """The scheduler and its crawls; ``run_forever`` is ``deportwatch schedule``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        load_taxonomy(settings.keywords)  # a broken taxonomy stops the service at once
        self.targets = alert_targets(settings.alert_urls)
        self.snapshot = ConfigSnapshot(settings.sources)
        # It opens and closes runs, queues alerts and records health while crawls
        # write: each of its transactions takes the archive's write lock.
        self.engine = make_writer_engine(settings.database_url)
        upgrade(self.engine)  # the container's first start creates the schema
        self.sessions = make_sessionmaker(self.engine)
        self.scheduler = BackgroundScheduler(
            executors={"default": JobPool(settings.max_concurrent_crawls)},
            job_defaults={
                "coalesce": True,  # runs missed while busy or asleep become one
                "max_instances": 1,  # a source never runs twice at once
                "misfire_grace_time": int(settings.misfire_grace),
            },
            timezone=UTC,
        )
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._reload = False
        self._lock = threading.Lock()
        self._alert_lock = threading.Lock()
        self.active: dict[str, ChildCrawl] = {}
        self._schedules: dict[str, Schedule | None] = {}  # each job's schedule when added
        # With a broker, this process only enqueues, and only while it leads.
        self.queue = make_app(settings) if settings.broker_url else None
        self.leader = ArchiveLock(self.engine, LEADER_LOCK)
        self._enqueued: dict[str, tuple[float, int | None]] = {}  # when, and the run seen then
        self._standby: bool | None = None

    # -- crawls -----------------------------------------------------------------

    def _child_env(self) -> dict[str, str]:
        return dict(os.environ) | {"DEPORTWATCH_SOURCES": str(self.snapshot.copy)}

    def crawl(self, name: str) -> CrawlResult | None:
        """One crawl of ``name`` in a child process; None when the service is stopping."""
        source = self.snapshot.config.get(name)
        if self.stopping.is_set() or source is None:
            return None
        timeout = source_timeout(source, self.settings)
        child = ChildCrawl(
            self.sessions,
            source,
            timeout,
            self._child_env(),
            start_mode=self.settings.crawl_start,
        )
        child.open_run()
        with self._lock:
            if self.stopping.is_set():
                child.stop()
            self.active[name] = child
        try:
            result = child.run()
        finally:
            with self._lock:
                self.active.pop(name, None)
        level = logging.WARNING if result.outcome in FAILED_OUTCOMES else logging.INFO
        log_event("crawl.end", level, pid=child.pid, timeout_s=timeout, **result.log_fields())
        self.process_alerts()
        return result

    def process_alerts(self) -> None:
        """Queue and send alerts; any failure is logged and retried after the next crawl."""
        max_age = timedelta(hours=self.settings.alert_max_age_hours)
        with self._alert_lock:
            try:
                with self.sessions.begin() as session:
                    queue_story_alerts(session, max_age)
                    queue_health_alerts(session, self.snapshot.config.sources)
                if self.targets:
                    with self.sessions() as session:
                        send_alerts(session, self.targets, max_age)
            except Exception as exc:  # alerts never stop the crawls
                log_event("alert.error", logging.ERROR, error=f"{type(exc).__name__}: {exc}")

    # -- enqueueing (with a broker) ---------------------------------------------

    def lead(self) -> bool:
        """Whether this process leads: takes the leader's lock when it is free."""
        was = self.leader.held
        leads = self.leader.acquire()
        if leads != was or self._standby is None:
            if leads:
                log_event("schedule.leading")
            else:
                log_event("schedule.standby", reason="another schedule process leads")
        self._standby = not leads
        return leads

    def enqueue_due(self) -> list[str]:
        """Enqueue each due source that is not on the queue already.

        A source enqueued is not enqueued again until a run of it starts, unless
        the queue has emptied and no run of it started within the visibility
        timeout: its task was lost (a broker restarted without its data) and is
        sent again. A task sent twice is crawled once: the worker skips a source
        crawled since the task was enqueued.
        """
        if self.queue is None or self.stopping.is_set() or not self.lead():
            return []
        config = self.snapshot.config
        newest = newest_runs(self.engine)
        now, clock = utcnow(), time.monotonic()
        horizon = visibility_timeout(self.settings, config.sources)
        depth: int | None = None
        sent = []
        try:
            for source in config.enabled:
                run_id, started = newest.get(source.name, (None, None))
                when = next_due(source, self.settings, started)
                if when is not None and when > now:
                    continue
                seen = self._enqueued.get(source.name)
                if seen is not None and seen[1] == run_id:
                    if clock - seen[0] < horizon:
                        continue
                    depth = queue_depth(self.queue) if depth is None else depth
                    if depth:  # it may still wait in the queue
                        continue
                enqueue(self.queue, source.name, run_id)
                self._enqueued[source.name] = (clock, run_id)
                sent.append(source.name)
        except OperationalError as exc:  # the broker is away: the next tick tries again
            log_event("enqueue.error", logging.WARNING, error=str(exc))
        if sent:
            log_event("crawl.enqueued", sources=sent)
        self.process_alerts()  # the leader alone sends alerts, so none goes twice
        return sent

    # -- jobs -------------------------------------------------------------------

    def sync_jobs(self) -> None:
        """One job per enabled source; changed schedules are replaced."""
        config = self.snapshot.config
        wanted = {s.name: s for s in config.enabled}
        started = last_started(self.engine)
        now = utcnow()
        for job in self.scheduler.get_jobs():
            if job.id == VERIFY_JOB:
                continue
            source = wanted.get(job.id)
            if source is None:
                job.remove()
                log_event("job.removed", source=job.id)
            elif self._schedules.get(job.id) != source.schedule:
                job.remove()  # added again below with its new trigger
        scheduled = {job.id for job in self.scheduler.get_jobs()}
        for name, source in wanted.items():
            if name in scheduled:
                continue
            due = next_due(source, self.settings, started.get(name))
            first = now if due is None or due <= now else due
            self.scheduler.add_job(
                self.crawl,
                trigger=make_trigger(source, self.settings),
                id=name,
                name=name,
                args=[name],
                next_run_time=first,
            )
            self._schedules[name] = source.schedule
            log_event(
                "job.scheduled",
                source=name,
                schedule=source.schedule.describe() if source.schedule else "default",
                first_run=first.isoformat(),
            )

    def verify_flagged(self) -> None:
        """``deportwatch verify --flagged`` in a child process: are flagged articles
        still online? Slow on purpose (``DEPORTWATCH_VERIFY_INTERVAL``)."""
        if self.stopping.is_set() or (self.queue is not None and not self.lead()):
            return
        command = [sys.executable, "-m", "deportwatch", "verify", "--flagged"]
        try:
            done = subprocess.run(  # noqa: S603 (our own command)
                command,
                env=self._child_env() | {"COLUMNS": "200"},
                capture_output=True,
                text=True,
                timeout=self.settings.crawl_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            log_event("verify.end", logging.WARNING, outcome="timeout")
            return
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        level = logging.INFO if done.returncode == 0 else logging.WARNING
        error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else None
        log_event(
            "verify.end",
            level,
            exit_code=done.returncode,
            summary=lines[-1] if lines else None,
            error=error,
        )

    def schedule_verify(self) -> None:
        if self.settings.verify_interval == "0":
            return
        every = interval_delta(self.settings.verify_interval)
        self.scheduler.add_job(
            self.verify_flagged,
            trigger=IntervalTrigger(seconds=int(every.total_seconds()), timezone=UTC),
            id=VERIFY_JOB,
            name=VERIFY_JOB,
            next_run_time=utcnow() + every,
        )
        log_event("job.scheduled", job="verify", every=self.settings.verify_interval)

    def reload(self) -> None:
        try:
            self.snapshot.config = self.snapshot.load()
        except ConfigError as exc:
            log_event(
                "config.error",
                logging.ERROR,
                error=str(exc),
                action="keeping the configuration that is running",
            )
            return
        if self.queue is None:
            self.sync_jobs()
        log_event("config.reloaded", sources=len(self.snapshot.config.enabled))

    # -- the service's life -----------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self.stopping.set()
        self._wake.set()

    def install_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def run_forever(self) -> None:
        self.install_signals()
        log_event(
            "service.start",
            sources=len(self.snapshot.config.enabled),
            max_concurrent_crawls=self.settings.max_concurrent_crawls,
            alert_targets=[t.label for t in self.targets],
            enqueues_only=self.queue is not None,
        )
        if self.queue is not None:
            self.scheduler.add_job(
                self.enqueue_due,
                trigger=IntervalTrigger(seconds=self.settings.queue_tick, timezone=UTC),
                id=ENQUEUE_JOB,
                name=ENQUEUE_JOB,
                next_run_time=utcnow(),
            )
        else:
            self.sync_jobs()
        self.schedule_verify()
        self.scheduler.start()
        while not self.stopping.is_set():
            self._wake.wait(5)
            self._wake.clear()
            if self._reload and not self.stopping.is_set():
                self._reload = False
                self.reload()
        log_event("service.stopping", running=sorted(self.active))
        self.scheduler.shutdown(wait=False)
        self._drain(lambda: bool(self.active))
        log_event("service.stop")

    def run_once(self) -> list[CrawlResult]:
        """Every due source once, at most ``max_concurrent_crawls`` at a time
        (with a broker: every due source enqueued, if this process leads)."""
        self.install_signals()
        if self.queue is not None:
            self.enqueue_due()
            return []
        started = last_started(self.engine)
        now = utcnow()
        due = [
            s
            for s in self.snapshot.config.enabled
            if (when := next_due(s, self.settings, started.get(s.name))) is None or when <= now
        ]
        log_event("once.start", due=[s.name for s in due])
        with ThreadPoolExecutor(self.settings.max_concurrent_crawls) as pool:
            futures: list[Future[CrawlResult | None]] = [
                pool.submit(self.crawl, s.name) for s in due
            ]
            while not self.stopping.is_set() and not all(f.done() for f in futures):
                wait(futures, timeout=0.5)
            self._drain(lambda: not all(f.done() for f in futures))
        results = [r for f in futures if (r := f.result()) is not None]
        self.process_alerts()
        return results

    def _drain(self, busy: Callable[[], bool]) -> None:
        """Let running crawls finish within the grace period, then stop them."""
        deadline = time.monotonic() + self.settings.shutdown_grace
        while busy() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not busy():
            return
        with self._lock:
            children = list(self.active.values())
        for child in children:
            log_event("crawl.stopping", source=child.source.name, reason="shutdown grace over")
            child.stop()
        deadline = time.monotonic() + KILL_AFTER
        while busy() and time.monotonic() < deadline:
            time.sleep(0.2)
        for child in children:
            child.kill()
        while busy():
            time.sleep(0.1)

    def close(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.leader.release()
        self.snapshot.close()
        self.engine.dispose()


def run_service(settings: Settings, once: bool = False) -> list[CrawlResult]:
    """``deportwatch schedule [--once]``: returns the crawls of a --once run."""
    service = Service(settings)
    try:
        if once:
            return service.run_once()
        service.run_forever()
        return []
    finally:
        service.close()
