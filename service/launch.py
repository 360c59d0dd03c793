"""How a crawl's child process starts: forked from a pre-warmed process, or a new interpreter.

A new interpreter (``python -m deportwatch crawl NAME --run-id N``) spends most
of a small crawl importing Scrapy, Twisted, trafilatura, SQLAlchemy and
datasketch (which pulls scipy and numpy): about 2.7 s of CPU for a 3 s crawl of
one small source. The default start (``DEPORTWATCH_CRAWL_START=fork``) forks
the child from a process that has already imported those libraries: Python's
multiprocessing "forkserver", a clean interpreter started once per service or
queue worker process that imports ``PRELOAD`` and then only forks. Forking the
service itself instead is unsafe: it runs threads (the scheduler's pool, the
database pool), and a fork copies their locks in whatever state they are in;
the forkserver never runs a thread, a database connection or a reactor.

What the forkserver holds is third-party code only, imported, never started:
Twisted's reactor is installed by the crawl (Scrapy chooses the asyncio one)
and must not be in the forkserver, or every child would inherit a reactor of
the wrong kind (``PRELOAD`` is checked by tests/test_scheduler.py). The child
(``_crawl_main``) then does what a new process had from ``subprocess.Popen``:
its own session (its process group is what a timeout or a stop signals),
PR_SET_PDEATHSIG when asked (its parent is the forkserver, which exits when the
worker that started it dies, so ``kill -9`` of a worker still ends its crawl),
standard input from /dev/null, output into a file the parent reads the tail of,
the given environment, working directory and argv. The project's own modules
are imported afresh after that, so their module-level state (consoles, caches)
follows the child's environment, as in a new interpreter.

As with any multiprocessing start other than fork, the parent's main script
is run again in the child (as ``__mp_main__``) before the crawl: a program that
starts crawls keeps its work under ``if __name__ == "__main__":``, as the
``deportwatch`` command does.

Differences that remain, none of which a crawl depends on: PYTHON* variables in
the child's environment (PYTHONHASHSEED, PYTHONPATH) take no effect, since the
interpreter already runs; every fork has the same hash seed, and numpy's global
random state (the crawl draws on neither: datasketch seeds its own generator,
``random`` is reseeded in each fork by Python). The exit (``finish``) does what
an interpreter's exit does: joins the crawl's threads, runs the atexit hooks,
flushes. ``DEPORTWATCH_CRAWL_START=command`` starts a new interpreter as
before, should a library turn out not to survive a fork.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import io
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator, Mapping
from functools import cache, partial
from multiprocessing.context import ForkServerContext
from multiprocessing.process import AuthenticationString  # type: ignore[attr-defined]
from multiprocessing.reduction import DupFd, ForkingPickler
from pathlib import Path
from typing import Any, Literal, Protocol

START_MODES = ("fork", "command")
StartMode = Literal["fork", "command"]
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
OUTPUT_TAIL = 4000  # characters of a child's output kept for a crash report

# Imported once by the forkserver: what a crawl imports from other projects, its
# heaviest part. Third-party only (the project's modules follow the child's
# environment), and nothing here installs Twisted's reactor or starts a thread.
PRELOAD = (
    "scrapy",
    "scrapy.crawler",
    "scrapy.http",
    "scrapy.spiders",
    "scrapy.core.engine",
    "scrapy.core.scraper",
    "scrapy.core.downloader.handlers.http11",
    "scrapy.downloadermiddlewares.cookies",
    "scrapy.downloadermiddlewares.httpcompression",
    "scrapy.downloadermiddlewares.redirect",
    "scrapy.downloadermiddlewares.retry",
    "scrapy.extensions.telnet",
    "scrapy.extensions.throttle",
    "scrapy.spidermiddlewares.httperror",
    "scrapy.logformatter",
    "scrapy.statscollectors",
    "scrapy.utils.reactor",
    "twisted.internet.asyncioreactor",  # the module only: installing it is the crawl's
    "twisted.internet.task",
    "twisted.web._newclient",
    "trafilatura",
    "htmldate",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    "sqlite3",
    "alembic.config",
    "alembic.runtime.migration",
    "alembic.script",
    "datasketch",
    "feedparser",
    "dateparser",
    "simplemma",
    "warcio.warcwriter",
    "lxml.html",
    "bs4",
    "parsel",
    "tldextract",
    "requests",
    "aiohttp",
    "apprise",
    "anyascii",
    "protego",
    "queuelib",
    "typer",
    "rich.console",
    "rich.logging",
    "rich.progress",
    "rich.table",
    "pydantic_settings",
    "kombu.exceptions",
    "apscheduler.schedulers.background",
    "apscheduler.triggers.cron",
    "email.policy",
)
# The project's top-level packages and modules: never preloaded, imported afresh.
OWN = ("deportwatch", "db", "pipeline", "spiders", "service", "scheduler")

# Process.start and the reading of a child's exit status, one thread at a time:
# multiprocessing's start polls every other child, and two threads reading one
# child's status from the forkserver would each get half of it.
_LOCK = threading.Lock()


class Child(Protocol):
    """A started crawl process, however it was started."""

    pid: int

    def wait(self, timeout: float | None) -> int | None:
        """Its exit code once it has ended (negative: the signal); None at the timeout."""
        ...

    def signal_group(self, signum: int) -> None:
        """Signal it and whatever it started (its own process group)."""
        ...

    def output(self) -> str:
        """The last ``OUTPUT_TAIL`` characters it wrote (stdout and stderr together)."""
        ...

    def close(self) -> None: ...


def start(
    mode: StartMode,
    argv: list[str],
    env: Mapping[str, str],
    workdir: Path | None,
    *,
    die_with_parent: bool,
) -> Child:
    """``deportwatch ARGV`` in a child process of its own session."""
    if mode == "command":
        return CommandChild(argv, env, workdir, die_with_parent=die_with_parent)
    return ForkedChild(argv, env, workdir, die_with_parent=die_with_parent)


class CommandChild:
    """``python -m deportwatch ARGV``: a new interpreter."""

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        workdir: Path | None,
        *,
        die_with_parent: bool,
    ) -> None:
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        try:
            # A session of its own: Ctrl+C in a terminal reaches the service
            # only, which then decides how long its children may go on.
            self.process = subprocess.Popen(  # noqa: S603 - a fixed command, no shell
                [sys.executable, "-m", "deportwatch", *argv],
                stdout=self._output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=workdir,
                start_new_session=True,
                preexec_fn=partial(_die_with, os.getpid()) if die_with_parent else None,  # noqa: PLW1509
            )
        except BaseException:
            self._output.close()
            raise
        self.pid = self.process.pid

    def wait(self, timeout: float | None) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal_group(self, signum: int) -> None:
        if self.process.poll() is None:  # not reaped yet: its pid is still its own
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    def output(self) -> str:
        return _tail(self._output)

    def close(self) -> None:
        self._output.close()


class ForkedChild:
    """A fork of the pre-warmed forkserver running ``_crawl_main``."""

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        workdir: Path | None,
        *,
        die_with_parent: bool,
    ) -> None:
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.process = forkserver().Process(
            target=_crawl_main,
            args=(
                argv,
                dict(env),
                str(workdir or Path.cwd()),
                _Inherited(self._output.fileno()),
                os.getpid() if die_with_parent else None,
            ),
            name=f"deportwatch {' '.join(argv)}",
        )
        try:
            with _LOCK, _may_have_children():
                self.process.start()
        except BaseException:
            self._output.close()
            raise
        assert self.process.pid is not None
        self.pid: int = self.process.pid
        self._exit_code: int | None = None

    def wait(self, timeout: float | None) -> int | None:
        if self._exit_code is None:
            if not multiprocessing.connection.wait([self.process.sentinel], timeout):
                return None
            with _LOCK:
                self._exit_code = self.process.exitcode
        return self._exit_code

    def signal_group(self, signum: int) -> None:
        # The forkserver reaps its children at once, so an ended child's pid is
        # free again: signal only one that has not ended.
        if self.wait(0) is not None:
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            # Not yet in a session of its own (it has just been forked): the
            # signal reaches it alone, before it could start anything.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def output(self) -> str:
        return _tail(self._output)

    def close(self) -> None:
        # The process object is left to multiprocessing, which forgets it at the
        # next start and closes its status pipe when it is collected: closing
        # that here could pull it from under a stop() in another thread.
        self._output.close()


@contextlib.contextmanager
def _may_have_children() -> Iterator[None]:
    """A Celery pool process is marked daemonic (billiard sets multiprocessing's
    current process to its own), and multiprocessing refuses children to a
    daemonic process, which it would end at its exit. A crawl is ended by
    ChildCrawl instead: the mark is lifted while the child starts."""
    current = multiprocessing.current_process()
    # Its key is billiard's type too, which refuses to be sent to a child by
    # multiprocessing: it goes as multiprocessing's own.
    key_type = type(current.authkey)
    if key_type is not AuthenticationString:
        ForkingPickler.register(key_type, _as_authkey)
    if not current.daemon:
        yield
        return
    current.daemon = False
    try:
        yield
    finally:
        current.daemon = True


def _as_authkey(key: bytes) -> tuple[Any, tuple[bytes]]:
    return AuthenticationString, (bytes(key),)


@cache
def forkserver() -> ForkServerContext:
    """The forkserver context, its preload set (started at the first crawl)."""
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload(list(PRELOAD))
    return context


def _forget_inherited_forkserver() -> None:
    """In a process made by ``os.fork`` (a Celery pool process, a test's forked
    command): a forkserver its parent started is the parent's, with the parent's
    environment and preload. Forget it, so this process starts its own at its first
    crawl; the inherited copy of its alive pipe is closed (the parent keeps its own)."""
    server = multiprocessing.forkserver._forkserver  # the module's singleton
    alive: int | None = getattr(server, "_forkserver_alive_fd", None)
    if alive is None:
        return
    server.__init__()  # type: ignore[misc]  # the state of a server never started
    forkserver.cache_clear()  # the preload is set again on the next crawl
    with contextlib.suppress(OSError):
        os.close(alive)


os.register_at_fork(after_in_child=_forget_inherited_forkserver)


class _Inherited:
    """An open file descriptor the forked child gets a copy of (sent to it by
    the forkserver's socket; a new process inherits nothing else)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _detach, (DupFd(self.fd),)


def _detach(duplicate: Any) -> int:
    fd: int = duplicate.detach()
    return fd


def _tail(output: Any) -> str:
    size = os.fstat(output.fileno()).st_size
    data = os.pread(output.fileno(), OUTPUT_TAIL * 4, max(0, size - OUTPUT_TAIL * 4))
    return data.decode("utf-8", "replace")[-OUTPUT_TAIL:]


def _die_with(parent: int) -> None:
    """In the child, before it runs the crawl: killed when its parent dies.

    A queue worker killed with ``kill -9`` has its crawl delivered again to
    another worker; its own crawl must not go on beside that one."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _die_with_forkserver(worker: int) -> None:
    """PR_SET_PDEATHSIG in a forked child: its parent is the forkserver, which
    exits when the worker that started it is gone (its end of a pipe closes)."""
    forkserver_pid = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != forkserver_pid:  # the forkserver ended before prctl took effect
        os._exit(1)
    try:
        os.kill(worker, 0)
    except ProcessLookupError:  # the worker is gone; its forkserver is about to follow
        os._exit(1)


def _crawl_main(
    argv: list[str], env: dict[str, str], workdir: str, output: int, worker: int | None
) -> None:
    """The forked child: a fresh process's surroundings, then the command. Never returns."""
    code = 1
    try:
        os.setsid()
        if worker is not None:
            _die_with_forkserver(worker)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        # Nothing else stays open, as in a new process (close_fds): above all
        # not the forkserver's "alive" pipe that multiprocessing hands every
        # child, which would keep the forkserver (and so, through
        # PR_SET_PDEATHSIG, this crawl) alive after its worker is gone.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        enter_command(argv, env, workdir)
        # multiprocessing may have run the parent's main script (``deportwatch``
        # itself) before this function: its project modules go, to be imported
        # afresh in this environment.
        for name in list(sys.modules):
            if name.split(".")[0] in OWN and name != __name__:
                del sys.modules[name]
        # What ``python -m deportwatch`` runs, imported afresh here (by name:
        # the command is the layer above this one).
        runpy.run_module("deportwatch", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        code = exit_status(exit_)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        finish(code)


def exit_status(exit_: SystemExit) -> int:
    """The status a new interpreter exits with on this SystemExit (a message
    goes to stderr and gives 1, as Python's own exit does)."""
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=sys.stderr)
    return 1


def enter_command(argv: list[str], env: Mapping[str, str], workdir: str | Path) -> None:
    """In a forked child whose descriptors 0, 1 and 2 are in place: the text
    streams, working directory, environment and argv a new ``deportwatch``
    process would have."""
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", line_buffering=True
    )
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["deportwatch", *argv]


def finish(code: int, *, exit_hooks: bool = True) -> None:
    """What a normal exit does: wait for the command's own threads, run its
    exit hooks (logging's among them; not where the hooks registered are a
    parent's), flush the streams; then exit at once."""
    try:
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(30)
        if exit_hooks:
            atexit._run_exitfuncs()  # what the interpreter runs at exit
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)
