"""``deportwatch search`` and ``deportwatch export``: finding, reading and citing the archive."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from db.engine import make_sessionmaker
from db.migrate import open_archive_readonly
from db.search import Filters, iter_matches, search
from deportwatch.archive.export import (
    EXPORT_FIELDS,
    SEARCH_FIELDS,
    hit_record,
    row_record,
    write_atom,
    write_csv,
    write_jsonl,
)
from deportwatch.archive.filters import build_filters
from deportwatch.cli.common import Language, err, highlight, out, reported_errors
from deportwatch.config.errors import UsageError
from deportwatch.config.settings import Settings, load_settings


class SearchFormat(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class ExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    atom = "atom"


Flagged = Annotated[bool, typer.Option("--flagged", help="Only flagged articles.")]
Category = Annotated[
    list[str] | None,
    typer.Option("--category", "-c", help="Only flagged in this category (repeatable: any)."),
]
SourceName = Annotated[
    list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable).")
]
Lang = Annotated[list[Language] | None, typer.Option("--lang", help="Only this language.")]
Since = Annotated[
    str | None, typer.Option(help="Published on or after: 2023-09-27, an ISO time, or 7d.")
]
Until = Annotated[
    str | None, typer.Option(help="Published on or before (a date includes its whole day).")
]


def _filters(
    session: Session,
    settings: Settings,
    *,
    query: str | None,
    flagged: bool,
    categories: list[str] | None,
    sources: list[str] | None,
    languages: list[Language] | None,
    since: str | None,
    until: str | None,
) -> Filters:
    return build_filters(
        session,
        settings,
        query=query,
        flagged=flagged,
        categories=categories or (),
        sources=sources or (),
        languages=[lang.value for lang in languages or ()],
        since=since,
        until=until,
    )


def search_command(
    *,
    query: Annotated[
        str | None,
        typer.Argument(help='Words, "exact phrases", OR, -excluded, prefix*. Empty: newest.'),
    ] = None,
    flagged: Flagged = False,
    category: Category = None,
    source: SourceName = None,
    lang: Lang = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most rows shown.")] = 20,
    all_copies: Annotated[
        bool, typer.Option("--all-copies", help="Every article, not one row per story.")
    ] = False,
    output: Annotated[SearchFormat, typer.Option("--format", help="Output format.")] = (
        SearchFormat.table
    ),
) -> None:
    """Full-text search of the archive, best matches first, one row per story.

    Examples: deportwatch search '"health improvement" OR оздоровлення' --flagged ·
    deportwatch search Skadovsk --since 2023-06-01 --source ombudsman-uk --format json
    """
    with reported_errors():
        settings = load_settings()
        with (
            open_archive_readonly(settings.database_url) as engine,
            make_sessionmaker(engine)() as session,
        ):
            filters = _filters(
                session,
                settings,
                query=query,
                flagged=flagged,
                categories=category,
                sources=source,
                languages=lang,
                since=since,
                until=until,
            )
            records = [
                hit_record(h) for h in search(session, filters, limit, stories=not all_copies)
            ]
    if output is SearchFormat.json:
        print(json.dumps(records, ensure_ascii=False, indent=2))
    elif output is SearchFormat.jsonl:
        write_jsonl(records, sys.stdout)
    elif output is SearchFormat.csv:
        write_csv(records, SEARCH_FIELDS, sys.stdout)
    else:
        _print_hits(records, all_copies)


def _print_hits(records: list[dict[str, object]], all_copies: bool) -> None:
    table = Table(title=f"{len(records)} {'articles' if all_copies else 'stories'}")
    for column in ("id", "date", "lang", "sources", "title", "flags", "snippet"):
        table.add_column(column, no_wrap=column in ("id", "date", "lang"), overflow="fold")
    for r in records:
        sources = r["source"] if all_copies else ", ".join(r["story_sources"])  # type: ignore[arg-type]
        # A story lists every language it was reported in (its language versions).
        languages = r["language"] if all_copies else ",".join(r["story_languages"])  # type: ignore[arg-type]
        date = str(r["published_at"] or r["first_seen_at"])[:10]
        table.add_row(
            str(r["id"]),
            date,
            str(languages or ""),
            escape(str(sources)),
            escape(str(r["title"])),
            escape(", ".join(r["flag_categories"])),  # type: ignore[arg-type]
            highlight(str(r["snippet"])),
        )
    out.print(table)
    if not records:
        out.print("Nothing found.")


@contextmanager
def _destination(path: Path | None) -> Iterator[TextIO]:
    """stdout, or FILE written whole: a failed export leaves no half-written file."""
    if path is None:
        yield sys.stdout
        return
    partial = path.with_name(path.name + ".part")
    if path.is_dir():
        raise UsageError(f"--output {path}: is a folder; name a file in it")
    try:
        handle = partial.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        if not path.parent.is_dir():
            raise UsageError(f"--output {path}: no such folder {path.parent}") from None
        raise UsageError(f"--output {path}: cannot write there ({exc.strerror})") from None
    try:
        with handle:
            yield handle
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def export_command(
    *,
    output: Annotated[ExportFormat, typer.Option("--format", help="Output format.")],
    query: Annotated[str | None, typer.Argument(help="The same query language as search.")] = None,
    flagged: Flagged = False,
    category: Category = None,
    source: SourceName = None,
    lang: Lang = None,
    since: Since = None,
    until: Until = None,
    to: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
) -> None:
    """Export every matching article (all copies), streamed: CSV, JSON lines or an Atom feed.

    Examples: deportwatch export --format jsonl --flagged --since 2023-01-01 --until 2023-12-31
    -o flagged-2023.jsonl · deportwatch export --format atom --flagged -o flagged.atom
    """
    with reported_errors():
        settings = load_settings()
        with (
            open_archive_readonly(settings.database_url) as engine,
            make_sessionmaker(engine)() as session,
        ):
            filters = _filters(
                session,
                settings,
                query=query,
                flagged=flagged,
                categories=category,
                sources=source,
                languages=lang,
                since=since,
                until=until,
            )
            records = (row_record(row) for row in iter_matches(session, filters))
            with _destination(to) as handle:
                if output is ExportFormat.csv:
                    count = write_csv(records, EXPORT_FIELDS, handle)
                elif output is ExportFormat.jsonl:
                    count = write_jsonl(records, handle)
                else:
                    count = write_atom(records, handle, "deportwatch export")
    if to is not None:
        err.print(f"Exported {count} articles to {to}", highlight=False, markup=False)
