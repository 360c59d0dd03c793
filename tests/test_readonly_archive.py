"""An archive handed over read-only is readable: the commands that only read open it
read-only and never migrate it; the commands that write say in one line that it is
read-only; a schema behind or ahead, or no archive at all, is one line.

The tests run as root, whom file permissions do not bind: the command runs
without the capabilities that let root ignore them (``setpriv`` for a new
process, the same calls in a forked one, tests/confine.py), or, for a read-only
mount, in a mount namespace of its own.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from db.engine import make_engine
from db.migrate import MIGRATIONS, current_revision, head_revision, open_archive_readonly
from db.models import Article, CounterReading
from db.repository.runs import ensure_source
from deportwatch.cli.app import app
from tests.confine import drop_capabilities, read_only_mount
from tests.conftest import REPO, WEB
from tests.helpers import ServedView, cli_env, run_command

SOURCES = REPO / "sources.toml"
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
# Root keeps its uid but loses CAP_DAC_OVERRIDE and the rest: the files' owner
# bits then bind it like anyone else.
WITHOUT_CAPABILITIES = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]
# The folder bound read-only onto itself, as `docker run -v DIR:DIR:ro` does.
READ_ONLY_MOUNT = ["unshare", "--mount", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"']


def _probe(prefix: list[str], target: Path) -> subprocess.CompletedProcess[str]:
    code = f"open({str(target)!r}, 'a')"
    return subprocess.run(
        [*prefix, sys.executable, "-c", code], capture_output=True, text=True, check=False
    )


def _unprivileged(tmp_path: Path) -> list[str]:
    """A prefix under which file permissions hold, or a skip saying why there is none."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: no way to make file permissions hold")
    probe = tmp_path / "probe"
    probe.write_text("")
    probe.chmod(0o444)
    result = _probe(WITHOUT_CAPABILITIES, probe)
    probe.unlink()
    if "PermissionError" not in result.stderr:
        pytest.skip(f"setpriv cannot drop root's capabilities here: {result.stderr.strip()}")
    return WITHOUT_CAPABILITIES


def _read_only_mount(folder: Path) -> list[str]:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare: cannot make a read-only mount")
    prefix = [*READ_ONLY_MOUNT, str(folder)]
    result = _probe(prefix, folder / "probe")
    if "Read-only file system" not in result.stderr:
        pytest.skip(f"cannot make a read-only bind mount here: {result.stderr.strip()}")
    return prefix


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Handed:
    """A copy of the test archive in a folder of its own, made read-only one way:
    ``prefix`` for a new process (``serve``, a script), ``confine`` the same done
    in a forked child (tests/confine.py), for the commands run with ``run``."""

    path: Path
    prefix: list[str]
    confine: Callable[[], None] | None
    tmp_path: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = cli_env(self.url, SOURCES, self.tmp_path)
        return run_command(list(args), env, self.tmp_path, prefix=self.prefix, before=self.confine)


def _add_readings(session: Session) -> None:
    source = ensure_source(session, "children-of-war", "counters")
    for day, value in ((1, 19_500), (15, 19_546)):
        session.add(
            CounterReading(
                source_id=source.id,
                metric="deported",
                label="Депортовано",
                value=value,
                as_of=date(2023, 10, day),
                fetched_at=datetime(2023, 10, day, tzinfo=UTC),
                url="https://childrenofwar.gov.ua/",
            )
        )
    session.commit()


@pytest.fixture(params=["file", "folder", "mount"])
def handed(
    request: pytest.FixtureRequest,
    *,
    database_url: str,
    engine: Engine,
    session: Session,
    corpus: dict[str, Article],
    tmp_path: Path,
) -> Iterator[Handed]:
    """The archive as an analyst gets it: a read-only file (in a folder its owner may
    write), a read-only folder, or a read-only bind mount. The tests that use it
    run on SQLite only (ON_SQLITE): on PostgreSQL read-only is the role's or the
    session's, tested below."""
    _add_readings(session)
    session.close()
    engine.dispose()  # the last connection to close checkpoints and removes the -wal
    source = Path(make_url(database_url).database or "")
    assert not source.with_name(source.name + "-wal").exists()
    folder = tmp_path / "handed"
    folder.mkdir()
    path = folder / "archive.db"
    shutil.copyfile(source, path)
    # The archive is in WAL mode (file format bytes 18 and 19 are 2), the case
    # that needs care: a WAL reader wants to create an index beside the file.
    assert path.read_bytes()[18:20] == b"\x02\x02"
    path.chmod(0o444)
    confine: Callable[[], None] | None
    if request.param == "mount":
        prefix = _read_only_mount(folder)
        confine = functools.partial(read_only_mount, folder)
    else:
        prefix = _unprivileged(tmp_path)
        confine = drop_capabilities if prefix else None
        if request.param == "folder":
            folder.chmod(0o555)
    yield Handed(path, prefix, confine, tmp_path)
    folder.chmod(0o755)


