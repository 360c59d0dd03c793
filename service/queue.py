"""Crawls on a Celery task queue: one task is one crawl of one source.

``deportwatch schedule`` with DEPORTWATCH_BROKER_URL set enqueues the sources
that are due; ``deportwatch worker`` runs each task as the service runs a crawl:
a child process (``service.child``) with its run row, spool and timeout.

Delivery is at least once: a task is acknowledged when its crawl has ended
(late ack), so the crawl of a worker that is killed, or whose machine is gone,
is delivered again (RabbitMQ: when its connection drops; Redis: after the
visibility timeout, longer than the longest crawl). Running a crawl twice stores
nothing twice (articles are stored once per URL), and the worker makes a repeat
cheap: it holds the source's lock while the crawl runs (service/locks.py), and a
scheduled task whose source was crawled since it was enqueued is skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from kombu.exceptions import ChannelError, OperationalError
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_sessionmaker, make_writer_engine
from db.migrate import upgrade
from db.models import CrawlRun, SourceRow
from db.repository.runs import LOST_RUN, close_lost_runs, crawled_since, ensure_source
from deportwatch.config.errors import ConfigError
from deportwatch.config.settings import Settings, load_settings
from deportwatch.config.sources import Source, interval_delta, load_sources
from service.child import KILL_AFTER, ChildCrawl
from service.events import log_event
from service.locks import ArchiveLock

if TYPE_CHECKING:
    from celery import Celery, Task

    from deportwatch.crawl.runner import RunSummary

QUEUE = "deportwatch.crawls"
TASK = "deportwatch.crawl"
VISIBILITY_MARGIN = 300.0  # seconds past the longest crawl before Redis delivers it again
# RabbitMQ's default consumer_timeout (rabbitmq.conf): a task held unacknowledged
# longer is taken back and its channel closed. AMQP does not tell a client the
# broker's setting, so a worker can only say when the crawls may outlast the default.
RABBITMQ_CONSUMER_TIMEOUT = 1800.0
BUSY_RETRY = 15.0  # seconds before a task whose source is being crawled is tried again


def source_timeout(source: Source, settings: Settings) -> float:
    """Seconds the source's crawl may run before it is stopped."""
    if source.timeout:
        return interval_delta(source.timeout).total_seconds()
    return settings.crawl_timeout


def longest_hold(settings: Settings, sources: Iterable[Source]) -> float:
    """Seconds a worker may hold a crawl's task: the longest crawl, its stop included."""
    longest = max((source_timeout(s, settings) for s in sources), default=0.0)
    return max(longest, settings.crawl_timeout) + KILL_AFTER


def visibility_timeout(settings: Settings, sources: Iterable[Source]) -> float:
    """How long Redis waits for a taken task's ack before it delivers it again:
    longer than any crawl may take, stop included, or a long crawl would run twice."""
    floor = longest_hold(settings, sources)
    chosen = settings.broker_visibility_timeout
    if chosen is None:
        return floor + VISIBILITY_MARGIN
    if chosen <= floor:
        raise ConfigError(
            f"setting DEPORTWATCH_BROKER_VISIBILITY_TIMEOUT: {chosen:g} s is not longer than "
            f"the longest crawl ({floor:g} s, its stop included); a crawl would run twice"
        )
    return chosen


def is_amqp(url: str) -> bool:
    return url.split(":", 1)[0] in ("amqp", "amqps", "pyamqp")


def rabbitmq_caution(settings: Settings, sources: Iterable[Source]) -> str | None:
    """What a worker on RabbitMQ says when a crawl may outlast the broker's default
    consumer_timeout: RabbitMQ would take the task back mid-crawl (the crawl lock and
    the run rows keep it from running twice, but its channel is closed)."""
    if not settings.broker_url or not is_amqp(settings.broker_url):
        return None
    held = longest_hold(settings, sources)
    if held < RABBITMQ_CONSUMER_TIMEOUT:
        return None
    return (
        f"a crawl may hold its task {held:g} s, RabbitMQ's default consumer_timeout is "
        f"{RABBITMQ_CONSUMER_TIMEOUT:g} s: set consumer_timeout = {int((held + 60) * 1000)} "
        "(milliseconds) or more in rabbitmq.conf unless it is set already"
    )


