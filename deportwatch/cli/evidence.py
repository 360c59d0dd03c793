"""``deportwatch evidence``: archived captures as a WACZ package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from db.engine import make_sessionmaker
from db.migrate import open_archive
from deportwatch.archive.dates import parse_since
from deportwatch.archive.evidence import export_wacz, select_articles
from deportwatch.cli.common import out, reported_errors
from deportwatch.config.errors import UsageError
from deportwatch.config.settings import load_settings


def evidence(
    article_ids: Annotated[
        list[int] | None, typer.Argument(help="Articles to package, by id.", show_default=False)
    ] = None,
    story: Annotated[
        int | None, typer.Option("--story", help="Every article of this story (cluster id).")
    ] = None,
    flagged: Annotated[bool, typer.Option("--flagged", help="Every flagged article.")] = False,
    since: Annotated[
        str | None,
        typer.Option(help="Only articles first seen since: 2023-06-01, an ISO time, 30d."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="The WACZ file to write.")
    ] = None,
) -> None:
    """Package articles' archived captures as a WACZ file, for investigators.

    The package holds each capture's WARC record as it was written at crawl
    time (headers, bytes, time, SHA-256 digest), an index, a page list and a
    manifest of the articles (title, URLs, published, first seen, flags,
    story, versions, and whether the source removed them). Any replay tool
    (ReplayWeb.page, pywb) opens it; `wacz validate` checks it.

    Example: deportwatch evidence --flagged --since 2023-06-01 -o flagged.wacz
    """
    with reported_errors():
        if output is None:
            raise UsageError("say where to write the package: -o FILE.wacz")
        if output.suffix != ".wacz":
            raise UsageError(f"-o {output}: the package's name must end in .wacz")
        settings = load_settings()
        since_at = parse_since(since) if since else None
        with open_archive(settings.database_url) as engine, make_sessionmaker(engine)() as session:
            articles = select_articles(session, article_ids or [], story, flagged, since_at)
            summary = export_wacz(session, settings.warc_dir, articles, output)
    line = (
        f"{escape(str(output))}: {summary.articles} articles, {summary.captures} captures, "
        f"{summary.bytes:,} bytes"
    )
    if summary.missing:
        line += f" ({summary.missing} articles have no archived capture)"
    out.print(line, highlight=False)
