"""Engines and sessions for SQLite files and PostgreSQL servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from deportwatch.config.errors import ConfigError, DeportwatchError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _busy_timeout_ms(parsed: URL) -> int:
    """How long a SQLite connection waits for another's lock: 30 s, or the URL's
    own ``?timeout=SECONDS`` (pysqlite's parameter)."""
    raw = parsed.query.get("timeout")
    if isinstance(raw, str):
        try:
            return max(0, int(float(raw) * 1000))
        except ValueError:
            raise ConfigError(f"database URL: timeout={raw!r} is not a number of seconds") from None
    return SQLITE_BUSY_TIMEOUT_MS


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets queries read while a crawl writes; foreign keys are off by
        # default in SQLite; the busy timeout makes a second writer wait
        # instead of failing at once.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


SUPPORTED = "use SQLite (sqlite:///FILE) or PostgreSQL (postgresql://USER@HOST/DB)"


def _parse(url: str) -> URL:
    """``url`` parsed, for SQLite or PostgreSQL only; anything else is a ConfigError
    before SQLAlchemy would look for a driver that is not installed."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database URL {url!r} is not a valid SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database URL {describe_url(url)!r}: '{backend}' is not supported; {SUPPORTED}"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not psycopg2
    return parsed


def _create(parsed: URL, **options: Any) -> Engine:
    try:
        return create_engine(parsed, **options)
    except (NoSuchModuleError, ImportError):
        # postgresql+asyncpg://, sqlite+pysqlcipher://: a driver not installed here.
        raise ConfigError(
            f"database URL {parsed.render_as_string(hide_password=True)!r}: driver "
            f"'{parsed.get_driver_name()}' is not installed; {SUPPORTED}"
        ) from None


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created when missing."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy_ms = _busy_timeout_ms(parsed)
        engine = _create(parsed, connect_args={"timeout": busy_ms / 1000})
        event.listen(engine, "connect", _sqlite_pragmas(busy_ms))
        return engine
    return _create(parsed, pool_pre_ping=True)


def _sqlite_manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module would open transactions itself, lazily and DEFERRED;
    # SQLAlchemy emits the BEGIN instead (see make_writer_engine).
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


# One lock for every writer of a schema: the key is derived from the schema's
# name, so archives in separate schemas of one database do not wait on each other.
_PG_WRITER_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtext('deportwatch-writer:' || current_schema()))"
)
PG_LOCK_TIMEOUT_MS = SQLITE_BUSY_TIMEOUT_MS


def _postgres_writer_lock(connection: Any) -> None:
    # lock_timeout bounds the wait as SQLite's busy timeout does; a wait longer
    # than that is an error the writer treats as the archive being away.
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {PG_LOCK_TIMEOUT_MS}")
    connection.exec_driver_sql(_PG_WRITER_LOCK)


def make_writer_engine(url: str) -> Engine:
    """An engine for a long write transaction that reads before it writes, one
    such transaction at a time across every process writing to the archive.

    On SQLite, a DEFERRED transaction that has read cannot always take the
    write lock later (another process may have written since: SQLITE_BUSY,
    without waiting), so each transaction starts ``BEGIN IMMEDIATE``: it waits
    its turn for the write lock (the busy timeout) and then cannot fail for
    it. SQLAlchemy's documented recipe; it also makes SAVEPOINTs reliable.

    On PostgreSQL, each transaction first takes a transaction-scoped advisory
    lock, the same for every writer of the schema: two crawls inserting the same
    articles in different orders would otherwise deadlock, or both miss that the
    other's copy of a story is a copy (neither sees the other's uncommitted rows).
    """
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_manual_transactions)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "begin", _postgres_writer_lock)
    return engine


def _sqlite_read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_READONLY = 8
_SQLITE_CANTOPEN = 14


def _wal_path(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def _wal_holds_changes(path: Path) -> bool:
    wal = _wal_path(path)
    return wal.exists() and wal.stat().st_size > 0


class ArchiveUnreadableError(DeportwatchError):
    """A read-only archive SQLite cannot open for reading without writing beside it."""


def _sqlite_connect_read_only(path: Path) -> Callable[..., Any]:
    """``do_connect``: open the file ``mode=ro``; where that cannot read it, ``immutable=1``.

    The archive is in WAL mode (``make_engine``), and a WAL reader needs the
    ``-shm`` index beside the file, creating it (and an empty ``-wal``) when it
    is not there. In a folder this process cannot write (a read-only folder or
    bind mount, the usual way to hand an archive to an analyst) ``mode=ro``
    then fails on the first read with "attempt to write a readonly database"
    (SQLITE_READONLY_DIRECTORY) or "unable to open database file" (on a
    read-only mount). That is why the web view answered 503 on its first SELECT.

    While a writer has the archive open the ``-shm`` and ``-wal`` exist and
    ``mode=ro`` works, so it is tried first. When it fails and there is no
    ``-wal`` with content, every committed transaction is in the file itself
    (the last connection to close checkpoints and removes the log), so reading
    the file as ``immutable=1`` (no ``-shm``, no locks) reads the archive exactly
    as it is. A ``-wal`` with content that cannot be indexed holds commits the
    file does not have: reading without them would be silently stale, so that is
    an error. A writer that appears later is caught at checkout (below).
    """

    def do_connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> Any:
        dbapi = dialect.loaded_dbapi
        connection = dbapi.connect(*cargs, **cparams)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
            record.info["immutable"] = False
            return connection
        except dbapi.OperationalError as exc:
            connection.close()
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in (_SQLITE_READONLY, _SQLITE_CANTOPEN) or not path.is_file():
                raise
            if _wal_holds_changes(path):
                raise ArchiveUnreadableError(
                    f"the archive {path} is read-only here and its write-ahead log "
                    f"{_wal_path(path).name} holds changes SQLite can only read by writing "
                    "beside the archive: run any deportwatch command once where its folder "
                    "is writable, then hand it over again"
                ) from None
        record.info["immutable"] = True
        immutable = f"file:{quote(str(path))}?mode=ro&immutable=1"
        return dbapi.connect(immutable, **(cparams | {"uri": True}))

    return do_connect


def _sqlite_drop_stale_immutable(path: Path) -> Callable[[Any, Any, Any], None]:
    """``checkout``: an ``immutable=1`` connection taken while a writer has started
    would read the file under the writer's feet; the pool opens a new one instead."""

    def checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("immutable") and _wal_path(path).exists():
            raise DisconnectionError("a writer opened the archive since this connection")

    return checkout