def make_app(settings: Settings) -> Celery:
    """The Celery app of ``settings.broker_url``, with the crawl task registered."""
    if not settings.broker_url:
        raise ConfigError(
            "setting DEPORTWATCH_BROKER_URL: no broker set (e.g. redis://HOST:6379/0)"
        )
    # Imported here: every deportwatch command, each crawl process among them,
    # imports this module, and Celery alone takes half a second to import.
    from celery import Celery  # noqa: PLC0415

    sources = load_sources(settings.sources).sources
    app = Celery("deportwatch", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # acknowledged when the crawl has ended, not when it starts
        task_reject_on_worker_lost=True,  # a pool process killed mid-crawl: delivered again
        worker_prefetch_multiplier=1,  # a worker takes a crawl only when it has room for it
        task_default_queue=QUEUE,
        task_ignore_result=True,  # the archive's run rows are the results
        broker_transport_options=_transport_options(
            settings.broker_url, visibility_timeout(settings, sources)
        ),
        broker_connection_retry_on_startup=True,
        # A crawl running when the broker goes away goes on (its ack is lost with
        # the connection; the scheduler sees the run and sends it no second time).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_serializer="json",
        accept_content=["json"],
    )
    app.task(name=TASK, bind=True, max_retries=None)(crawl_task)
    return app


def _transport_options(url: str, visibility: float) -> dict[str, Any]:
    if is_amqp(url):
        # RabbitMQ puts a taken task back when its worker's connection drops, and
        # has no visibility timeout. A sent task is on the broker once it says so
        # (publisher confirms): a broker restart right after cannot lose it.
        return {"confirm_publish": True}
    # Redis: a taken task not acknowledged within ``visibility`` seconds is put
    # back; workers look for such tasks every tenth of it (10 s at most).
    return {
        "visibility_timeout": visibility,
        "unacked_restore_interval": max(1.0, min(10.0, visibility / 10)),
        "unacked_restore_throttle": 1,
    }


def node_name(name: str | None = None) -> str:
    """The worker's Celery node name: one per machine (or container) by default."""
    return name or f"deportwatch@{socket.gethostname()}"


# -- the worker's side ----------------------------------------------------------


@dataclass
class _Archive:
    engine: Engine
    sessions: sessionmaker[Session]


@cache
def _archive(url: str, pid: int) -> _Archive:
    """The archive's engine in this pool process (one per process: never across a fork)."""
    engine = make_writer_engine(url)
    return _Archive(engine, make_sessionmaker(engine))


def crawl_task(task: Task[Any, Any], name: str, expect_last_run: int | None, force: bool) -> str:
    """One crawl of ``name``; returns how it went (ok, skipped, busy, ... )."""
    settings = load_settings()
    source = load_sources(settings.sources).get(name)
    if source is None:
        log_event("crawl.unknown", logging.WARNING, source=name)
        return "unknown"
    archive = _archive(settings.database_url, os.getpid())
    lock = ArchiveLock(archive.engine, f"crawl:{name}")
    if not lock.acquire():
        # Crawled elsewhere right now: a scheduled crawl is then no longer due, a
        # forced one waits its turn.
        log_event("crawl.busy", source=name, retry_in_s=BUSY_RETRY)
        raise task.retry(countdown=BUSY_RETRY)
    try:
        return _crawl_locked(settings, archive.sessions, source, expect_last_run, force)
    finally:
        lock.release()


def _crawl_locked(
    settings: Settings,
    sessions: sessionmaker[Session],
    source: Source,
    expect_last_run: int | None,
    force: bool,
) -> str:
    with sessions.begin() as session:
        row = ensure_source(session, source.name, source.kind, source.enabled)
        lost = close_lost_runs(session, row.id)
        since = None if force else crawled_since(session, row.id, expect_last_run)
    if lost:
        log_event("crawl.lost", logging.WARNING, source=source.name, run_ids=lost)
    if since is not None:
        log_event("crawl.skipped", source=source.name, reason=f"crawled since, run {since}")
        return "skipped"
    timeout = source_timeout(source, settings)
    child = ChildCrawl(
        sessions,
        source,
        timeout,
        dict(os.environ),
        die_with_parent=True,
        start_mode=settings.crawl_start,
    )
    result = child.run()
    level = logging.WARNING if result.outcome in ("failed", "timeout", "crashed") else logging.INFO
    log_event(
        "crawl.end",
        level,
        pid=child.pid,
        host=socket.gethostname(),
        timeout_s=timeout,
        **result.log_fields(),
    )
    return result.outcome


# -- the sending side -----------------------------------------------------------


