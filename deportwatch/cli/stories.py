"""``deportwatch relink``: join rewrites and link language versions across the archive."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress

from db.engine import make_sessionmaker
from db.migrate import open_archive
from deportwatch.cli.common import err, out, reported_errors
from deportwatch.config.errors import UsageError
from deportwatch.config.settings import load_settings


def relink_command(
    after: Annotated[
        int,
        typer.Option(help="Go on after this article id (where an interrupted run stopped)."),
    ] = 0,
) -> None:
    """Re-link the archive's stories: rewrites join their story, reports of one
    story in other languages become its language versions.

    Safe to run again: what is linked stays linked, nothing is linked twice.

    Example: deportwatch relink · deportwatch relink --after 120000
    """
    # Story linking (MinHash, numpy, scipy) is imported when it runs: the other
    # commands start without it.
    from deportwatch.archive.stories import count_articles, relink

    with reported_errors():
        if after < 0:
            raise UsageError("--after must be an article id (0 or more)")
        settings = load_settings()
        last = after
        # A writer: a crawl storing an article while stories are re-linked is not lost.
        with open_archive(settings.database_url, writer=True) as engine:
            sessions = make_sessionmaker(engine)
            total = count_articles(sessions, after)
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task("relinking", total=total)

                def advance(done: int, last_id: int) -> None:
                    nonlocal last
                    last = last_id
                    progress.advance(task, done)

                try:
                    counts = relink(sessions, after, advance)
                except KeyboardInterrupt:
                    err.print(
                        f"interrupted: articles up to #{last} are done; "
                        f"`deportwatch relink --after {last}` goes on from there"
                    )
                    raise typer.Exit(130) from None
    out.print(
        f"Relinked {counts.examined} articles: {counts.joined} rewrites joined their story, "
        f"{counts.linked} stories linked as language versions."
    )
