"""``deportwatch init`` and ``deportwatch crawl``: the archive made ready, sources crawled once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from db.engine import describe_url
from db.migrate import current_revision, open_archive
from deportwatch.archive.health import FAILED_OUTCOMES
from deportwatch.cli.common import err, error_line, out, reported_errors
from deportwatch.config.errors import UsageError
from deportwatch.config.keywords import load_taxonomy
from deportwatch.config.settings import Settings, load_settings
from deportwatch.config.sources import Source, load_sources

if TYPE_CHECKING:
    from deportwatch.crawl.runner import RunSummary


def init() -> None:
    """Create the archive's schema, or upgrade it to the newest version.

    Example: DEPORTWATCH_DATABASE_URL=postgresql://postgres@db/deportwatch deportwatch init
    """
    with reported_errors():
        settings = load_settings()
        with open_archive(settings.database_url) as engine:
            revision = current_revision(engine)
        out.print(
            f"Archive ready: {describe_url(settings.database_url)} (schema {revision})",
            markup=False,
        )


def _select_sources(settings: Settings, names: list[str], crawl_all: bool) -> list[Source]:
    config = load_sources(settings.sources)
    if crawl_all and names:
        raise UsageError("give source names or --all, not both")
    if crawl_all:
        if not config.enabled:
            raise UsageError(f"{settings.sources}: no enabled source")
        return list(config.enabled)
    if not names:
        raise UsageError("name the sources to crawl, or use --all")
    known = ", ".join(s.name for s in config.sources)
    selected = []
    for name in dict.fromkeys(names):
        source = config.get(name)
        if source is None:
            raise UsageError(f"unknown source '{name}' (known: {known})")
        selected.append(source)
    return selected


def crawl(  # noqa: PLR0917 - Typer reads each option from a parameter
    names: Annotated[list[str] | None, typer.Argument(help="Sources to crawl.")] = None,
    crawl_all: Annotated[bool, typer.Option("--all", help="Every enabled source.")] = False,
    replay: Annotated[
        Path | None,
        typer.Option(help="Answer requests from a snapshot directory DIR/<host>/<path>."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every page.")] = False,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue", help="Enqueue the crawls for the workers (DEPORTWATCH_BROKER_URL); wait."
        ),
    ] = False,
    run_id: Annotated[
        int | None,
        typer.Option(hidden=True, help="The scheduler's already opened crawl_runs row."),
    ] = None,
) -> None:
    """Crawl sources once into the archive, then print a summary per source.

    Exits 1 only when every source failed.

    Examples: deportwatch crawl --all · deportwatch crawl kyiv-independent nv-en ·
    deportwatch crawl --all --replay tests/fixtures/web · deportwatch crawl --all --queue
    """
    with reported_errors():
        settings = load_settings()
        sources = _select_sources(settings, names or [], crawl_all)
        load_taxonomy(settings.keywords)  # a broken taxonomy stops the crawl before it starts
        if replay is not None and not replay.is_dir():
            raise UsageError(f"--replay {replay}: no such directory")
        # The crawler (Scrapy, Twisted, the pipeline) and the queue's client are
        # imported once the crawl is sure to run: other commands, and a crawl
        # refused for a broken file, start without them.
        from deportwatch.crawl.runner import run_crawl, waiting_in_spool

        if queue and (replay is not None or run_id is not None):
            raise UsageError("--queue crawls on the workers, with neither --replay nor --run-id")
        if queue:
            from service.queue import crawl_on_queue

            err.print(
                f"{len(sources)} crawls go on the queue; waiting for the workers to run them",
                markup=False,
                highlight=False,
            )
            summaries = crawl_on_queue(settings, sources)
        else:
            summaries = run_crawl(
                settings, sources, err, replay_dir=replay, verbose=verbose, run_id=run_id
            )

    _print_summary(summaries)
    if summaries and all(s.outcome == "failed" for s in summaries):
        raise typer.Exit(1)
    waiting = waiting_in_spool(settings)
    if waiting:
        error_line(
            f"the archive did not take {sum(waiting.values())} fetched items; they "
            f"wait in the spool {settings.spool_dir} and the next crawl stores them"
        )
        raise typer.Exit(1)


def _print_summary(summaries: list[RunSummary]) -> None:
    table = Table(title="Crawl summary")
    table.add_column("source", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    columns = ("pages", "new", "new version", "duplicate", "unchanged", "flagged", "readings")
    for column in (*columns, "errors"):
        table.add_column(column, justify="right")
    colours = {"ok": "green", "partial": "yellow", "interrupted": "red", "unrecorded": "red"}
    colours |= dict.fromkeys(FAILED_OUTCOMES, "red")
    for s in summaries:
        table.add_row(
            escape(s.source),
            f"[{colours.get(s.outcome, 'white')}]{s.outcome}[/]",
            *(
                str(n)
                for n in (
                    s.pages,
                    s.new,
                    s.updated,
                    s.duplicate,
                    s.unchanged,
                    s.flagged,
                    s.readings,
                    s.errors,
                )
            ),
        )
    out.print(table)
    for s in summaries:
        lines = (s.error_text or "").splitlines()
        # Error lines quote pages and URLs: text, never markup.
        for line in lines[:3]:
            out.print(
                f"[bold]{escape(s.source)}[/]: {escape(line)}", highlight=False, soft_wrap=True
            )
        if len(lines) > 3:
            out.print(f"[bold]{escape(s.source)}[/]: … {len(lines) - 3} more (see the crawl log)")