def enqueue(app: Celery, name: str, expect_last_run: int | None, force: bool = False) -> str:
    """Put one crawl of ``name`` on the queue; its task id."""
    result = app.send_task(TASK, args=[name, expect_last_run, force], queue=QUEUE)
    return str(result.id)


def queue_depth(app: Celery) -> int:
    """Crawls waiting in the queue (not those a worker has taken)."""
    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=5)
        # The transport's own channel errors: RabbitMQ's 404 NOT_FOUND among them.
        absent: tuple[type[BaseException], ...] = (ChannelError, *connection.channel_errors)
        try:
            channel: Any = connection.default_channel  # kombu's virtual or AMQP channel
            declared = channel.queue_declare(queue=QUEUE, passive=True)
        except absent:  # no worker has declared it yet: nothing waits
            return 0
        return int(declared.message_count)


@dataclass(frozen=True)
class QueueState:
    waiting: int | None  # None: the broker did not answer


def waiting_crawls(settings: Settings) -> QueueState | None:
    """The queue's depth for ``status`` and the web view; None without a broker."""
    if not settings.broker_url:
        return None
    try:
        return QueueState(queue_depth(make_app(settings)))
    except (OperationalError, OSError, ConfigError):
        return QueueState(None)


def ping_worker(app: Celery, name: str | None = None, timeout: float = 5.0) -> bool:
    """Whether the worker ``name`` (this machine's by default) answers."""
    try:
        replies = app.control.ping(destination=[node_name(name)], timeout=timeout)
    except OperationalError:
        return False
    return any(node_name(name) in reply for reply in replies or [])


def wait_for_crawls(
    sessions: sessionmaker[Session], names: list[str], after_run: int, poll: float = 0.5
) -> list[RunSummary]:
    """Each source's crawl enqueued after run ``after_run``, once it has ended.

    A run lost with its worker does not count: its crawl is delivered again."""
    # The crawler's module, only for its summary type: `status` imports this
    # module for the queue's depth and starts without Scrapy.
    from deportwatch.crawl.runner import RunSummary  # noqa: PLC0415

    done: dict[str, RunSummary] = {}
    while len(done) < len(names):
        with sessions() as session:
            for name, run in _newest_since(session, after_run):
                if name in names and _finished(run):
                    done[name] = RunSummary.of(name, run)
        if len(done) < len(names):
            time.sleep(poll)
    return [done[name] for name in names]


def _newest_since(session: Session, after_run: int) -> list[tuple[str, CrawlRun]]:
    rows = session.execute(
        select(SourceRow.name, CrawlRun)
        .join(SourceRow, SourceRow.id == CrawlRun.source_id)
        .where(CrawlRun.id > after_run)
        .order_by(CrawlRun.id)
    )
    return list({name: (name, run) for name, run in rows}.values())


def _finished(run: CrawlRun) -> bool:
    lost = run.outcome == "crashed" and (run.error_text or "").startswith(LOST_RUN)
    return run.outcome != "running" and not lost


def run_worker(settings: Settings, concurrency: int, name: str | None = None) -> None:
    """``deportwatch worker``: takes crawls from the queue until SIGTERM (then lets
    the running ones end: Celery's warm shutdown)."""
    app = make_app(settings)
    engine = make_writer_engine(settings.database_url)
    try:
        upgrade(engine)  # a worker may be the first to reach a new archive
    finally:
        engine.dispose()
    log_event("worker.start", node=node_name(name), concurrency=concurrency)
    caution = rabbitmq_caution(settings, load_sources(settings.sources).sources)
    if caution:
        log_event("worker.consumer_timeout", logging.WARNING, note=caution)
    app.worker_main(
        [
            "--quiet",  # no banner: the output is JSON lines, as the service's
            "worker",
            f"--concurrency={concurrency}",
            f"--hostname={node_name(name)}",
            f"--queues={QUEUE}",
            "--loglevel=INFO",
            "--without-mingle",  # workers learn nothing from each other at start
            "--without-gossip",
        ]
    )


def crawl_on_queue(settings: Settings, sources: list[Source]) -> list[RunSummary]:
    """``deportwatch crawl --queue``: every source's crawl enqueued, waited for."""
    app = make_app(settings)
    engine = make_writer_engine(settings.database_url)
    try:
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            after = session.scalar(select(func.max(CrawlRun.id))) or 0
        for source in sources:
            enqueue(app, source.name, None, force=True)
        return wait_for_crawls(sessions, [s.name for s in sources], after)
    finally:
        engine.dispose()
