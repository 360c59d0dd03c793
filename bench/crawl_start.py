"""What starting a crawl's process costs: forked from the pre-warmed forkserver
against a new interpreter (``python -m deportwatch``), in the same run.

One small source answered from the snapshot fixtures (``--replay``, no network),
crawled ``--crawls`` times in each way, the two ways taking turns, into one
SQLite archive that a first, uncounted crawl has filled (so every counted crawl
does the same work: its pages are unchanged). Both ways start the same command
through ``service.launch.start``, as ChildCrawl does.

CPU per crawl is the crawl process's user + system time: for a new interpreter,
this process's reaped children; for a forked child, the children the forkserver
reaped (its ``cutime + cstime`` in /proc). The forkserver's own start (its
imports, once per service or worker process) is reported apart.

Usage: python -m bench.crawl_start [--crawls 10] [--source nv-en]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from service.launch import StartMode, start

ROOT = Path(__file__).parent.parent
REPLAY = ROOT / "tests" / "fixtures" / "web"
TICKS = os.sysconf("SC_CLK_TCK")


def environment(workdir: Path) -> dict[str, str]:
    return dict(os.environ) | {
        "DEPORTWATCH_DATABASE_URL": f"sqlite:///{workdir / 'archive.db'}",
        "DEPORTWATCH_SOURCES": str(ROOT / "sources.toml"),
        "DEPORTWATCH_KEYWORDS": str(ROOT / "keywords.toml"),
        "DEPORTWATCH_LOG_DIR": str(workdir / "logs"),
        "DEPORTWATCH_SPOOL_DIR": str(workdir / "spool"),
        "DEPORTWATCH_WARC_DIR": str(workdir / "warc"),
        "DEPORTWATCH_DOWNLOAD_DELAY": "0",
    }


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def forkserver_pid() -> int | None:
    """This process's forkserver (a child whose command line says so)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"forkserver" in command:
            return int(entry.name)
    return None


def forkserver_cpu(pid: int) -> tuple[float, float]:
    """The forkserver's own CPU seconds, and those of the children it reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14-17 of proc(5), counted from the state (field 3) here.
    utime, stime, cutime, cstime = (int(f) / TICKS for f in fields[11:15])
    return utime + stime, cutime + cstime


def crawl(mode: StartMode, source: str, env: dict[str, str], workdir: Path) -> tuple[float, float]:
    """One crawl: its wall time and CPU seconds."""
    fork = forkserver_pid() if mode == "fork" else None
    before = forkserver_cpu(fork)[1] if fork else children_cpu()
    started = time.monotonic()
    child = start(
        mode, ["crawl", source, "--replay", str(REPLAY)], env, workdir, die_with_parent=False
    )
    try:
        code = child.wait(300)
        if code != 0:
            raise SystemExit(f"{mode}: the crawl exited with {code}: {child.output()}")
    finally:
        child.close()
    wall = time.monotonic() - started
    if mode == "fork":
        fork = fork or forkserver_pid()
        assert fork is not None, "no forkserver"
        return wall, forkserver_cpu(fork)[1] - before
    return wall, children_cpu() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crawls", type=int, default=10, help="counted crawls of each way")
    parser.add_argument("--source", default="nv-en", help="a source of sources.toml")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="crawl-start-") as tmp:
        workdir = Path(tmp)
        env = environment(workdir)
        subprocess.run(
            [sys.executable, "-m", "deportwatch", "init"], env=env, check=True, capture_output=True
        )
        crawl("command", args.source, env, workdir)  # fills the archive: not counted
        started = time.monotonic()
        crawl("fork", args.source, env, workdir)  # starts the forkserver: its first child apart
        first_fork_wall = time.monotonic() - started
        fork = forkserver_pid()
        assert fork is not None
        preload_cpu = forkserver_cpu(fork)[0]
        figures: dict[str, list[tuple[float, float]]] = {"command": [], "fork": []}
        for _ in range(args.crawls):
            for mode in ("command", "fork"):
                figures[mode].append(crawl(mode, args.source, env, workdir))
    print(
        f"source {args.source} replayed from {REPLAY.relative_to(ROOT)}, {args.crawls} crawls each"
    )
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for mode, runs in figures.items():
        cpu = statistics.median(c for _, c in runs)
        wall = statistics.median(w for w, _ in runs)
        print(f"{mode:8s} CPU per crawl median {cpu:.2f} s, wall median {wall:.2f} s")
    ratio = statistics.median(c for _, c in figures["fork"]) / statistics.median(
        c for _, c in figures["command"]
    )
    print(f"fork / command CPU per crawl: {ratio:.2f}")
    print(
        f"forkserver start (once per process): {preload_cpu:.2f} s CPU; "
        f"its first crawl took {first_fork_wall:.2f} s wall"
    )


if __name__ == "__main__":
    main()
