"""Named locks over the archive, held by a process for as long as it needs them.

A crawl worker holds its source's lock while the crawl runs (a source is never
crawled twice at once anywhere), and the one ``schedule`` that enqueues holds
the leader's lock. On PostgreSQL they are session advisory locks: every machine
of the cluster sees them, and the server lets one go as soon as the connection of
the process holding it ends (killed, or its machine gone: TCP keepalives notice
within about a minute). On SQLite, the archive is a file on one machine, and the
locks are ``flock`` locks on files beside it, let go when the process ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

# The two-key advisory locks are a key space apart from the writer's one-key lock
# (db/engine.py); the schema is part of the key, as it is of the writer's.
_PG_TRY = text(
    "SELECT pg_try_advisory_lock(hashtext('deportwatch-lock'), "
    "hashtext(current_schema() || ':' || :name))"
)
_PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10}


class ArchiveLock:
    """One named lock; ``acquire()`` never waits, ``release()`` lets it go."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.name = name
        self._url = engine.url
        self._connection: Connection | None = None
        self._file: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None

    def acquire(self) -> bool:
        """Take the lock if no process holds it; True when this one now does."""
        if self.held:
            return True
        if self._url.get_backend_name() == "postgresql":
            return self._acquire_postgres()
        return self._acquire_file()

    def _acquire_postgres(self) -> bool:
        # A connection of its own, outside any pool: closing it is the release.
        engine = create_engine(self._url, poolclass=NullPool, connect_args=_PG_KEEPALIVES)
        connection = engine.connect()
        try:
            taken = bool(connection.execute(_PG_TRY, {"name": self.name}).scalar())
            connection.commit()
        except BaseException:
            connection.close()
            raise
        if not taken:
            connection.close()
            return False
        self._connection = connection
        return True

    def _acquire_file(self) -> bool:
        database = self._url.database or "archive.db"
        folder = Path(f"{database}.locks")
        folder.mkdir(parents=True, exist_ok=True)
        handle = (folder / f"{self.name}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # a lost connection has let it go already
                self._connection.close()
            self._connection = None
        if self._file is not None:
            self._file.close()
            self._file = None


@contextlib.contextmanager
def holding(engine: Engine, name: str) -> Iterator[bool]:
    """``with holding(engine, "source:x") as taken``: the lock for the block, if free."""
    lock = ArchiveLock(engine, name)
    try:
        yield lock.acquire()
    finally:
        lock.release()
