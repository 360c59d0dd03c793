"""Create or upgrade the archive's schema with the Alembic migrations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from db.engine import (
    describe_url,
    explain_database_error,
    make_engine,
    make_readonly_engine,
    make_writer_engine,
)
from deportwatch.config.errors import ConfigError, DeportwatchError

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:
        return False


class NoArchiveError(ConfigError):
    """There is no archive at the configured place yet (exit code 2)."""


class SchemaMismatchError(ConfigError):
    """The archive's schema is not the one this version reads (exit code 2).

    Exit 2, as for a wrong setting: nothing was read, and it will not change
    until someone upgrades the archive or deportwatch.
    """


def check_schema(engine: Engine, url: str) -> None:
    """Refuse an archive whose schema this version cannot read, in one line; never migrate."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise NoArchiveError(
            f"no archive at {describe_url(url)} yet: run a crawl "
            "(deportwatch crawl --all) or `deportwatch init` to create it"
        )
    if _known(current):
        raise SchemaMismatchError(
            f"archive schema is at {current}, this version needs {head}: "
            "run `deportwatch init` where it is writable"
        )
    raise SchemaMismatchError(
        f"archive schema is at {current}, newer than this version of deportwatch knows "
        f"(it needs {head}): read it with the deportwatch that wrote it, or upgrade deportwatch"
    )


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _where(engine: Engine) -> str:
    """The archive as a person finds it: a SQLite file's path, else the URL."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        return engine.url.database.removeprefix("file:")  # a URI filename's path
    return describe_url(engine.url.render_as_string(hide_password=False))


def _check_writable(engine: Engine) -> None:
    """Ask the database itself whether this process may write, before any work starts.

    SQLite opens a file it cannot write read-only without a word and answers
    reads; in WAL mode even BEGIN IMMEDIATE succeeds. Only a write tells: the
    header's user_version set to the value it has, then rolled back. A
    PostgreSQL session may be read only (``default_transaction_read_only``, a
    standby).
    """
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "sqlite":
            try:
                cursor.execute("PRAGMA user_version")
                row = cursor.fetchone()
                version = int(row[0]) if row else 0
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    cursor.execute(f"PRAGMA user_version = {version}")
                finally:
                    cursor.execute("ROLLBACK")
            except engine.dialect.loaded_dbapi.OperationalError as exc:
                reason = explain_database_error(exc)
                if reason.startswith("read-only"):
                    raise _read_only(engine, str(exc)) from None
                raise DeportwatchError(
                    f"database {describe_url(str(engine.url))}: cannot write: {reason}"
                ) from None
        elif engine.dialect.name == "postgresql":
            cursor.execute("SHOW transaction_read_only")
            setting = cursor.fetchone()
            raw.rollback()
            if setting and setting[0] == "on":
                raise _read_only(engine, "its sessions are read only")
        cursor.close()
    finally:
        raw.close()


def _sqlite_cannot_write(engine: Engine) -> bool:
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return False
    path = Path(engine.url.database)
    return path.is_file() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


def _read_only(engine: Engine, reason: str) -> DeportwatchError:
    return DeportwatchError(
        f"the archive {_where(engine)} is read-only here ({reason}): this command writes to "
        "it; search, show, figures, export, status, sources and serve can read it as it is"
    )


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration; a no-op when it is there already.

    An archive this process cannot write is one line naming it, even when its
    schema is current: the callers are about to write.
    """
    try:
        if current_revision(engine) != head_revision():
            config = _config()
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        _check_writable(engine)
    except OperationalError as exc:
        reason = explain_database_error(exc)
        if reason.startswith("read-only"):
            raise _read_only(engine, str(exc.orig).strip()) from None
        if _sqlite_cannot_write(engine):
            # A read-only mount: SQLite cannot open the WAL index beside the file
            # and says only "unable to open database file".
            raise _read_only(engine, f"{reason}; its file or folder cannot be written") from None
        raise DeportwatchError(
            f"database {describe_url(str(engine.url))}: cannot open or migrate: {reason}"
        ) from None


@contextmanager
def open_archive(url: str, migrate: bool = True, writer: bool = False) -> Iterator[Engine]:
    """An engine on the archive, schema brought up to date, always disposed after use.

    ``writer``: its transactions take the archive's write lock from their first
    statement (``make_writer_engine``), for work that reads, then writes what it
    read, while crawls may be writing.
    """
    engine = make_writer_engine(url) if writer else make_engine(url)
    try:
        if migrate:
            upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def _missing_sqlite_file(url: str) -> Path | None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # make_readonly_engine says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


@contextmanager
def open_archive_readonly(url: str) -> Iterator[Engine]:
    """An engine that cannot write, on an archive whose schema is the one this version
    reads; never created, never migrated (``make_readonly_engine``), always disposed.

    For the commands that only read: they work on an archive handed over
    read-only, and leave its schema to ``deportwatch init`` where it is writable.
    """
    missing = _missing_sqlite_file(url)
    if missing is not None:
        raise NoArchiveError(
            f"no archive at {missing} yet: run a crawl (deportwatch crawl --all) "
            "or `deportwatch init` to create it"
        )
    engine = make_readonly_engine(url)
    try:
        try:
            check_schema(engine, url)
        except OperationalError as exc:
            raise DeportwatchError(
                f"database {describe_url(url)}: cannot open: {explain_database_error(exc)}"
            ) from None
        yield engine
    finally:
        engine.dispose()
