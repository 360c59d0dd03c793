"""The queue tests' parts: a real redis-server or rabbitmq-server of the test's
own, real ``deportwatch`` processes in the background, loopback feed sources and
readers of what the archive holds. A plugin (``pytest_plugins`` in conftest), so
that both queue test files share its fixtures and RabbitMQ node."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import amqp
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from db.engine import make_engine, make_sessionmaker
from db.models import Article, CrawlRun, SourceRow
from tests.conftest import WEB, LoopbackSite
from tests.helpers import feed, free_port, start_command, wait_for

KI = WEB / "kyivindependent.com"
PAGES = (
    "national-resistance-center-russia-moves-deported-ukrainians-to-55-distant-regions",
    "power-restored-to-most-of-kharkiv-after-overnight-strike-on-substation",
)
# A crawl of two pages on loopback takes 4-10 s, mostly its child's start; on a
# loaded 2-core machine, with two at once, up to about 20 s. Each may run 45 s.
QUEUE_SETTINGS = {"crawl_timeout": "45", "broker_visibility_timeout": "56", "queue_tick": "0.5"}
# Where one crawl runs at a time and a test waits for Redis to deliver a task again
# (the least the worker allows: the crawl's 30 s + 10 s to stop it + 1).
# RabbitMQ needs no such wait: it delivers a task again when its worker's
# connection drops.
REDELIVERY_SETTINGS = QUEUE_SETTINGS | {"crawl_timeout": "30", "broker_visibility_timeout": "41"}
# The broker and the archive are parts that never meet: each scenario runs on each
# broker and on each archive (the two diagonals of broker x archive), not on all
# four pairs. Where Redis waits out its visibility timeout, it runs on PostgreSQL;
# the archive's side of a lost worker or a broker restart (the lost run closed,
# the source's lock freed, nothing stored twice) then runs on SQLite with
# RabbitMQ, which needs no wait.
REDIS_PG_RABBITMQ_SQLITE = pytest.mark.parametrize(
    ("broker", "database_url"),
    [("redis", "postgresql"), ("rabbitmq", "sqlite")],
    indirect=True,
)
REDIS_SQLITE_RABBITMQ_PG = pytest.mark.parametrize(
    ("broker", "database_url"),
    [("redis", "sqlite"), ("rabbitmq", "postgresql")],
    indirect=True,
)


class Broker(Protocol):
    url: str

    def restart(self) -> None: ...


class Redis:
    """redis-server on a free loopback port, keeping nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, "redis-server to answer")
        return process

    def _answers(self) -> bool:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
        )
        return done.stdout.strip() == b"PONG"

    def restart(self) -> None:
        """Stopped and started again: everything it held (the queue) is gone."""
        self.stop()
        self.process = self._start()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = Redis(tmp_path)
    yield server
    server.stop()


# Not /usr/sbin/rabbitmq-server: as root, that wrapper runs the server as the
# rabbitmq user, who cannot write the test's folder.
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


