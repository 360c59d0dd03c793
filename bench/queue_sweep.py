"""One sweep of many small sources: the single-machine service against crawl workers.

N sources (``--sources``), each a feed of the synthetic site (``bench.synthetic_site``,
``/feeds/<per>/<k>.xml``) listing ``--pages`` articles, every answer ``--latency``
seconds late. Each configuration crawls every source once into a fresh archive:

- ``service``: ``deportwatch schedule --once`` (every source due; its default
  ``DEPORTWATCH_MAX_CONCURRENT_CRAWLS`` of 2 crawls at once);
- ``workers=W``: a redis-server of its own, W ``deportwatch worker
  --concurrency 1`` processes, and ``deportwatch crawl --all --queue``.

Reported per configuration: the sweep's wall time and its ratio to the service's,
CPU seconds per page (every process of the configuration: user + system time of
the commands, the workers and their crawl processes, measured as this process's
children), and the checks: every page stored once, every run row closed ``ok``.

Crawls start as the service starts them (``DEPORTWATCH_CRAWL_START``, forked by
default); ``--start command`` starts each as a new interpreter.

Usage: python -m bench.queue_sweep [--sources 300] [--pages 2] [--latency 0.2]
       [--workers 1,2,4] [--postgres URL] [--start fork|command]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from bench.postgres import fresh_schema
from bench.synthetic_site import SyntheticSite
from db.engine import make_engine, make_sessionmaker
from db.models import Article, CrawlRun

ROOT = Path(__file__).parent.parent
DEPORTWATCH = str(Path(sys.executable).parent / "deportwatch")
PR_SET_CHILD_SUBREAPER = 36  # prctl(2)


@dataclass
class Sweep:
    name: str
    wall: float
    cpu: float
    pages: int  # responses the crawls received (feeds and articles)
    articles: int
    distinct_urls: int
    runs: int
    runs_ok: int
    runs_open: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sources_file(directory: Path, base: str, count: int, per: int) -> Path:
    path = directory / "sources.toml"
    path.write_text(
        "".join(
            f'[[source]]\nname = "synthetic-{k}"\nkind = "feed"\n'
            f'start_urls = ["{base}/feeds/{per}/{k}.xml"]\nlanguages = ["en", "uk", "ru"]\n'
            f'lookback = "36500d"\n\n'
            for k in range(count)
        ),
        encoding="utf-8",
    )
    return path


def environment(workdir: Path, database_url: str, sources: Path) -> dict[str, str]:
    return os.environ | {
        "DEPORTWATCH_DATABASE_URL": database_url,
        "DEPORTWATCH_SOURCES": str(sources),
        "DEPORTWATCH_KEYWORDS": str(ROOT / "keywords.toml"),
        "DEPORTWATCH_LOG_DIR": str(workdir / "logs"),
        "DEPORTWATCH_SPOOL_DIR": str(workdir / "spool"),
        "DEPORTWATCH_WARC_DIR": str(workdir / "warc"),
        "DEPORTWATCH_DOWNLOAD_DELAY": "0",
        "DEPORTWATCH_OBEY_ROBOTS": "false",
        "DEPORTWATCH_SCHEDULE_JITTER": "0",
        "DEPORTWATCH_VERIFY_INTERVAL": "0",
    }


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen(  # noqa: S603 -- a fixed command
        [*command, "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def adopt_orphans() -> None:
    """Processes whose parent exits before them (a crawl's forkserver, see
    service/launch.py, outlives its service or worker by a moment) become this
    process's children, so that their CPU, and that of the crawls they reaped,
    is counted once this process waits for them."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap_orphans(timeout: float = 60) -> None:
    """Wait for every child left (this process started none that still runs)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("processes of the sweep still run")
            time.sleep(0.05)


def measure(name: str, database_url: str, run: Iterator[None]) -> Sweep:
    """Runs ``run`` (a generator: set-up, then the sweep at its one yield, then
    clean-up) and reads the archive it left."""
    cpu_before = children_cpu()
    next(run)  # set up: the workers start (their start-up CPU is counted)
    started = time.perf_counter()
    next(run, None)  # the sweep, then the workers stop and are reaped
    wall = time.perf_counter() - started
    reap_orphans()
    cpu = children_cpu() - cpu_before
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        pages = session.scalar(select(func.sum(CrawlRun.pages))) or 0
        articles = session.scalar(select(func.count(Article.id))) or 0
        distinct = session.scalar(select(func.count(func.distinct(Article.canonical_url)))) or 0
        outcomes = list(session.scalars(select(CrawlRun.outcome)))
    engine.dispose()
    return Sweep(
        name,
        wall,
        cpu,
        int(pages),
        int(articles),
        int(distinct),
        len(outcomes),
        outcomes.count("ok"),
        outcomes.count("running"),
    )


def service_sweep(env: dict[str, str], workdir: Path) -> Iterator[None]:
    yield
    subprocess.run(  # noqa: S603
        [DEPORTWATCH, "schedule", "--once"], env=env, cwd=workdir, check=True, capture_output=True
    )


def queue_sweep(env: dict[str, str], workdir: Path, workers: int) -> Iterator[None]:
    with redis_server(workdir) as broker:
        env = env | {"DEPORTWATCH_BROKER_URL": broker}
        subprocess.run([DEPORTWATCH, "init"], env=env, cwd=workdir, check=True, capture_output=True)  # noqa: S603
        logs = [(workdir / f"worker-{w}.log").open("w") for w in range(workers)]
        processes = [
            subprocess.Popen(  # noqa: S603
                [DEPORTWATCH, "worker", "--concurrency", "1", "--name", f"w{w}@bench"],
                env=env,
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for w, log in enumerate(logs)
        ]
        deadline = time.monotonic() + 120
        while not all(
            "ready." in (workdir / f"worker-{w}.log").read_text() for w in range(workers)
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start")
            time.sleep(0.2)
        yield
        subprocess.run(  # noqa: S603
            [DEPORTWATCH, "crawl", "--all", "--queue"],
            env=env | {"COLUMNS": "200"},
            cwd=workdir,
            check=True,
            capture_output=True,
        )
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=120)
        for log in logs:
            log.close()


def database(kind: str, workdir: Path, name: str) -> str:
    if kind.startswith("postgresql"):
        return fresh_schema(kind, f"bench_queue_{name}")
    return f"sqlite:///{workdir / 'archive.db'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=300)
    parser.add_argument("--pages", type=int, default=2, help="articles per source")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--postgres", help="PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("--start", choices=("fork", "command"), default="fork")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is needed (apt-get install redis-server)")
    adopt_orphans()
    site = SyntheticSite(args.sources * args.pages)
    site.latency = args.latency
    sweeps: list[Sweep] = []
    with site.serve() as base, tempfile.TemporaryDirectory(prefix="queue-sweep-") as tmp:
        configurations: list[tuple[str, int]] = [("service", 0)]
        configurations += [(f"workers={w}", int(w)) for w in args.workers.split(",")]
        for name, workers in configurations:
            workdir = Path(tmp) / name.replace("=", "-")
            workdir.mkdir()
            url = database(args.postgres or "sqlite", workdir, name.replace("=", ""))
            env = environment(workdir, url, sources_file(workdir, base, args.sources, args.pages))
            env["DEPORTWATCH_CRAWL_START"] = args.start
            run = service_sweep(env, workdir) if not workers else queue_sweep(env, workdir, workers)
            sweeps.append(measure(name, url, run))
            print_sweep(sweeps[-1], sweeps[0], args.sources * args.pages)


def print_sweep(sweep: Sweep, service: Sweep, articles: int) -> None:
    ratio = service.wall / sweep.wall if sweep.wall else 0.0
    stored_once = sweep.articles == sweep.distinct_urls == articles
    closed = sweep.runs_open == 0 and sweep.runs_ok == sweep.runs
    print(
        f"{sweep.name:>10}: sweep {sweep.wall:7.1f} s (service/this {ratio:4.2f}x) · "
        f"CPU {sweep.cpu:7.1f} s, {1000 * sweep.cpu / max(sweep.pages, 1):6.1f} ms/page "
        f"({sweep.pages} pages) · articles {sweep.articles} of {articles}, "
        f"each once: {'yes' if stored_once else 'NO'} · runs {sweep.runs}, "
        f"all closed ok: {'yes' if closed else 'NO'}",
        flush=True,
    )


if __name__ == "__main__":
    main()
