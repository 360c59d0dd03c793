"""One crawl in a child process of its own: ``deportwatch crawl NAME --run-id N``.

The scheduler never starts Twisted's reactor (it cannot be restarted in a
process, and a crawl that hangs must be killable without taking the service
down). The scheduler opens the run's ``crawl_runs`` row before it starts the
child, so a child that is stopped, times out or dies still leaves a closed row
saying what happened. How the child process starts (forked from a pre-warmed
process, by default, or a new interpreter) is service/launch.py's part.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from db.models import CrawlRun
from db.repository.runs import ensure_source, start_run
from db.types import utcnow
from deportwatch.config.sources import Source
from deportwatch.crawl.runner import RunSummary
from service.events import log_event
from service.launch import OUTPUT_TAIL, Child, StartMode, start

KILL_AFTER = 10.0  # seconds a child gets to close its run after SIGTERM, before SIGKILL


@dataclass(frozen=True)
class CrawlResult:
    """How one child's crawl ended, as its ``crawl_runs`` row records it."""

    run_id: int
    summary: RunSummary
    duration: float
    exit_code: int | None

    @property
    def outcome(self) -> str:
        return self.summary.outcome

    @property
    def error(self) -> str | None:
        return self.summary.error_text

    def log_fields(self) -> dict[str, object]:
        fields: dict[str, object] = {"run_id": self.run_id, **asdict(self.summary)}
        fields["error"] = fields.pop("error_text")
        return fields | {"exit_code": self.exit_code, "duration_s": round(self.duration, 2)}


def _last_line(output: str) -> str | None:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:500] if lines else None


class ChildCrawl:
    """Runs one source's crawl in a child process, with a timeout, and can stop it."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        source: Source,
        timeout: float,
        env: dict[str, str],
        workdir: Path | None = None,
        *,
        die_with_parent: bool = False,
        start_mode: StartMode = "fork",
    ) -> None:
        self.sessions = sessions
        self.source = source
        self.timeout = timeout
        self.env = env
        self.workdir = workdir
        self.die_with_parent = die_with_parent
        self.start_mode = start_mode
        self.run_id: int | None = None
        self.process: Child | None = None
        self._stopped = threading.Event()  # set when the service asked the child to stop

    def open_run(self) -> int:
        with self.sessions.begin() as session:
            row = ensure_source(session, self.source.name, self.source.kind, self.source.enabled)
            self.run_id = start_run(session, row.id).id
        return self.run_id

    def run(self) -> CrawlResult:
        """Start the child, wait for it (or stop it at its timeout), close the run."""
        run_id = self.run_id if self.run_id is not None else self.open_run()
        started = time.monotonic()
        try:
            self.process = start(
                self.start_mode,
                ["crawl", self.source.name, "--run-id", str(run_id)],
                self.env,
                self.workdir,
                die_with_parent=self.die_with_parent,
            )
        except Exception as exc:  # the run is closed saying why, never left open
            reason = f"the crawl process did not start: {type(exc).__name__}: {exc}"
            return self._settle(run_id, False, None, reason, time.monotonic() - started)
        try:
            log_event(
                "crawl.start",
                source=self.source.name,
                run_id=run_id,
                pid=self.process.pid,
                start=self.start_mode,
            )
            if self._stopped.is_set():  # stop() came while the child was starting
                self.process.signal_group(signal.SIGTERM)
            timed_out = False
            exit_code = self.process.wait(self.timeout)
            if exit_code is None:
                timed_out = True
                exit_code = self._terminate(self.process)
            duration = time.monotonic() - started
            return self._settle(run_id, timed_out, exit_code, self.process.output(), duration)
        finally:
            self.process.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self) -> None:
        """Ask a running child to stop (service shutdown); its run() then returns."""
        self._stopped.set()
        if self.process is not None:
            self.process.signal_group(signal.SIGTERM)

    def kill(self) -> None:
        """Stop a child that did not stop when asked."""
        if self.process is not None:
            self.process.signal_group(signal.SIGKILL)

    @staticmethod
    def _terminate(process: Child) -> int | None:
        """SIGTERM (Scrapy closes the run cleanly), then SIGKILL if it lingers."""
        process.signal_group(signal.SIGTERM)
        exit_code = process.wait(KILL_AFTER)
        if exit_code is None:
            process.signal_group(signal.SIGKILL)
            exit_code = process.wait(None)
        return exit_code

    def _settle(
        self, run_id: int, timed_out: bool, exit_code: int | None, output: str, duration: float
    ) -> CrawlResult:
        """Close a row the child left open, and read the run's final counts."""
        with self.sessions.begin() as session:
            run = session.get_one(CrawlRun, run_id)
            if timed_out:
                run.outcome = "timeout"
                run.error_text = (
                    f"stopped after running longer than its timeout ({self.timeout:g} s)"
                )
            elif run.outcome == "running" and self._stopped.is_set():
                run.outcome = "interrupted"
                run.error_text = "stopped when the service shut down"
            elif run.outcome == "running":
                # The child ended without closing its run: it crashed or was
                # killed, or failed before the crawl began (a broken file).
                run.outcome = "crashed"
                reason = _last_line(output[-OUTPUT_TAIL:]) or "no output"
                run.error_text = f"crawl process exited with code {exit_code}: {reason}"
            if run.finished_at is None:
                run.finished_at = utcnow()
            summary = RunSummary.of(self.source.name, run)
        return CrawlResult(run_id, summary, duration, exit_code)
