"""``deportwatch evidence`` and ``verify``: captures as a WACZ package; still online?"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from db.engine import make_sessionmaker
from db.migrate import open_archive
from deportwatch.archive.dates import parse_since
from deportwatch.cli.common import err, out, reported_errors
from deportwatch.config.errors import ConfigError, UsageError
from deportwatch.config.settings import load_settings
from deportwatch.config.sources import load_sources


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
    # WARC and WACZ writing is imported when a package is made: the other
    # commands start without it.
    from deportwatch.archive.evidence import export_wacz, select_articles

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


def verify(
    article_ids: Annotated[
        list[int] | None, typer.Argument(help="Articles to check, by id.", show_default=False)
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Every article of this source.")
    ] = None,
    flagged: Annotated[bool, typer.Option("--flagged", help="Every flagged article.")] = False,
) -> None:
    """Ask the sources again whether archived articles are still online.

    Each page is requested again (conditionally) and the answer is kept with
    its time: alive; changed (the new text is captured and stored as a new
    version); removed (404, 410, or a redirect to the home page or another
    page). `show`, the web view and exports then say "removed from the source
    on DATE; archived capture of DATE". A site that is down proves nothing and
    changes nothing (unreachable).

    Example: deportwatch verify --flagged
    """
    # Re-asking the sources needs the crawler's parts; imported when it runs.
    from deportwatch.archive.verify import Verifier, make_store, select_for_verify

    with reported_errors():
        settings = load_settings()
        try:
            sources = {s.name: s for s in load_sources(settings.sources).sources}
        except ConfigError:
            sources = {}  # the archive's own record is enough to re-ask a page
        store = make_store(settings.warc_dir, settings.warc_max_bytes) if settings.capture else None
        verdicts = []
        with (
            open_archive(settings.database_url, writer=True) as engine,
            make_sessionmaker(engine)() as session,
        ):
            articles = select_for_verify(session, article_ids or [], source, flagged)
            verifier = Verifier(
                session, store, sources, settings.user_agent, settings.download_timeout
            )
            try:
                for article in articles:
                    verdicts.append(verifier.verify(article))
                    # Each answer is kept as it comes; its capture was flushed first.
                    session.commit()
            finally:
                if store is not None:
                    store.close()
    table = Table(title="Still online?")
    for column in ("id", "state", "url", "detail"):
        table.add_column(column)
    colours = {"removed": "red", "changed": "yellow", "unreachable": "dim"}
    for v in verdicts:
        colour = colours.get(v.state, "green")
        table.add_row(str(v.article_id), f"[{colour}]{v.state}[/]", escape(v.url), escape(v.detail))
    out.print(table)
    counts = Counter(v.state for v in verdicts)
    out.print(
        ", ".join(f"{counts[s]} {s}" for s in ("alive", "changed", "removed", "unreachable")),
        highlight=False,
    )
    if verifier.capture_error:
        err.print(f"error: evidence capture stopped: {verifier.capture_error}", highlight=False)
        raise typer.Exit(1)
