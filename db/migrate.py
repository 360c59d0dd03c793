"""Create or upgrade the archive's schema with the Alembic migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from db.engine import describe_url, explain_database_error, make_engine, make_writer_engine
from deportwatch.config.errors import DeportwatchError

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration; a no-op when it is there already."""
    try:
        if current_revision(engine) == head_revision():
            return
        config = _config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise DeportwatchError(
            f"database {describe_url(str(engine.url))}: cannot open or migrate: "
            f"{explain_database_error(exc)}"
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
