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

Why nothing is lost when the database goes away: a batch the database refuses
(the server stopped, the connection dropped, a SQLite file locked past the
busy timeout) is put in the spool (``pipeline/spool.py``) with the item that
found it gone, and while it stays away items go straight there, the database
tried again after a pause that doubles up to a minute. The next crawl of each
source reads its items back. Counts a stage reports (``on_commit``) are taken
only when their batch is committed, so a run never reports as stored what the
database did not keep.

Why two writers never deadlock: on PostgreSQL each batch first takes one
transaction-scoped advisory lock (``db/engine.make_writer_engine``), as
SQLite's ``BEGIN IMMEDIATE`` takes its database-wide write lock. Batches of all
processes are serialized, each holding the lock for a second at most, and
dedup reads the archive inside that lock, so a copy arriving in another
crawl's process at the same moment is still found.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from db.engine import make_writer_engine
from deportwatch.config.errors import DeportwatchError
from pipeline.items import Item
from pipeline.spool import Spool

log = logging.getLogger(__name__)

BATCH_ITEMS = 100
BATCH_SECONDS = 1.0  # also how long other writers may wait for the lock
RETRY_MAX_SECONDS = 60.0  # longest pause before an unreachable database is tried again


class ArchiveUnavailable(DeportwatchError):
    """The database refused an item's batch; the item waits in the spool (or, with
    no spool, is lost, and the message says so)."""


def connection_lost(exc: BaseException) -> bool:
    """The database, not the item, failed: gone, unreachable, locked, or in a deadlock."""
    if not isinstance(exc, DBAPIError):
        return False
    return bool(exc.connection_invalidated) or isinstance(exc, OperationalError | InterfaceError)