@ON_SQLITE
def test_read_commands_read_a_read_only_archive(handed: Handed, corpus: dict[str, Article]) -> None:
    before = _sha256(handed.path)
    found = handed.run("search", "Kherson", "--all-copies", "--format", "json")
    assert (found.returncode, found.stderr) == (0, "")
    assert {r["id"] for r in json.loads(found.stdout)} == {
        corpus["kherson"].id,
        corpus["copy"].id,
    }

    shown = handed.run("show", str(corpus["skadovsk"].id), "--format", "json")
    assert (shown.returncode, shown.stderr) == (0, "")
    assert json.loads(shown.stdout)["title"] == "Окупанти депортували дітей зі Скадовська"

    figures = handed.run("figures", "--format", "json")
    assert (figures.returncode, figures.stderr) == (0, "")
    assert [r["value"] for r in json.loads(figures.stdout)] == [19_500, 19_546]

    exported = handed.run("export", "--format", "jsonl")
    assert (exported.returncode, exported.stderr) == (0, "")
    assert sorted(json.loads(line)["id"] for line in exported.stdout.splitlines()) == sorted(
        a.id for a in corpus.values()
    )

    # No crawl runs in this archive: every enabled source is pending, none unhealthy.
    status = handed.run("status", "--format", "json")
    assert (status.returncode, status.stderr) == (0, "")
    states = {r["name"]: r["state"] for r in json.loads(status.stdout)}
    assert states["kyiv-independent"] == "pending"

    sources = handed.run("sources", "--format", "json")
    assert (sources.returncode, sources.stderr) == (0, "")
    assert "kyiv-independent" in {r["name"] for r in json.loads(sources.stdout)}

    assert _sha256(handed.path) == before


@ON_SQLITE
def test_serve_reads_a_read_only_archive(handed: Handed, corpus: dict[str, Article]) -> None:
    view = ServedView(handed.url, handed.tmp_path, prefix=handed.prefix)
    try:
        status, page = view.get("/?q=Kherson")
        assert status == 200, view.log.read_text()
        assert f'href="/articles/{corpus["kherson"].id}"' in page
        status, page = view.get(f"/articles/{corpus['skadovsk'].id}")
        assert status == 200
        assert "Окупанти депортували дітей зі Скадовська" in page
    finally:
        code = view.stop()
    log = view.log.read_text()
    assert code == 0, log
    assert "readonly" not in log
    assert "note:" not in log


