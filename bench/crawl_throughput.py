"""End-to-end crawl cost against the cost of extraction alone, in the same run.

1. Baseline: every page of a synthetic site (``bench.synthetic_site``) parsed
   and extracted by trafilatura alone, in a plain loop: the irreducible CPU
   cost of turning a page into text.
2. The real ``deportwatch crawl`` of that site, served on loopback, into a fresh
   SQLite archive (and PostgreSQL with ``--postgres``): pages per second, CPU
   seconds per page (the crawl process's own user + system time, start-up
   included) and peak RSS, and the ratio of CPU per page to the baseline.
3. Re-crawl of the unchanged site after the feed is rebuilt: the share of
   requests answered 304 or skipped, and the time against the first crawl.
4. With ``--memory-pages N``: a crawl of N pages, its peak RSS and its RSS
   after the first and the last 5,000 pages; the pages found once through one
   feed that lists them all and once through a sitemap index (``--memory-via``).
5. With ``--reflag N``: ``reflag`` over an archive of N generated articles,
   articles per second, against the matcher alone on the same texts.

With ``--latency S`` the site waits S seconds before every answer, as a distant
server does: pages per second fall, CPU per page should not.

With ``--profile FILE`` the first crawl runs under py-spy (a dev dependency),
which writes its samples to FILE as collapsed stacks (one line per stack,
readable by flamegraph tools); the figures of that run include py-spy's cost.

Usage: python -m bench.crawl_throughput [--pages 5000] [--postgres URL]
       [--memory-pages 20000] [--reflag 100000] [--profile FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trafilatura
from sqlalchemy import desc, select

from bench.postgres import fresh_schema
from bench.search_latency import fill
from bench.synthetic_site import SyntheticSite
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import Article, CrawlRun
from deportwatch.archive.reflag import reflag
from deportwatch.config.keywords import load_taxonomy
from pipeline.matcher import Matcher

ROOT = Path(__file__).parent.parent
DEPORTWATCH = str(Path(sys.executable).parent / "deportwatch")
PY_SPY = str(Path(sys.executable).parent / "py-spy")
WINDOW = 5000  # pages: memory is compared after the first and the last window


def baseline_cpu(site: SyntheticSite) -> float:
    """CPU seconds per page for trafilatura alone (parse + extract), as the crawl calls it."""
    started = time.process_time()
    for i in range(site.count):
        trafilatura.extract(
            site.page(i).decode(),
            url=site.base + site.path(i),
            favor_precision=True,
            include_comments=False,
            include_tables=True,
            include_images=False,
            deduplicate=False,
        )
    return (time.process_time() - started) / site.count


def sources_file(directory: Path, base: str, pages: int, via: str = "feed") -> Path:
    """The synthetic site as one source, its pages found through the feed or
    through the sitemap index."""
    path = directory / "sources.toml"
    start = {"feed": "feed.xml", "sitemap": "sitemap.xml"}[via]
    path.write_text(
        f"""
