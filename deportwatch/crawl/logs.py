"""Logging for a crawl: full detail to a file, one line per problem on the terminal."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from scrapy import Spider
from scrapy.http import Response
from scrapy.logformatter import LogFormatter, LogFormatterResult
from twisted.python.failure import Failure


def _named(item: Any) -> str:
    """An item in a log line: its source and URL, never its text (long, and the
    logs should not become a second copy of the archive)."""
    return f"{getattr(item, 'source', '?')} {getattr(item, 'url', '')}".strip()


def _naming(result: LogFormatterResult, item: Any) -> LogFormatterResult:
    args = result["args"]
    assert isinstance(args, dict)  # Scrapy's formatter always passes named arguments
    result["args"] = {**args, "item": _named(item)}
    return result


class ItemLogFormatter(LogFormatter):
    """Scrapy's messages about items, naming each by source and URL only."""

    def scraped(
        self, item: Any, response: Response | Failure | None, spider: Spider
    ) -> LogFormatterResult:
        return _naming(super().scraped(item, response, spider), item)

    def dropped(
        self,
        item: Any,
        exception: BaseException,
        response: Response | Failure | None,
        spider: Spider,
    ) -> LogFormatterResult:
        return _naming(super().dropped(item, exception, response, spider), item)

    def item_error(
        self,
        item: Any,
        exception: BaseException,
        response: Response | Failure | None,
        spider: Spider,
    ) -> LogFormatterResult:
        return _naming(super().item_error(item, exception, response, spider), item)


class OneLineFormatter(logging.Formatter):
    """The message and, for an exception, its type and text — never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().splitlines()[0] if record.getMessage() else ""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message = f"{message} ({type(exc).__name__}: {exc})"
        return message


# Loggers of deportwatch's own packages: what they say is news to the user. Scrapy,
# Twisted and the extraction libraries repeat, per request, what the crawl summary
# already says in one line per source (retries, "Gave up retrying", "Error
# downloading"), and each spider's logger (named after its source) logs every
# error the summary lists; all of that goes to the log file only.
OWN_LOGGERS = ("deportwatch", "service", "spiders", "pipeline", "db")


def own_record(record: logging.LogRecord) -> bool:
    return record.name.split(".", 1)[0] in OWN_LOGGERS


def setup_crawl_logging(console: Console, log_dir: Path, verbose: bool) -> Path | None:
    """Route every log record; returns the log file's path (None if it cannot be written).

    The file gets everything from INFO up. The terminal gets deportwatch's own
    warnings only, unless ``verbose`` (every line from INFO up, libraries' too)
    or the file cannot be written (then the libraries' warnings are not lost).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)

    terminal = RichHandler(console=console, show_path=False, markup=False, show_time=False)
    terminal.setLevel(logging.INFO if verbose else logging.WARNING)
    terminal.setFormatter(OneLineFormatter())
    # Scrapy reports a callback's exception with a traceback; the run recorder
    # already shows it as one line, so the terminal skips Scrapy's version.
    terminal.addFilter(lambda record: record.name != "scrapy.core.scraper")
    root.addHandler(terminal)

    log_file = log_dir / "crawl.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = RotatingFileHandler(
            log_file, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
        )
    except OSError:
        return None
    else:
        file_handler.setLevel(logging.INFO)
        file_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s")
        )
        root.addHandler(file_handler)
        if not verbose:
            terminal.addFilter(own_record)
    # Per-request chatter stays out of the terminal and the file alike.
    for noisy in ("scrapy.core.engine", "scrapy.middleware", "scrapy.extensions.logstats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for noisy in ("trafilatura", "htmldate", "charset_normalizer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    return log_file
