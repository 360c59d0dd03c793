"""The service's log: one JSON object per line on stdout.

``docker compose logs`` shows it as it is and log shippers (Loki, Vector,
journald) read the fields without a parser of their own. Records from
libraries (APScheduler, apprise) go through the same formatter, so every line
of the service's output is JSON.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOGGER = logging.getLogger("deportwatch.service")


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
        }
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        if fields is not None:  # one of ours, from log_event
            data["event"] = record.msg
            data |= fields
        else:  # a library's record: its logger and its message
            data["event"] = "log"
            data["logger"] = record.name
            data["message"] = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            data["error"] = f"{type(exc).__name__}: {exc}"
        return json.dumps(data, ensure_ascii=False, default=str)


def setup_service_logging(stream: TextIO | None = None) -> None:
    """Every record as a JSON line on ``stream`` (stdout), INFO and above."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # APScheduler announces every job start and end; our own crawl.start and
    # crawl.end lines say it better, so only its warnings are kept.
    for noisy in ("apscheduler", "apprise", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One structured line: ``{"ts", "level", "event", **fields}``."""
    LOGGER.log(level, event, extra={"fields": fields})
