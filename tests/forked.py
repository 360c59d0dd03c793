"""The ``deportwatch`` command run in a forked child of the test process.

A new interpreter spends a second or more importing Scrapy, SQLAlchemy, Rich
and the rest before the command starts; the suite runs the command a few
hundred times. A fork of the test worker already holds those libraries, so the
child starts at once. Everything else is as in a new process: the project's own
modules are imported afresh (their module-level state, consoles and caches are
new), the environment, working directory, argv, standard streams, logging,
warning filters and signal handlers are those a fresh ``deportwatch`` process
has, and the parent reads the exit code, stdout and stderr as from
``subprocess.run``. A command a test signals, kills or waits for in the
background (the crash test's crawls, the queue tests' workers and
schedulers) is a ``Forked``, as SIGKILL-able as any process. ``serve`` and
the service test's ``schedule`` still start the real executable, as does
every command when DEPORTWATCH_TEST_EXEC=1 is set.

Before its first fork a test process imports what the service's forkserver
preloads (``service.launch.PRELOAD``: Scrapy's downloader, datasketch with
scipy and numpy, tldextract, ...), so that each child starts as a crawl child
of the service does. Without it every forked crawl imported them again: about
2.7 s of a two-page crawl's 3.3 s of CPU, datasketch alone 1 s.
"""

from __future__ import annotations

import importlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from service.launch import OWN, PRELOAD, enter_command, exit_status, finish

# The warning filters of a fresh interpreter (pytest's "error" filter must not
# turn a library's warning into a failed command).
DEFAULT_FILTERS = (
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, None),
    ("ignore", PendingDeprecationWarning, None),
    ("ignore", ImportWarning, None),
    ("ignore", ResourceWarning, None),
)


def run_forked(
    args: list[str],
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    before: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``deportwatch ARGS`` with ``env`` in ``cwd``: its exit code and output.
    ``before`` runs in the child first (tests/confine.py: fewer privileges)."""
    _preload()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(out_read)
        os.close(err_read)
        _child(args, env, cwd, out_write, err_write, before=before)
    os.close(out_write)
    os.close(err_write)
    chunks: dict[int, list[bytes]] = {out_read: [], err_read: []}

    def drain(fd: int) -> None:
        while block := os.read(fd, 65536):
            chunks[fd].append(block)
        os.close(fd)

    readers = [threading.Thread(target=drain, args=(fd,), daemon=True) for fd in chunks]
    for reader in readers:
        reader.start()
    finished = threading.Event()
    status: list[int] = []

    def wait() -> None:
        status.append(os.waitpid(pid, 0)[1])
        finished.set()

    threading.Thread(target=wait, daemon=True).start()
    if not finished.wait(timeout):
        os.kill(pid, signal.SIGKILL)
        finished.wait()
        raise subprocess.TimeoutExpired(["deportwatch", *args], timeout)
    for reader in readers:
        reader.join()
    return subprocess.CompletedProcess(
        ["deportwatch", *args],
        os.waitstatus_to_exitcode(status[0]),
        b"".join(chunks[out_read]).decode("utf-8", "replace"),
        b"".join(chunks[err_read]).decode("utf-8", "replace"),
    )


class Forked:
    """A command started in a forked child, which a test signals, kills and
    waits for: ``pid``, ``poll``, ``send_signal``, ``kill`` and ``wait`` as
    ``subprocess.Popen`` has them. Its output goes to ``output`` (stdout and
    stderr, appended) or is discarded; ``session`` gives it a session and
    process group of its own, as ``start_new_session`` does."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        cwd: Path,
        *,
        output: Path | None = None,
        session: bool = False,
    ) -> None:
        self.args = ["deportwatch", *args]
        self.returncode: int | None = None
        _preload()
        # Opened here, so the file exists (empty) as soon as this returns.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        out = os.open(output or os.devnull, flags, 0o644)
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            if session:
                os.setsid()
            _child(args, env, cwd, out, os.dup(out))
        os.close(out)
        # Readable once the child has ended: wait(timeout) waits on it, not in a sleep loop.
        self._ended = os.pidfd_open(self.pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                os.close(self._ended)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        if self.poll() is None:
            ended, _, _ = select.select([self._ended], [], [], timeout)
            if not ended:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            os.close(self._ended)
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode


@cache
def _preload() -> None:
    """Import, once per test process, what the forkserver holds for every crawl."""
    for name in PRELOAD:
        importlib.import_module(name)


def _child(
    args: list[str],
    env: Mapping[str, str],
    cwd: Path,
    out: int,
    err: int,
    *,
    before: Callable[[], None] | None = None,
) -> None:
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in (devnull, out, err):
            os.close(fd)
        if before is not None:  # its error goes to the command's stderr
            before()
        enter_command(args, env, cwd)
        _fresh_process_state()
        from deportwatch.cli.app import main  # noqa: PLC0415 -- imported afresh, after the purge

        main()
        code = 0
    except SystemExit as exit_:
        code = exit_status(exit_)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        # The test process's exit hooks are not the command's.
        finish(code, exit_hooks=False)


def _fresh_process_state() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in OWN:
            del sys.modules[name]
    root = logging.getLogger()
    for logger in [root, *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            logger.handlers.clear()
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
            logger.disabled = False
    root.setLevel(logging.WARNING)
    logging.disable(logging.NOTSET)
    warnings.resetwarnings()
    for action, category, module in reversed(DEFAULT_FILTERS):
        if module is None:
            warnings.simplefilter(action, category)
        else:
            warnings.filterwarnings(action, category=category, module=module)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_DFL)