[[source]]
name = "synthetic"
kind = "{via}"
start_urls = ["{base}/{start}"]
languages = ["en", "uk", "ru"]
max_items = {pages}
lookback = "36500d"
""",
        encoding="utf-8",
    )
    return path


@dataclass
class Crawl:
    wall: float
    cpu: float
    peak_rss_mb: float
    rss_at: dict[int, float] = field(default_factory=dict)  # article pages served -> MB
    run: dict[str, int] = field(default_factory=dict)


def _rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), None)
    return int(line.split()[1]) / 1024 if line else None


def crawl(
    site: SyntheticSite,
    database_url: str,
    workdir: Path,
    *,
    profile: Path | None = None,
    extra_env: dict[str, str] | None = None,
    via: str = "feed",
) -> Crawl:
    """One ``deportwatch crawl synthetic`` in its own process, measured from outside."""
    env = (
        os.environ
        | {
            "DEPORTWATCH_DATABASE_URL": database_url,
            "DEPORTWATCH_SOURCES": str(sources_file(workdir, site.base, site.count, via)),
            "DEPORTWATCH_KEYWORDS": str(ROOT / "keywords.toml"),
            "DEPORTWATCH_LOG_DIR": str(workdir / "logs"),
            "DEPORTWATCH_DOWNLOAD_DELAY": "0",
            "DEPORTWATCH_OBEY_ROBOTS": "false",
            "DEPORTWATCH_CONCURRENT_REQUESTS_PER_DOMAIN": "2",
        }
        | (extra_env or {})
    )
    served_before = site.article_requests
    samples: dict[int, float] = {}
    started = time.perf_counter()
    command = [DEPORTWATCH, "crawl", "synthetic"]
    if profile is not None:
        command = [PY_SPY, "record", "--format", "raw", "--rate", "200", "-o", str(profile), "--"]
        command += [DEPORTWATCH, "crawl", "synthetic"]
    process = subprocess.Popen(  # noqa: S603 -- our own command, fixed arguments
        command,
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            rss = _rss_mb(process.pid)
            if rss is not None:
                samples[site.article_requests - served_before] = rss

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"crawl failed ({process.returncode}):\n{stderr[-2000:]}")
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        run = session.scalars(select(CrawlRun).order_by(desc(CrawlRun.id)).limit(1)).one()
        counts = {
            "pages": run.pages,
            "new": run.articles_new,
            "updated": run.articles_updated,
            "unchanged": run.articles_unchanged,
            "duplicate": run.articles_duplicate,
            "flagged": run.articles_flagged,
            "errors": run.errors,
        }
    engine.dispose()
    return Crawl(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, samples, counts)


def rss_after(samples: dict[int, float], pages: int) -> float:
    """The RSS sampled when ``pages`` article pages had been served."""
    at = min(samples, key=lambda served: abs(served - pages))
    return samples[at]


def report_crawl(name: str, result: Crawl, pages: int, base_cpu: float) -> None:
    per_page = result.cpu / pages
    print(
        f"| {name} | {pages / result.wall:.1f} | {per_page * 1000:.1f} | "
        f"{per_page / base_cpu:.2f}x | {result.peak_rss_mb:.0f} | "
        f"{result.run['new']} new, {result.run['duplicate']} duplicate, "
        f"{result.run['flagged']} flagged, {result.run['errors']} errors |",
        flush=True,
    )


def recrawl(
    site: SyntheticSite, database_url: str, workdir: Path, first: Crawl, *, every_page: bool
) -> None:
    """The unchanged site again, its feed rebuilt (so it answers 200, not 304).

    As deportwatch runs it, entries checked minutes ago are not asked again
    (re-checks are spaced out); with ``every_page`` (DEPORTWATCH_RECHECK_MINUTES=0)
    every page is asked again and answers 304: the cost of a crawl's request
    cycle alone.
    """
    site.touch_feed()
    site.reset_counts()
    extra = {"DEPORTWATCH_RECHECK_MINUTES": "0"} if every_page else {}
    again = crawl(site, database_url, workdir, extra_env=extra)
    total = sum(site.statuses.values())
    not_modified = site.statuses[304]
    # "unchanged" counts both the pages that answered 304 and those not asked for.
    skipped = max(again.run["unchanged"] - not_modified, 0)
    share = (not_modified + skipped) / (total + skipped)
    label = "re-crawl, every page asked again" if every_page else "re-crawl"
    print(
        f"{label}: {total} requests, {not_modified} answered 304, {skipped} skipped "
        f"unfetched; {share:.1%} answered 304 or skipped; {again.wall:.1f} s, "
        f"{again.wall / first.wall:.1%} of the first crawl's time, "
        f"{again.cpu:.1f} CPU s ({again.run['new']} new, {again.run['updated']} updated)",
        flush=True,
    )


def reflag_rate(count: int, workdir: Path, seed: int) -> None:
    engine = make_engine(f"sqlite:///{workdir / 'reflag.db'}")
    upgrade(engine)
    print(f"filling {count:,} articles for reflag …", file=sys.stderr, flush=True)
    fill(engine, count, seed)
    matcher = Matcher(load_taxonomy(ROOT / "keywords.toml"))
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        rows = session.execute(
            select(Article.title, Article.text, Article.language).limit(20_000)
        ).all()
    started = time.process_time()
    for title, body, lang in rows:
        matcher.flag(title, body, lang)
    alone = len(rows) / (time.process_time() - started)
    timer: Callable[[], float] = time.perf_counter
    started = timer()
    counts = reflag(sessions, matcher)
    rate = counts.examined / (timer() - started)
    print(
        f"reflag of {counts.examined:,} articles: {rate:,.0f} articles/s; the matcher alone on "
        f"20,000 of them: {alone:,.0f} articles/s; reflag costs {alone / rate:.2f}x the matcher "
        f"({counts.became_flagged:,} became flagged, {counts.still_flagged:,} still flagged)",
        flush=True,
    )
    engine.dispose()


def capture_cost(site: SyntheticSite, workdir: Path, rounds: int) -> None:
    """The crawl's CPU and disk with evidence capture off and on: fresh archives,
    the two alternating so that a busy machine weighs on both alike; the least
    CPU of each is kept (the one least disturbed by other processes)."""
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    warc_bytes = db_bytes = 0
    for round_ in range(rounds):
        for mode in ("off", "on"):
            run_dir = workdir / f"capture-{mode}-{round_}"
            run_dir.mkdir()
            database = run_dir / "archive.db"
            extra = {
                "DEPORTWATCH_CAPTURE": "true" if mode == "on" else "false",
                "DEPORTWATCH_WARC_DIR": str(run_dir / "warc"),
            }
            result = crawl(site, f"sqlite:///{database}", run_dir, extra_env=extra)
            cpu[mode].append(result.cpu)
            if mode == "on":
                warc_bytes = sum(f.stat().st_size for f in (run_dir / "warc").glob("*.warc.gz"))
                db_bytes = database.stat().st_size
    off, on = min(cpu["off"]), min(cpu["on"])
    pages = site.count
    each = {mode: ", ".join(f"{c:.1f}" for c in values) for mode, values in cpu.items()}
    print(
        f"capture: CPU {off / pages * 1000:.2f} ms/page off, {on / pages * 1000:.2f} ms/page on "
        f"(+{(on / off - 1) * 100:.1f}%; least of {rounds} crawls each, all: "
        f"off {each['off']} s, on {each['on']} s); "
        f"WARC {warc_bytes / pages * 1000 / 1e6:.2f} MB per 1,000 pages "
        f"(the archive database: {db_bytes / pages * 1000 / 1e6:.2f} MB per 1,000 pages)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds the site waits before every answer (a distant server)",
    )
    parser.add_argument("--postgres", help="also crawl into this PostgreSQL database (a schema)")
    parser.add_argument("--memory-pages", type=int, default=0, help="pages of the memory run")
    parser.add_argument(
        "--memory-via",
        nargs="+",
        choices=("feed", "sitemap"),
        default=["feed", "sitemap"],
        help="how the memory run finds its pages: one feed listing all, a sitemap index",
    )
    parser.add_argument("--reflag", type=int, default=0, help="articles of the reflag run")
    parser.add_argument(
        "--profile", type=Path, help="record the first crawl with py-spy into this file"
    )
    parser.add_argument(
        "--capture-cost",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only compare crawls with evidence capture off and on, ROUNDS times each",
    )
    args = parser.parse_args()
    if args.capture_cost:
        with tempfile.TemporaryDirectory(prefix="deportwatch-capture-bench-") as tmp:
            site = SyntheticSite(args.pages, args.seed)
            with site.serve():
                site.latency = args.latency
                capture_cost(site, Path(tmp), args.capture_cost)
        return
    with tempfile.TemporaryDirectory(prefix="deportwatch-crawl-bench-") as tmp:
        workdir = Path(tmp)
        site = SyntheticSite(args.pages, args.seed)
        with site.serve():
            site.latency = args.latency
            base_cpu = baseline_cpu(site)
            print(
                f"synthetic site: {args.pages:,} pages, served at {site.base}"
                f" with {args.latency * 1000:.0f} ms latency"
            )
            print("| run | pages/s | CPU ms/page | vs. extraction alone | peak RSS MB | stored |")
            print("| --- | ---: | ---: | ---: | ---: | --- |")
            print(f"| trafilatura alone (baseline) | — | {base_cpu * 1000:.1f} | 1.00x | — | — |")
            sqlite_url = f"sqlite:///{workdir / 'archive.db'}"
            first = crawl(site, sqlite_url, workdir, profile=args.profile)
            report_crawl("deportwatch crawl, SQLite", first, args.pages, base_cpu)
            if args.postgres:
                pg = crawl(site, fresh_schema(args.postgres, "bench_crawl"), workdir)
                report_crawl("deportwatch crawl, PostgreSQL", pg, args.pages, base_cpu)
            recrawl(site, sqlite_url, workdir, first, every_page=False)
            recrawl(site, sqlite_url, workdir, first, every_page=True)
        if args.memory_pages:
            big = SyntheticSite(args.memory_pages, args.seed + 1)
            for via in args.memory_via:
                with big.serve():
                    # One feed that lists every page: at 20,000 entries it is larger
                    # than the 10 MB a response may have by default.
                    bigger = {"DEPORTWATCH_MAX_RESPONSE_BYTES": str(64 * 1024 * 1024)}
                    database = f"sqlite:///{workdir / f'memory-{via}.db'}"
                    result = crawl(big, database, workdir, extra_env=bigger, via=via)
                early = rss_after(result.rss_at, WINDOW)
                late = rss_after(result.rss_at, args.memory_pages)
                print(
                    f"memory: crawl of {args.memory_pages:,} pages found through the {via}, "
                    f"peak RSS {result.peak_rss_mb:.0f} MB; RSS after {WINDOW:,} pages "
                    f"{early:.0f} MB, after {args.memory_pages:,} pages {late:.0f} MB "
                    f"({late / early:.2f}x); {result.cpu / args.memory_pages * 1000:.1f} "
                    f"CPU ms/page; {result.run['new']} new, "
                    f"{result.run['duplicate']} duplicate",
                    flush=True,
                )
        if args.reflag:
            reflag_rate(args.reflag, workdir, args.seed)


if __name__ == "__main__":
    main()