class RabbitMQ:
    """rabbitmq-server on free loopback ports, its data in ``workdir``, no plugins.

    It takes seconds to start (an Erlang node loading RabbitMQ's modules), so one
    serves a test file's tests; each test has a virtual host of its own (``vhost()``):
    its queues, messages and workers' control exchanges are its own."""

    USER, PASSWORD = "deportwatch", "test"

    def __init__(self, workdir: Path, vhosts: int = 32) -> None:
        self.port = free_port()
        self.workdir = workdir
        self._vhosts = iter(f"t{i}" for i in range(vhosts))
        config = workdir / "rabbitmq.conf"
        definitions = workdir / "definitions.json"
        definitions.write_text(json.dumps(self._definitions(vhosts)))
        config.write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            f"load_definitions = {definitions}\n"  # the user and vhosts, made at boot
        )
        (workdir / "enabled_plugins").write_text("[].\n")
        (workdir / "rabbitmq-env.conf").write_text("")  # not the machine's (its node name)
        self.env = os.environ | {
            "HOME": str(workdir),  # its Erlang cookie goes here
            "RABBITMQ_NODENAME": f"deportwatch-test-{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_CONF_ENV_FILE": str(workdir / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        self.process = self._start()

    def _definitions(self, vhosts: int) -> dict[str, object]:
        salt = os.urandom(4)  # RabbitMQ's SHA-256 password hash: salt, then the digest
        digest = hashlib.sha256(salt + self.PASSWORD.encode()).digest()
        names = [f"t{i}" for i in range(vhosts)]
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        return {
            "users": [
                {
                    "name": self.USER,
                    "password_hash": base64.b64encode(salt + digest).decode(),
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": ["administrator"],
                }
            ],
            "vhosts": [{"name": name} for name in names],
            "permissions": [{"user": self.USER, "vhost": name, **everything} for name in names],
        }

    def vhost(self) -> str:
        """The URL of a virtual host no test has used."""
        return f"amqp://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}/{next(self._vhosts)}"

    def _start(self) -> subprocess.Popen[bytes]:
        with (self.workdir / "server.log").open("ab") as log:
            process = subprocess.Popen(
                [RABBITMQ_SERVER],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # 7-13 s on a loaded 2-core machine, 20 s and more when it is very busy.
        try:
            wait_for(lambda: self._answers(process), 120, "rabbitmq-server to answer")
        except BaseException:  # pytest.fail included: no node left running
            with contextlib.suppress(ProcessLookupError):  # it may have exited
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            raise
        return process

    def _answers(self, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            pytest.fail(f"rabbitmq-server exited:\n{(self.workdir / 'server.log').read_text()}")
        connection = amqp.Connection(
            f"127.0.0.1:{self.port}",
            userid=self.USER,
            password=self.PASSWORD,
            virtual_host="t0",
            connect_timeout=2,
        )
        try:
            connection.connect()
        except (OSError, amqp.exceptions.AMQPError):
            return False
        connection.close()
        return True

    def restart(self) -> None:
        """Stopped and started again on the same data: durable queues and their
        persistent messages come back, unacknowledged ones are ready again."""
        self.stop()
        self.process = self._start()

    def stop(self) -> None:
        self.process.terminate()  # rabbitmq-server stops the node cleanly on SIGTERM
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQ]:
    if not Path(RABBITMQ_SERVER).exists():
        pytest.skip("rabbitmq-server is not installed (apt-get install rabbitmq-server)")
    server = RabbitMQ(tmp_path_factory.mktemp("rabbitmq"))
    yield server
    server.stop()


class RabbitMQHost:
    """A test's virtual host on the module's RabbitMQ."""

    def __init__(self, server: RabbitMQ) -> None:
        self.server = server
        self.url = server.vhost()

    def restart(self) -> None:
        self.server.restart()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> Broker:
    """The broker, Redis (the default) or RabbitMQ (by its amqp:// URL)."""
    if request.param == "redis":
        server: Redis = request.getfixturevalue("redis")
        return server
    return RabbitMQHost(request.getfixturevalue("rabbitmq_server"))


class Process:
    """A deportwatch command in the background, its JSON log lines in a file:
    forked from the test worker (tests/forked.py), or the installed executable
    with DEPORTWATCH_TEST_EXEC=1. Each is a session and process group of its
    own, so that kill -9 takes its pool and forkserver with it."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = start_command(args, env, log.parent, output=log, session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, object]]:
        records = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == name:
                    records.append(record)
        return records

    def kill9(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def worker(
    processes: list[Process], env: dict[str, str], tmp_path: Path, name: str, ready: bool = True
) -> Process:
    process = Process(["worker", "--concurrency", "1", "--name", name], env, tmp_path / name)
    processes.append(process)
    if ready:
        wait_for(lambda: "ready." in process.text(), 30, f"worker {name} to be ready")
    return process


def outlets(site: LoopbackSite, names: list[str]) -> Path:
    """One feed source per name, each listing a flag-worthy page and an unrelated one."""
    entries = []
    for name in names:
        for slug in PAGES:
            site.write(f"/{name}/news/{slug}/", (KI / slug / "index.html").read_bytes())
        items = [
            (f"/{name}/news/{slug}/", f"{name} {slug[:30]}", "Fri, 07 Apr 2023 12:00:00 GMT")
            for slug in PAGES
        ]
        site.write(f"/{name}/feed.xml", feed(site.base, items))
        entries.append(
            f'[[source]]\nname = "{name}"\nkind = "feed"\n'
            f'start_urls = ["{site.base}/{name}/feed.xml"]\nlanguages = ["en"]\n'
            'schedule = { every = "1h" }\n'
        )
    path = site.root / "sources.toml"
    path.write_text("\n".join(entries))
    return path


def runs(database_url: str) -> list[tuple[str, CrawlRun]]:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(SourceRow.name, CrawlRun).join(CrawlRun.source).order_by(CrawlRun.id)
            ).all()
            return [(name, run) for name, run in rows]
    finally:
        engine.dispose()


def archive(database_url: str) -> list[tuple[str, str, str, bool]]:
    """What the archive holds of each article, in a form two archives can share."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(Article.canonical_url, Article.title, Article.content_hash, Article.flagged)
            ).all()
            return sorted(
                (url.split("/", 3)[3], title, digest, flag) for url, title, digest, flag in rows
            )
    finally:
        engine.dispose()


def closed_ok(database_url: str, names: list[str]) -> bool:
    try:
        done = {name for name, run in runs(database_url) if run.outcome == "ok"}
    except DBAPIError:  # no schema yet: the first process to start makes it
        return False
    return done >= set(names)
