"""The ``deportwatch`` command: a thin layer over the library functions."""

from __future__ import annotations

import os
import sys

import typer

from deportwatch.cli import (
    archive,
    crawling,
    evidence,
    flagging,
    search,
    serve,
    service,
    stories,
)
from deportwatch.cli.common import err

app = typer.Typer(
    name="deportwatch",
    help="Watch Ukrainian sources, archive what they publish, flag deportation reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each command lives in the module of its group; the order here is the order of --help.
app.command()(crawling.init)
app.command()(crawling.crawl)
app.command()(service.schedule)
app.command()(service.worker)
app.command("sources")(service.list_sources)
app.command()(service.status)
app.command()(flagging.flag)
app.command()(archive.figures)
app.command()(flagging.reflag)
app.command("relink")(stories.relink_command)
app.command()(archive.show)
app.command("search")(search.search_command)
app.command("export")(search.export_command)
app.command()(evidence.evidence)
app.command()(evidence.verify)
app.command()(serve.serve)


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
