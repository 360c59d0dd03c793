"""``deportwatch schedule``, ``sources`` and ``status``: the service and its sources' health."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from db.engine import describe_url, explain_database_error, make_sessionmaker
from db.migrate import NoArchiveError, open_archive_readonly
from db.repository.runs import last_runs, running_crawls
from deportwatch.archive.health import FAILED_OUTCOMES, SourceHealth, archive_health
from deportwatch.cli.common import error_line, out, reported_errors
from deportwatch.config.errors import DeportwatchError
from deportwatch.config.settings import Settings, load_settings
from deportwatch.config.sources import Source, load_sources
from pipeline.spool import Spool


class ListFormat(StrEnum):
    table = "table"
    json = "json"


def schedule(
    once: Annotated[
        bool, typer.Option("--once", help="Crawl every due source one time, then exit.")
    ] = False,
) -> None:
    """Run the background service: every enabled source crawled on its schedule.

    Each crawl runs in a child process with a timeout; logs are JSON lines on
    stdout. SIGTERM/SIGINT stop it gracefully; SIGHUP reloads the sources file.
    With --once, exits 1 if any crawl failed.

    Examples: deportwatch schedule · deportwatch schedule --once (from cron)
    """
    # The service (APScheduler, alerts, the crawler's children) is imported when
    # it runs: sources and status start without it.
    from scheduler import run_service
    from service.events import setup_service_logging

    with reported_errors():
        settings = load_settings()
        setup_service_logging()
        results = run_service(settings, once=once)
    if any(r.outcome in FAILED_OUTCOMES for r in results):
        raise typer.Exit(1)


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", min=1, max=64, help="Crawls at once (default: max_concurrent_crawls)."
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Health check: exit 0 if this machine's worker answers."),
    ] = False,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Node name (default: deportwatch@HOSTNAME)."),
    ] = None,
) -> None:
    """Run crawls from the queue (DEPORTWATCH_BROKER_URL), each in a child process.

    A crawl is acknowledged when it has ended: a worker killed mid-crawl has its
    crawl delivered to another. SIGTERM lets running crawls end, then stops.

    Examples: deportwatch worker --concurrency 4 · deportwatch worker --check
    """
    # Celery and the service are imported when a worker runs or is checked.
    from service.events import setup_service_logging
    from service.queue import make_app, node_name, ping_worker, run_worker

    with reported_errors():
        settings = load_settings()
        if check:
            app = make_app(settings)
            answered = ping_worker(app, name)
            state = "answers" if answered else "does not answer"
            print(f"worker {node_name(name)} {state}")
            if not answered:
                raise typer.Exit(1)
            return
        setup_service_logging()
        run_worker(settings, concurrency or settings.max_concurrent_crawls, name)


def list_sources(
    output: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = (
        ListFormat.table
    ),
) -> None:
    """List the configured sources with their last crawl's outcome.

    When the archive cannot be read (its database is down, say), the sources are
    still listed, without their last crawls, and the command exits 1 after one
    line on stderr saying why. An archive not created yet is no error: nothing
    has been crawled.

    Example: deportwatch sources --format json
    """
    with reported_errors():
        settings = load_settings()
        config = load_sources(settings.sources)
        runs = _last_runs_if_any(settings)
    rows: list[dict[str, object]] = []
    for source in config.sources:
        run = runs.get(source.name) if runs is not None else None
        rows.append(
            {
                "name": source.name,
                "kind": source.kind,
                "languages": list(source.languages),
                "schedule": source.schedule.describe() if source.schedule else None,
                "enabled": source.enabled,
                "start_urls": list(source.start_urls),
                "last_crawl": run[0] if run else None,
                "last_outcome": run[1] if run else None,
            }
        )
    if output is ListFormat.json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
    else:
        _print_sources(settings, rows, archive_read=runs is not None)
    if runs is None:
        raise typer.Exit(1)


def _print_sources(settings: Settings, rows: list[dict[str, object]], archive_read: bool) -> None:
    # An archive that could not be read does not say "never crawled".
    never = "never" if archive_read else "unknown"
    table = Table(title=escape(f"Sources ({settings.sources})"))
    table.add_column("name", no_wrap=True)
    for column in ("kind", "languages", "schedule", "enabled", "last crawl", "outcome"):
        table.add_column(column)
    for row in rows:
        cells = (
            str(row["name"]),
            str(row["kind"]),
            ", ".join(row["languages"]),  # type: ignore[arg-type]
            str(row["schedule"] or "—"),
            "yes" if row["enabled"] else "no",
            str(row["last_crawl"] or never)[:16].replace("T", " "),
            str(row["last_outcome"] or "—"),
        )
        table.add_row(*(escape(cell) for cell in cells))
    out.print(table)


def status(
    output: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = (
        ListFormat.table
    ),
) -> None:
    """Every source's health; exits 1 when an enabled source is unhealthy.

    Unhealthy: 3 failed crawls in a row, 3 crawls in a row that found nothing,
    most recent items without a date or text (extraction broken), or silence far
    longer than the source's usual rhythm. Usable as a container health check.

    Example: deportwatch status --format json
    """
    with reported_errors():
        settings = load_settings()
        config = load_sources(settings.sources)
        health, running = _health_if_any(settings, config.sources)
    # Items a crawl could not store wait in the spool for the next crawl.
    waiting = Spool(settings.spool_dir, settings.database_url).pending()
    from service.queue import waiting_crawls  # the broker's client, when one is set

    queue = waiting_crawls(settings)
    if output is ListFormat.json:
        records = [
            h.record() | {"spooled": waiting.get(h.name, 0), "running": running.get(h.name)}
            for h in health
        ]
        print(json.dumps(records, ensure_ascii=False, indent=2))
    else:
        table = Table(title="Source health")
        for column in ("source", "state", "last crawl", "outcome", "last new item", "problems"):
            table.add_column(column, no_wrap=column != "problems")
        colours = {"healthy": "green", "unhealthy": "red", "pending": "yellow"}
        for h in health:
            table.add_row(
                escape(h.name),
                f"[{colours.get(h.state, 'dim')}]{h.state}[/]",
                h.last_run_at.strftime("%Y-%m-%d %H:%M") if h.last_run_at else "never",
                escape(h.last_outcome or "—"),
                h.last_new_item_at.strftime("%Y-%m-%d %H:%M") if h.last_new_item_at else "—",
                escape("; ".join(h.problems)) or "—",
            )
        out.print(table)
        for name, count in sorted(waiting.items()):
            out.print(
                f"{name}: {count} fetched items wait in the spool {settings.spool_dir}; "
                "the next crawl of this source stores them",
                highlight=False,
                markup=False,
            )
        for name, where in running.items():
            out.print(
                f"{name}: crawling on {where['host']}, pid {where['pid']}, "
                f"since {str(where['started_at'])[:19].replace('T', ' ')} UTC",
                highlight=False,
                markup=False,
            )
        if queue is not None:
            depth = (
                "unknown (the broker does not answer)" if queue.waiting is None else queue.waiting
            )
            out.print(f"queue: {depth} crawls wait for a worker", highlight=False, markup=False)
    if any(h.state == "unhealthy" for h in health):
        raise typer.Exit(1)


@contextmanager
def _existing_archive(settings: Settings) -> Iterator[Session | None]:
    """A read-only session on the archive when there is one; else None.

    For commands that only read: they never create or migrate an archive, and
    read one handed over read-only.
    """
    with ExitStack() as stack:
        try:
            engine = stack.enter_context(open_archive_readonly(settings.database_url))
        except NoArchiveError:
            yield None
            return
        yield stack.enter_context(make_sessionmaker(engine)())


def _health_if_any(
    settings: Settings, sources: tuple[Source, ...]
) -> tuple[list[SourceHealth], dict[str, dict[str, object]]]:
    """Health from the archive, and where each running crawl runs (host, pid,
    since) by source name; before the first crawl every source is pending."""
    with _existing_archive(settings) as session:
        if session is None:
            pending = [
                SourceHealth(s.name, s.enabled, "pending" if s.enabled else "disabled")
                for s in sources
            ]
            return pending, {}
        running: dict[str, dict[str, object]] = {
            name: {"host": run.host, "pid": run.pid, "started_at": run.started_at.isoformat()}
            for name, run in running_crawls(session)
        }
        return archive_health(session, sources), running


def _last_runs_if_any(settings: Settings) -> dict[str, tuple[str, str]] | None:
    """Last runs from the archive, none before the first crawl; None (said on
    stderr) when the archive is there but cannot be read."""
    try:
        with _existing_archive(settings) as session:
            if session is None:
                return {}
            return {
                name: (run.started_at.isoformat(), run.outcome)
                for name, run in last_runs(session).items()
            }
    except (SQLAlchemyError, DeportwatchError) as exc:
        reason = explain_database_error(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
        error_line(
            f"database {describe_url(settings.database_url)} could not be read, so last crawls "
            f"are not shown: {reason}"
        )
        return None
