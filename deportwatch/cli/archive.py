"""``deportwatch show`` and ``figures``: one article with its evidence; the counters over time."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from db.engine import make_sessionmaker
from db.migrate import open_archive_readonly
from deportwatch.archive.dates import parse_since
from deportwatch.archive.figures import FIELDS as FIGURE_FIELDS
from deportwatch.archive.figures import figure_records
from deportwatch.archive.show import (
    article_record,
    evidence,
    frame_summary,
    language_version_articles,
    load_article,
    version_diffs,
)
from deportwatch.cli.common import highlight, out, reported_errors
from deportwatch.config.settings import load_settings


class FiguresFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class ShowFormat(StrEnum):
    text = "text"
    json = "json"


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
        settings = load_settings()
        since_day = parse_since(since).date() if since else None
        with (
            open_archive_readonly(settings.database_url) as engine,
            make_sessionmaker(engine)() as session,
        ):
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
        # A label is quoted from the figures page: text, never markup.
        table.add_row(
            *(escape(str(r[k])) for k in ("as_of", "metric")),
            f"{r['value']:,}",
            *(escape(str(r[k])) for k in ("source", "label")),
        )
    out.print(table)
    if not records:
        out.print("No readings yet: crawl a counters source (deportwatch crawl children-of-war).")


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
        settings = load_settings()
        with (
            open_archive_readonly(settings.database_url) as engine,
            make_sessionmaker(engine)() as session,
        ):
            article = load_article(session, article_id)
            record = article_record(article, language_version_articles(session, article))
            diffs = version_diffs(article)
    if output is ShowFormat.json:
        out.print_json(json.dumps(record, ensure_ascii=False))
        return
    _print_article(record, diffs)


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
    _print_flags(record)
    _print_source_state(record)
    _print_story(record["story"])
    out.print()
    out.print(record["text"], highlight=False, markup=False)
    for diff in diffs:
        out.print()
        out.print(diff, highlight=False, markup=False)


def _print_flags(record: dict[str, Any]) -> None:
    """The verdict, then each match with its field, its frame's verdict and why."""
    if record["flagged"]:
        out.print(
            f"[dim]{'flagged':>10}[/] [red]{escape(', '.join(record['flag_categories']))}[/] "
            f"(score {record['flag_score']}, keywords {escape(str(record['keywords_version']))})"
        )
    elif record["matches"]:
        out.print(
            f"[dim]{'not flagged':>10}[/] every match vetoed by its frame "
            f"(keywords {escape(str(record['keywords_version']))})"
        )
    for fields, match in evidence(record):
        rule = escape(f"{match['category']}/{match['rule']}")
        verdict = escape(match["verdict"] or "counted")
        out.print(
            f"           · {rule} [dim]({fields}, {verdict})[/]: {highlight(match['snippet'])}",
            highlight=False,
        )
        out.print(f"             {escape(frame_summary(match['frame']))}", highlight=False)


def _print_source_state(record: dict[str, Any]) -> None:
    """Where the page is archived as fetched, and whether the source still has it."""
    capture = record["capture"]
    if capture:
        out.print(
            f"[dim]{'archived':>10}[/] capture of {capture['captured_at']}, {capture['digest']} "
            f"({escape(capture['file'])} @ {capture['offset']})",
            highlight=False,
        )
    if record["source_note"]:
        out.print(
            f"[dim]{'source':>10}[/] [red]{escape(record['source_note'])}[/]", highlight=False
        )
    elif record["source_state"]:
        out.print(
            f"[dim]{'source':>10}[/] {record['source_state']}, asked {record['verified_at']}",
            highlight=False,
        )


def _print_story(story: dict[str, Any]) -> None:
    """The story's other outlets and its versions in other languages."""
    if story["members"]:
        out.print(f"[dim]{'story':>10}[/] #{story['cluster_id']}, also carried by:")
        for member in story["members"]:
            out.print(
                f"           · #{member['id']} {escape(member['source'])}: {escape(member['url'])}",
                highlight=False,
            )
    if story["language_versions"]:
        out.print(f"[dim]{'languages':>10}[/] story #{story['story_id']}, also reported in:")
        for version in story["language_versions"]:
            language = escape(f"[{version['language']}]")
            out.print(
                f"           · #{version['id']} {language} {version['source']}: "
                f"{escape(version['title'])} {escape(version['url'])}",
                highlight=False,
            )
