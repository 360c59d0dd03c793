"""What every command shares: the consoles, one-line error reporting, highlighting."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from db.engine import explain_database_error
from deportwatch.config.errors import DeportwatchError


class Language(StrEnum):
    """The languages the taxonomy and search know; one choice list for every --lang."""

    uk = "uk"
    ru = "ru"
    en = "en"


# Piped output is not cut to 80 columns: tables stay readable in files and logs.
_PIPE_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140
out = Console(width=_PIPE_WIDTH)
err = Console(stderr=True, width=_PIPE_WIDTH)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Known errors become one line on stderr and their exit code, never a traceback."""
    try:
        yield
    except DeportwatchError as exc:
        error_line(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except SQLAlchemyError as exc:
        error_line(f"database: {explain_database_error(exc)}")
        raise typer.Exit(1) from None


def error_line(message: str, prefix: str = "error:") -> None:
    """One line on stderr. The message names what the user typed or a file holds
    (``[[source]]``, a source called ``[/]``), so it is never read as Rich markup."""
    err.print(Text.assemble((prefix, "red"), " ", message), highlight=False, soft_wrap=True)


def highlight(snippet: str) -> str:
    """A stored snippet's **match** in bold red, the rest escaped (scraped text is not markup)."""
    parts = escape(snippet).split("**")
    return "".join(f"[bold red]{p}[/]" if i % 2 else p for i, p in enumerate(parts))