class ArchiveWriter:
    def __init__(
        self,
        engine: Engine,
        batch_items: int = BATCH_ITEMS,
        batch_seconds: float = BATCH_SECONDS,
        *,
        owns_engine: bool = False,
        spool: Spool | None = None,
    ) -> None:
        self.engine = engine
        self.batch_items = batch_items
        self.batch_seconds = batch_seconds
        self.session = Session(engine)
        self.spool = spool
        self.pending = 0  # items written since the last commit
        self.commits = 0
        self.users = 0
        self.failures: list[str] = []  # batches the database refused, for the runs
        self._owns_engine = owns_engine
        self._began: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._batch: list[Item] = []  # the items of the open batch, for the spool
        self._callbacks: list[Callable[[], None]] = []  # run when the batch commits
        self._item_callbacks: list[Callable[[], None]] | None = None
        self._lost_in_row = 0  # database failures since it last worked
        self._retry_at = 0.0  # until then, items go to the spool untried
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
    def item(self, item: Item | None = None) -> Iterator[Session]:
        """One item's writes: all kept or none (a SAVEPOINT), committed with its batch.

        ``item`` is what the writes store: should the database refuse the batch,
        it goes to the spool with the rest of the batch. Raises
        ``ArchiveUnavailable`` when the item was spooled instead of written.
        """
        self._refuse_while_away(item)
        self._item_callbacks = []
        try:
            with self.session.begin_nested():
                yield self.session
        except DBAPIError as exc:
            if connection_lost(exc):
                # The connection, not the item: the batch goes to the spool.
                raise ArchiveUnavailable(self.abort(exc, also=item)) from exc
            raise
        finally:
            done, self._item_callbacks = self._item_callbacks, None
        self._callbacks.extend(done)
        if item is not None:
            self._batch.append(item)
        self.pending += 1
        self._lost_in_row, self._retry_at = 0, 0.0  # the database answers again
        expired = self._began is not None and time.monotonic() - self._began > self.batch_seconds
        if self.pending >= self.batch_items or expired:
            self.commit()

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current item's batch is committed (never, if it
        is not: a count of stored articles must not include spooled ones)."""
        if self._item_callbacks is not None:
            self._item_callbacks.append(callback)
        elif self.session.in_transaction():
            self._callbacks.append(callback)
        else:
            callback()

    def _refuse_while_away(self, item: Item | None) -> None:
        """While the database is known to be away, spool at once instead of waiting
        on it for every item (a locked SQLite file waits its busy timeout)."""
        if self._retry_at and time.monotonic() < self._retry_at:
            raise ArchiveUnavailable(self._keep([item] if item is not None else []))

    def _commit_on_time(self) -> None:
        self._timer = None
        # A failure is recorded by commit() for the runs to report; the crawl goes on.
        with suppress(Exception):
            self.commit()

    @contextmanager
    def reading(self, item: Item | None = None) -> Iterator[Session]:
        """Reads in the batch's transaction (they see its uncommitted rows), made for
        ``item``, which goes to the spool with the batch if the database is away."""
        self._refuse_while_away(item)
        try:
            yield self.session
        except DBAPIError as exc:
            # PostgreSQL refuses every statement after an error until a rollback.
            if connection_lost(exc):
                raise ArchiveUnavailable(self.abort(exc, also=item)) from exc
            self.abort(exc)
            raise

    def abort(self, exc: Exception, also: Item | None = None) -> str:
        """Give up the batch after a database error: its items (and ``also``) go to
        the spool. Returns the message, which says how much it held and where it is."""
        items = self._batch + ([also] if also is not None else [])
        self._batch = []
        self._callbacks.clear()
        if connection_lost(exc):
            # Tried again at once the first time (a dropped connection is replaced
            # by the pool), then after 2, 4, 8 … seconds while it stays away.
            self._lost_in_row += 1
            if self._lost_in_row > 1:
                pause = min(2.0 ** (self._lost_in_row - 1), RETRY_MAX_SECONDS)
                self._retry_at = time.monotonic() + pause
        reason = f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}".splitlines()[0]
        message = f"{self._keep(items)} ({reason})"
        log.error("archive write failed: %s", message)
        self.failures.append(message)
        self._cancel_timer()
        try:
            self.session.rollback()
        finally:
            self.pending = 0
            self.session.expunge_all()
        return message

    def _keep(self, items: list[Item]) -> str:
        """Put ``items`` in the spool; what became of them, in words."""
        if not items:
            return "the archive is unavailable"
        if self.spool is None:
            return f"{len(items)} items not stored"
        try:
            self.spool.keep(items)
        except OSError as exc:
            log.error("spool %s cannot be written: %s", self.spool.directory, exc)
            return f"{len(items)} items not stored (the spool cannot be written: {exc})"
        return f"{len(items)} items kept in the spool {self.spool.directory} for the next crawl"

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._began = None

    def commit(self) -> None:
        """Commit the batch; on failure it is rolled back, spooled and recorded, and
        ``ArchiveUnavailable`` (the database went away) or the error is raised."""
        self._cancel_timer()
        if self.session.in_transaction():
            try:
                self.session.commit()
            except Exception as exc:
                message = self.abort(exc)
                if connection_lost(exc):
                    raise ArchiveUnavailable(message) from exc
                raise
            self.commits += 1
        self.pending = 0
        self._batch = []
        done, self._callbacks = self._callbacks, []
        for callback in done:
            callback()
        # The committed rows are not needed again by this session.
        self.session.expunge_all()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.session.close()
            if self.spool is not None:
                self.spool.close()
            if self._owns_engine:
                self.engine.dispose()


_shared: dict[str, ArchiveWriter] = {}


def shared_writer(database_url: str, spool_dir: Path | None = None) -> ArchiveWriter:
    """This process's writer for ``database_url`` (spooling under ``spool_dir``);
    give it back with ``release``."""
    writer = _shared.get(database_url)
    if writer is None:
        spool = Spool(spool_dir, database_url) if spool_dir is not None else None
        writer = _shared[database_url] = ArchiveWriter(
            make_writer_engine(database_url), owns_engine=True, spool=spool
        )
    writer.users += 1
    return writer


def release(writer: ArchiveWriter) -> None:
    """Commit what is pending; the last user of a shared writer closes it.

    A writer made directly (tests, benchmarks) is only committed: whoever
    made it closes it.
    """
    # A refused batch is spooled and recorded for the runs by commit() itself.
    with suppress(ArchiveUnavailable):
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