@ON_SQLITE
@pytest.mark.parametrize(
    "args", [["init"], ["crawl", "nv-en", "--replay", str(WEB)]], ids=["init", "crawl"]
)
def test_writing_commands_say_the_archive_is_read_only(handed: Handed, args: list[str]) -> None:
    before = _sha256(handed.path)
    result = handed.run(*args)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: the archive {handed.path} is read-only here (")
    assert lines[0].endswith(
        "this command writes to it; search, show, figures, export, status, sources and serve "
        "can read it as it is"
    )
    assert _sha256(handed.path) == before


def _alembic(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def _previous_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_revision(head_revision())
    assert head is not None
    assert isinstance(head.down_revision, str)
    return head.down_revision


READERS = [
    ["search"],
    ["show", "1"],
    ["figures"],
    ["export", "--format", "csv"],
    ["status"],
]
runner = CliRunner()


def invoke(args: list[str], database_url: str, tmp_path: Path) -> Result:
    """The real command in this process (typer's runner), with the test's settings."""
    return runner.invoke(app, args, env=cli_env(database_url, SOURCES, tmp_path))


def test_a_schema_behind_is_one_line_and_never_upgraded(database_url: str, tmp_path: Path) -> None:
    older = _previous_revision()
    engine = make_engine(database_url)
    _alembic(engine, older)
    try:
        for args in READERS:
            result = invoke(args, database_url, tmp_path)
            assert (result.exit_code, result.stderr) == (
                2,
                f"error: archive schema is at {older}, this version needs {head_revision()}: "
                "run `deportwatch init` where it is writable\n",
            ), args
            assert result.stdout == ""
        assert current_revision(engine) == older
        # Where it is writable, init brings it up and the readers read.
        assert invoke(["init"], database_url, tmp_path).exit_code == 0
        assert current_revision(engine) == head_revision()
        assert invoke(["search"], database_url, tmp_path).exit_code == 0
    finally:
        engine.dispose()


def test_a_schema_ahead_is_one_line(engine: Engine, database_url: str, tmp_path: Path) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    for args in READERS:
        result = invoke(args, database_url, tmp_path)
        assert (result.exit_code, result.stderr) == (
            2,
            f"error: archive schema is at 9999, newer than this version of deportwatch knows "
            f"(it needs {head_revision()}): read it with the deportwatch that wrote it, or "
            "upgrade deportwatch\n",
        ), args
    assert current_revision(engine) == "9999"


def test_no_archive_is_one_line_and_none_is_created(tmp_path: Path) -> None:
    archive = tmp_path / "data" / "archive.db"
    url = f"sqlite:///{archive}"
    for args in READERS[:-1]:
        result = invoke(args, url, tmp_path)
        assert (result.exit_code, result.stderr) == (
            2,
            f"error: no archive at {archive} yet: run a crawl (deportwatch crawl --all) "
            "or `deportwatch init` to create it\n",
        ), args
    # Before the first crawl, status says every source is pending (a health check passes).
    status = invoke(["status", "--format", "json"], url, tmp_path)
    assert status.exit_code == 0
    assert {r["state"] for r in json.loads(status.stdout)} <= {"pending", "disabled"}
    assert not archive.exists()
    assert not archive.parent.exists()


@ON_POSTGRESQL
def test_an_empty_postgresql_schema_is_no_archive(database_url: str, tmp_path: Path) -> None:
    result = invoke(["search"], database_url, tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no archive at postgresql")
    assert result.stderr.count("\n") == 1


def test_the_readers_engine_is_read_only(engine: Engine, database_url: str) -> None:
    with open_archive_readonly(database_url) as readonly, readonly.connect() as conn:
        if readonly.dialect.name == "postgresql":
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
        with pytest.raises(DBAPIError, match=r"(?i)read.?only"):
            conn.execute(text("UPDATE articles SET title = 'changed'"))


@ON_POSTGRESQL
def test_writers_on_read_only_postgresql_sessions_say_so(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    parsed = make_url(database_url)
    options = f"{parsed.query['options']} -c default_transaction_read_only=on"
    url = parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)
    result = invoke(["init"], url, tmp_path)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the archive postgresql")
    assert "is read-only here (its sessions are read only): this command writes to it" in (
        result.stderr
    )
    assert result.stderr.count("\n") == 1


READ_TWICE = """
import sys
from sqlalchemy import text
from db.engine import make_readonly_engine

engine = make_readonly_engine(sys.argv[1])
for _ in range(2):
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT count(*) FROM sqlite_master")).scalar()
        print(tables, conn.connection.info["immutable"], flush=True)
    sys.stdin.readline()
"""


@ON_SQLITE
@pytest.mark.parametrize("handed", ["folder"], indirect=True)
def test_a_writer_that_appears_is_seen_by_a_reader_of_a_read_only_folder(
    handed: Handed,
) -> None:
    """Read as immutable while nobody writes; once a writer has the archive open
    (its -wal beside the file), the pooled connection is replaced by a mode=ro one
    that sees the writer's commits."""
    with subprocess.Popen(
        [*handed.prefix, sys.executable, "-c", READ_TWICE, handed.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    ) as reader:
        assert reader.stdin is not None
        assert reader.stdout is not None
        try:
            tables, immutable = reader.stdout.readline().split()
            assert immutable == "True"
            writer = sqlite3.connect(handed.path)  # root: its capabilities let it write here
            try:
                writer.execute("CREATE TABLE appeared (x)")
                writer.commit()
                reader.stdin.write("\n")
                reader.stdin.flush()
                assert reader.stdout.readline().split() == [str(int(tables) + 1), "False"]
            finally:
                writer.close()
            reader.stdin.write("\n")
            reader.stdin.flush()
            assert reader.wait(timeout=60) == 0
        finally:
            if reader.poll() is None:
                reader.kill()


@ON_SQLITE
def test_serve_says_at_start_why_the_archive_cannot_be_read(
    database_url: str, tmp_path: Path
) -> None:
    older = _previous_revision()
    engine = make_engine(database_url)
    _alembic(engine, older)
    engine.dispose()
    view = ServedView(database_url, tmp_path)  # it started: it answers
    code = view.stop()
    log = view.log.read_text()
    assert code == 0, log
    assert (
        f"note: archive schema is at {older}, this version needs {head_revision()}: run "
        "`deportwatch init` where it is writable; the pages answer 503 until it can be read"
    ) in log
    assert current_revision(engine) == older
    engine.dispose()
