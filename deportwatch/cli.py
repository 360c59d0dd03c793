"""The ``deportwatch`` command: a thin layer over the library functions."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from db.engine import describe_url, explain_database_error, make_sessionmaker
from db.migrate import current_revision, open_archive
from db.repository import last_runs
from deportwatch.crawl import RunSummary, run_crawl, waiting_in_spool
from deportwatch.dates import parse_since
from deportwatch.errors import DeportwatchError, UsageError
from deportwatch.events import setup_service_logging
from deportwatch.figures import FIELDS as FIGURE_FIELDS
from deportwatch.figures import figure_records
from deportwatch.health import FAILED_OUTCOMES, SourceHealth, archive_health
from deportwatch.keywords import load_taxonomy
from deportwatch.reflag import count_articles
from deportwatch.reflag import reflag as run_reflag
from deportwatch.settings import Settings, load_settings
from deportwatch.show import article_record, load_article, match_record, version_diffs
from deportwatch.sources import Source, load_sources
from pipeline.language import detect_language
from pipeline.matcher import FlagResult, Matcher
from pipeline.text import clean_text
from scheduler import run_service

app = typer.Typer(
    name="deportwatch",
    help="Watch Ukrainian sources, archive what they publish, flag deportation reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped output is not cut to 80 columns: tables stay readable in files and logs.
_PIPE_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140
out = Console(width=_PIPE_WIDTH)
err = Console(stderr=True, width=_PIPE_WIDTH)


class ListFormat(StrEnum):
    table = "table"
    json = "json"


class FiguresFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class ShowFormat(StrEnum):
    text = "text"
    json = "json"


@contextmanager
def reported_errors() -> Iterator[None]:
    """Known errors become one line on stderr and their exit code, never a traceback."""
    try:
        yield
    except DeportwatchError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except SQLAlchemyError as exc:
        err.print(
            f"[red]error:[/] database: {explain_database_error(exc)}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def _settings() -> Settings:
    return load_settings()


@app.command()
def init() -> None:
    """Create the archive's schema, or upgrade it to the newest version.

    Example: DEPORTWATCH_DATABASE_URL=postgresql://postgres@db/deportwatch deportwatch init
    """
    with reported_errors():
        settings = _settings()
        with open_archive(settings.database_url) as engine:
            revision = current_revision(engine)
        out.print(f"Archive ready: {describe_url(settings.database_url)} (schema {revision})")


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


@app.command()
def crawl(
    names: Annotated[list[str] | None, typer.Argument(help="Sources to crawl.")] = None,
    crawl_all: Annotated[bool, typer.Option("--all", help="Every enabled source.")] = False,
    replay: Annotated[
        Path | None,
        typer.Option(help="Answer requests from a snapshot directory DIR/<host>/<path>."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every page.")] = False,
    run_id: Annotated[
        int | None,
        typer.Option(hidden=True, help="The scheduler's already opened crawl_runs row."),
    ] = None,
) -> None:
    """Crawl sources once into the archive, then print a summary per source.

    Exits 1 only when every source failed.

    Examples: deportwatch crawl --all · deportwatch crawl kyiv-independent nv-en ·
    deportwatch crawl --all --replay tests/fixtures/web
    """
    with reported_errors():
        settings = _settings()
        sources = _select_sources(settings, names or [], crawl_all)
        load_taxonomy(settings.keywords)  # a broken taxonomy stops the crawl before it starts
        if replay is not None and not replay.is_dir():
            raise UsageError(f"--replay {replay}: no such directory")
        summaries = run_crawl(
            settings, sources, err, replay_dir=replay, verbose=verbose, run_id=run_id
        )

    _print_summary(summaries)
    if summaries and all(s.outcome == "failed" for s in summaries):
        raise typer.Exit(1)
    waiting = waiting_in_spool(settings)
    if waiting:
        err.print(
            f"error: the archive did not take {sum(waiting.values())} fetched items; they "
            f"wait in the spool {settings.spool_dir} and the next crawl stores them",
            highlight=False,
            soft_wrap=True,
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
            s.source,
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
        for line in lines[:3]:
            out.print(f"[bold]{s.source}[/]: {line}", highlight=False, soft_wrap=True)
        if len(lines) > 3:
            out.print(f"[bold]{s.source}[/]: … {len(lines) - 3} more (see the crawl log)")


@app.command()
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
    with reported_errors():
        settings = _settings()
        setup_service_logging()
        results = run_service(settings, once=once)
    if any(r.outcome in FAILED_OUTCOMES for r in results):
        raise typer.Exit(1)


@app.command("sources")
def list_sources(
    output: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = (
        ListFormat.table
    ),
) -> None:
    """List the configured sources with their last crawl's outcome.

    Example: deportwatch sources --format json
    """
    with reported_errors():
        settings = _settings()
        config = load_sources(settings.sources)
        runs = _last_runs_if_any(settings)
    rows = []
    for source in config.sources:
        run = runs.get(source.name)
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
        return
    table = Table(title=f"Sources ({settings.sources})")
    table.add_column("name", no_wrap=True)
    for column in ("kind", "languages", "schedule", "enabled", "last crawl", "outcome"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["kind"]),
            ", ".join(row["languages"]),  # type: ignore[arg-type]
            str(row["schedule"] or "—"),
            "yes" if row["enabled"] else "no",
            str(row["last_crawl"] or "never")[:16].replace("T", " "),
            str(row["last_outcome"] or "—"),
        )
    out.print(table)


@app.command()
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
        settings = _settings()
        config = load_sources(settings.sources)
        health = _health_if_any(settings, config.sources)
    # Items a crawl could not store wait in the spool for the next crawl.
    waiting = waiting_in_spool(settings)
    if output is ListFormat.json:
        records = [h.record() | {"spooled": waiting.get(h.name, 0)} for h in health]
        print(json.dumps(records, ensure_ascii=False, indent=2))
    else:
        table = Table(title="Source health")
        for column in ("source", "state", "last crawl", "outcome", "last new item", "problems"):
            table.add_column(column, no_wrap=column != "problems")
        colours = {"healthy": "green", "unhealthy": "red", "pending": "yellow"}
        for h in health:
            table.add_row(
                h.name,
                f"[{colours.get(h.state, 'dim')}]{h.state}[/]",
                h.last_run_at.strftime("%Y-%m-%d %H:%M") if h.last_run_at else "never",
                h.last_outcome or "—",
                h.last_new_item_at.strftime("%Y-%m-%d %H:%M") if h.last_new_item_at else "—",
                escape("; ".join(h.problems)) or "—",
            )
        out.print(table)
        for name, count in sorted(waiting.items()):
            out.print(
                f"{name}: {count} fetched items wait in the spool {settings.spool_dir}; "
                "the next crawl of this source stores them",
                highlight=False,
            )
    if any(h.state == "unhealthy" for h in health):
        raise typer.Exit(1)


@contextmanager
def _existing_archive(settings: Settings) -> Iterator[Session | None]:
    """A session on the archive when one exists with its tables; else None.

    For commands that only read: they never create or migrate an archive.
    """
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        yield None
        return
    with open_archive(url, migrate=False) as engine:
        if not inspect(engine).has_table("crawl_runs"):
            yield None
            return
        with make_sessionmaker(engine)() as session:
            yield session


def _health_if_any(settings: Settings, sources: tuple[Source, ...]) -> list[SourceHealth]:
    """Health from the archive; before the first crawl every source is pending."""
    with _existing_archive(settings) as session:
        if session is None:
            return [
                SourceHealth(s.name, s.enabled, "pending" if s.enabled else "disabled")
                for s in sources
            ]
        return archive_health(session, sources)


def _last_runs_if_any(settings: Settings) -> dict[str, tuple[str, str]]:
    """Last runs from the archive; an unreachable or missing archive shows none."""
    try:
        with _existing_archive(settings) as session:
            if session is None:
                return {}
            return {
                name: (run.started_at.isoformat(), run.outcome)
                for name, run in last_runs(session).items()
            }
    except SQLAlchemyError:
        return {}


def _flag_json(result: FlagResult) -> dict[str, object]:
    return {
        "flagged": result.flagged,
        "score": result.score,
        "categories": list(result.categories),
        "keywords_version": result.version,
        "matches": [match_record(m) for m in result.matches],
    }


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None


@app.command()
def flag(
    source: Annotated[
        str, typer.Argument(help="Text file to flag, or - for standard input.")
    ] = "-",
    title: Annotated[str, typer.Option(help="Title to flag with the text.")] = "",
    lang: Annotated[str | None, typer.Option(help="uk, ru or en (detected when omitted).")] = None,
    jsonl: Annotated[
        bool,
        typer.Option("--jsonl", help='Input is JSON lines: {"id", "title", "text", "lang"?}.'),
    ] = False,
) -> None:
    """Flag a text with the current keywords and print the result as JSON.

    Use it to try a change to keywords.toml before running reflag.

    Examples: echo "Russia deported 19,000 Ukrainian children" | deportwatch flag ·
    deportwatch flag --jsonl samples.jsonl > results.jsonl
    """
    with reported_errors():
        settings = _settings()
        matcher = Matcher(load_taxonomy(settings.keywords))
        content = _read_input(source)
        if not jsonl:
            # Cleaned as the crawl's normalize stage cleans bodies (soft hyphens,
            # zero-width characters), so offsets refer to the cleaned text.
            content = clean_text(content)
            result = matcher.flag(title, content, lang or detect_language(content))
            out.print_json(json.dumps(_flag_json(result), ensure_ascii=False))
            return
        bad = 0
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                text = clean_text(str(record.get("text") or ""))
                line_lang = record.get("lang") or detect_language(text)
                result = matcher.flag(str(record.get("title") or ""), text, line_lang)
            except ValueError as exc:
                bad += 1
                err.print(f"error: line {number}: {exc}", highlight=False, markup=False)
                continue
            row = {"id": record.get("id"), **_flag_json(result)}
            print(json.dumps(row, ensure_ascii=False))
        if bad:
            raise typer.Exit(2)


@app.command()
def figures(
    metric: Annotated[
        str | None, typer.Option(help="Only this metric: deported, returned, killed, ...")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only readings as of this date or later: 2023-01-01, 90d.")
    ] = None,
    output: Annotated[FiguresFormat, typer.Option("--format", help="Output format.")] = (
        FiguresFormat.table
    ),
) -> None:
    """The published totals (Children of War counters) as a time series.

    One row per as-of date, metric and source. Aggregate figures only.

    Example: deportwatch figures --metric deported --since 2023-01-01 --format csv
    """
    with reported_errors():
        settings = _settings()
        since_day = parse_since(since).date() if since else None
        with open_archive(settings.database_url) as engine, make_sessionmaker(engine)() as session:
            records = figure_records(session, metric, since_day)
    if output is FiguresFormat.json:
        print(json.dumps(records, ensure_ascii=False, indent=2))
        return
    if output is FiguresFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=FIGURE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return
    table = Table(title="Published figures")
    for column in ("as of", "metric", "value", "source", "label"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for r in records:
        table.add_row(
            str(r["as_of"]), str(r["metric"]), f"{r['value']:,}", str(r["source"]), str(r["label"])
        )
    out.print(table)
    if not records:
        out.print("No readings yet: crawl a counters source (deportwatch crawl children-of-war).")


@app.command()
def reflag(
    since: Annotated[
        str | None, typer.Option(help="Only articles published since: 2023-09-27 or 30d.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only this source's articles.")] = None,
) -> None:
    """Re-run flagging over the archive with the current keywords.toml.

    Reports how many articles became flagged or unflagged.

    Example: deportwatch reflag --since 2023-01-01 --source nv-en
    """
    with reported_errors():
        settings = _settings()
        matcher = Matcher(load_taxonomy(settings.keywords))
        since_at = parse_since(since) if since else None
        if source is not None:
            config = load_sources(settings.sources)
            if config.get(source) is None:
                known = ", ".join(s.name for s in config.sources)
                raise UsageError(f"unknown source '{source}' (known: {known})")
        # A writer: a crawl storing an article while it is re-flagged is not lost.
        with open_archive(settings.database_url, writer=True) as engine:
            sessions = make_sessionmaker(engine)
            total = count_articles(sessions, since_at, source)
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task("reflagging", total=total)
                counts = run_reflag(
                    sessions, matcher, since_at, source, lambda n: progress.advance(task, n)
                )
    out.print(
        f"Reflagged {counts.examined} articles with keywords {matcher.taxonomy.version}: "
        f"{counts.became_flagged} became flagged, {counts.became_unflagged} became unflagged, "
        f"{counts.still_flagged} still flagged."
    )


@app.command()
def show(
    article_id: Annotated[int, typer.Argument(help="The article's id.")],
    output: Annotated[ShowFormat, typer.Option("--format", help="Output format.")] = (
        ShowFormat.text
    ),
) -> None:
    """Show one article: metadata, flag evidence, the other members of its story,
    and its earlier versions (with a diff in text mode).

    Example: deportwatch show 42 --format json
    """
    with reported_errors():
        settings = _settings()
        with open_archive(settings.database_url) as engine, make_sessionmaker(engine)() as session:
            article = load_article(session, article_id)
            record = article_record(article)
            diffs = version_diffs(article)
    if output is ShowFormat.json:
        out.print_json(json.dumps(record, ensure_ascii=False))
        return
    _print_article(record, diffs)


def _highlight(snippet: str) -> str:
    """A stored snippet's **match** in bold red, the rest escaped (scraped text is not markup)."""
    parts = escape(snippet).split("**")
    return "".join(f"[bold red]{p}[/]" if i % 2 else p for i, p in enumerate(parts))


