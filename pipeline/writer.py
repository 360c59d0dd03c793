"""One write transaction for a batch of items, shared by every stage and crawl of a process.

Committing each article on its own cost the crawl about a tenth of its CPU.
Instead the dedup stage reads, and the store stages and the run recorder
write, through one session; its transaction is committed after
``batch_items`` items or ``batch_seconds`` after it began, whichever comes
first, and whenever a crawl closes. Each item's writes sit in a SAVEPOINT, so
an item that fails leaves nothing behind and the batch goes on.

Why one writer per process, not per crawl: the crawls of one ``deportwatch
crawl`` share a thread, and on SQLite a second open write transaction in that
thread would wait for the first, which cannot commit while the thread waits.

Why nothing is lost when a process dies mid-batch: an article that was not
committed is not in the archive, and a start document's fetch state (which
would let the next crawl skip what it listed) is written only by the run
recorder at the end of a crawl that ended well; so the next crawl fetches
those articles again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from db.engine import make_writer_engine

log = logging.getLogger(__name__)

BATCH_ITEMS = 100
BATCH_SECONDS = 1.0  # also how long other writers may wait for the lock


class ArchiveWriter:
    def __init__(
        self,
        engine: Engine,
        batch_items: int = BATCH_ITEMS,
        batch_seconds: float = BATCH_SECONDS,
        *,
        owns_engine: bool = False,
    ) -> None:
        self.engine = engine
        self.batch_items = batch_items
        self.batch_seconds = batch_seconds
        self.session = Session(engine)
        self.pending = 0  # items written since the last commit
        self.commits = 0
        self.users = 0
        self.failures: list[str] = []  # batches lost to a database error, for the run
        self._owns_engine = owns_engine
        self._began: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        event.listen(self.session, "after_begin", self._after_begin)

    def _after_begin(self, *_: Any) -> None:
        # Any transaction, even one that only read, is bounded in time: on
        # SQLite it holds the write lock from its first statement.
        self._began = time.monotonic()
        # Scrapy runs on the asyncio reactor; outside a crawl (tests, benchmarks)
        # there is no loop, and batches end by count, by age or at close.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer is None:
            self._timer = loop.call_later(self.batch_seconds, self._commit_on_time)

    @contextmanager
    def item(self) -> Iterator[Session]:
        """One item's writes: all kept or none (a SAVEPOINT), committed with its batch."""
        try:
            with self.session.begin_nested():
                yield self.session
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
                self.abort(exc)  # the connection, not the item: the batch is gone
            raise
        self.pending += 1
        expired = self._began is not None and time.monotonic() - self._began > self.batch_seconds
        if self.pending >= self.batch_items or expired:
            self.commit()

    def _commit_on_time(self) -> None:
        self._timer = None
        # A failure is recorded by commit() for the runs to report; the crawl goes on.
        with suppress(Exception):
            self.commit()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """Reads in the batch's transaction (they see its uncommitted rows)."""
        try:
            yield self.session
        except DBAPIError as exc:
            # PostgreSQL refuses every statement after an error until a rollback.
            self.abort(exc)
            raise

    def abort(self, exc: Exception) -> None:
        """Give up the batch after a database error, and say how much it held."""
        message = f"{self.pending} items not stored: {type(exc).__name__}: {exc}"
        message = message.splitlines()[0]
        log.error("archive write failed: %s", message)
        self.failures.append(message)
        self._cancel_timer()
        try:
            self.session.rollback()
        finally:
            self.pending = 0
            self.session.expunge_all()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._began = None

    def commit(self) -> None:
        """Commit the batch; on failure it is rolled back, recorded and the error raised."""
        self._cancel_timer()
        if self.session.in_transaction():
            try:
                self.session.commit()
            except Exception as exc:
                self.abort(exc)
                raise
            self.commits += 1
        self.pending = 0
        # The committed rows are not needed again by this session.
        self.session.expunge_all()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.session.close()
            if self._owns_engine:
                self.engine.dispose()


_shared: dict[str, ArchiveWriter] = {}


def shared_writer(database_url: str) -> ArchiveWriter:
    """This process's writer for ``database_url``; give it back with ``release``."""
    writer = _shared.get(database_url)
    if writer is None:
        writer = _shared[database_url] = ArchiveWriter(
            make_writer_engine(database_url), owns_engine=True
        )
    writer.users += 1
    return writer


def release(writer: ArchiveWriter) -> None:
    """Commit what is pending; the last user of a shared writer closes it.

    A writer made directly (tests, benchmarks) is only committed: whoever
    made it closes it.
    """
    if writer.users == 0:
        writer.commit()
        return
    writer.users -= 1
    if writer.users > 0:
        writer.commit()
        return
    for url, shared in list(_shared.items()):
        if shared is writer:
            del _shared[url]
    writer.close()
