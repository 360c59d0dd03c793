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
from db.migrate import open_archive
from deportwatch.archive.dates import parse_since
from deportwatch.archive.figures import FIELDS as FIGURE_FIELDS
from deportwatch.archive.figures import figure_records
from deportwatch.archive.show import (
    article_record,
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
        with open_archive(settings.database_url) as engine, make_sessionmaker(engine)() as session:
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
    if record["flagged"]:
        out.print(
            f"[dim]{'flagged':>10}[/] [red]{', '.join(record['flag_categories'])}[/] "
            f"(score {record['flag_score']}, keywords {record['keywords_version']})"
        )
        for match in record["matches"]:
            out.print(
                f"           · {match['category']}/{match['rule']}: {highlight(match['snippet'])}",
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
    if story["language_versions"]:
        out.print(f"[dim]{'languages':>10}[/] story #{story['story_id']}, also reported in:")
        for version in story["language_versions"]:
            language = escape(f"[{version['language']}]")
            out.print(
                f"           · #{version['id']} {language} {version['source']}: "
                f"{escape(version['title'])} {escape(version['url'])}",
                highlight=False,
            )
    out.print()
    out.print(record["text"], highlight=False, markup=False)
    for diff in diffs:
        out.print()
        out.print(diff, highlight=False, markup=False)