def _print_article(record: dict[str, Any], diffs: list[str]) -> None:
    # Everything scraped is escaped: a title or URL is text, never Rich markup.
    out.rule(f"[bold]#{record['id']}[/] {escape(record['title'])}", align="left")
    for label, key in (
        ("source", "source"), ("url", "url"), ("canonical", "canonical_url"),
        ("published", "published_at"), ("date from", "date_origin"), ("language", "language"),
        ("author", "author"), ("first seen", "first_seen_at"), ("last seen", "last_seen_at"),
    ):  # fmt: skip
        if record[key]:
            out.print(f"[dim]{label:>10}[/] {escape(str(record[key]))}", highlight=False)
    if record["flagged"]:
        out.print(
            f"[dim]{'flagged':>10}[/] [red]{', '.join(record['flag_categories'])}[/] "
            f"(score {record['flag_score']}, keywords {record['keywords_version']})"
        )
        for match in record["matches"]:
            out.print(
                f"           · {match['category']}/{match['rule']}: {_highlight(match['snippet'])}",
                highlight=False,
            )
    story = record["story"]
    if story["members"]:
        out.print(f"[dim]{'story':>10}[/] #{story['cluster_id']}, also carried by:")
        for member in story["members"]:
            out.print(
                f"           · #{member['id']} {member['source']}: {escape(member['url'])}",
                highlight=False,
            )
    out.print()
    out.print(record["text"], highlight=False, markup=False)
    for diff in diffs:
        out.print()
        out.print(diff, highlight=False, markup=False)


# search, export and serve live in their own modules; importing them registers them on ``app``.
from deportwatch import search_cli, serve_cli  # noqa: E402

__all__ = ["app", "main", "search_cli", "serve_cli"]


def main() -> None:
    """Console entry point: an unexpected error is one line too.

    DEPORTWATCH_DEBUG=1 lets the traceback through, for bug reports.
    """
    try:
        code = app(standalone_mode=False)
    except typer.Abort:  # Ctrl+C at a prompt
        sys.exit(130)
    except Exception as exc:
        # Usage errors (unknown option, bad choice) are Click exceptions, from
        # Click itself or the copy Typer vendors; either way they carry their
        # message and exit code. Click would draw a box with a usage line.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            if type(exc).__name__ == "NoArgsIsHelpError":
                print(exc.format_message())
                sys.exit(0)
            message = exc.format_message().replace("Value error, ", "")
            err.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        if os.environ.get("DEPORTWATCH_DEBUG"):
            raise
        err.print(f"error: unexpected {type(exc).__name__}: {exc}", highlight=False, markup=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