def make_readonly_engine(url: str) -> Engine:
    """An engine that cannot write, enforced by the database, not by our code.

    SQLite: the file is opened with ``mode=ro`` (and ``query_only``), or
    ``immutable=1`` where the folder cannot be written (see
    ``_sqlite_connect_read_only``); a missing file is never created.
    PostgreSQL: every transaction is read only (``default_transaction_read_only``);
    a read-only role in the URL adds a second lock.
    """
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError("a read-only view needs an archive file, not an in-memory database")
        resolved = Path(parsed.database).resolve()
        engine = create_engine(
            f"sqlite:///file:{quote(str(resolved))}?mode=ro&uri=true",
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "do_connect", _sqlite_connect_read_only(resolved))
        event.listen(engine, "connect", _sqlite_read_only)
        event.listen(engine.pool, "checkout", _sqlite_drop_stale_immutable(resolved))
        return engine
    given = parsed.query.get("options") or ()
    given = (given,) if isinstance(given, str) else given
    options = " ".join([*given, "-c default_transaction_read_only=on"])
    parsed = parsed.update_query_dict({"options": options})
    return _create(parsed, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def describe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def explain_database_error(exc: BaseException) -> str:
    """A database error as one line a user can act on."""
    reason = str(getattr(exc, "orig", None) or exc).strip()
    reason = reason.splitlines()[0] if reason else type(exc).__name__
    lowered = reason.lower()
    if "database is locked" in lowered:
        return (
            "locked by another process for longer than this one waits (30 s, or the "
            "URL's ?timeout=); try again once it is done"
        )
    if "readonly database" in lowered or "read-only" in lowered:
        return f"read-only: the archive cannot be written here ({reason})"
    if "connection refused" in lowered or "could not connect" in lowered:
        return f"unreachable ({reason})"
    return reason
