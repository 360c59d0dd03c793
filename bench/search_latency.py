"""Search latency over a large archive, against a LIKE '%term%' scan in the same run.

Fills a fresh archive (SQLite file, and PostgreSQL with --postgres URL) with
generated articles — 1.5–4 KB bodies of real uk / ru / en vocabulary taken
from the labeled texts, place names sprinkled at realistic rates, 5% flagged —
through the real migrations, so the FTS5 triggers / generated tsvector do the
indexing. Then times ``db.search.search`` (ranked top 50, one row per story,
snippets) over a fixed set of queries, unfiltered and filtered, and the same
questions asked with LIKE. On PostgreSQL it also times the search as it
ranked before migration 0012 (``ts_rank`` over every match's full vector) and
counts how many of that ranking's top 10 and top 50 the search shows. Finally exports
every article as JSON lines and reports the peak RSS of that process.

Usage: python -m bench.search_latency [--articles 1000000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib import import_module
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, text

from bench.postgres import fresh_schema, schema_url
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import Article, SourceRow, StoryCluster
from db.query import parse_query
from db.search import CANDIDATES, EXACT_UP_TO, Filters, article_date, search

SQLITE_STATEMENTS = import_module("db.migrations.versions.0007_search").SQLITE_STATEMENTS

ROOT = Path(__file__).parent.parent
LABELED = ROOT / "tests" / "fixtures" / "flagging"
PLACES = ["Skadovsk", "Скадовськ", "Kherson", "Херсон", "Mariupol", "Маріуполь", "Crimea", "Крим"]
QUERIES = [
    "Skadovsk",
    "Скадовськ*",
    "депорт*",
    '"health camp"',
    "children Crimea",
    "Kherson OR Херсон",
    "діти -Крим",
    "Mariupol deported",
    "Маріуполь",
    "returned children",
]
SINCE = datetime(2025, 6, 1, tzinfo=UTC)
FILTERED = {"flagged": True}
BATCH = 5000


def vocabulary() -> dict[str, list[str]]:
    """Per language, the words of the labeled texts (reports on deportations)."""
    words: dict[str, list[str]] = {}
    for path in sorted(LABELED.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            words.setdefault(case["lang"], []).extend(case["text"].split())
    return words


def background(lang: str, rng: random.Random, size: int = 40_000) -> list[str]:
    """Pseudo-words in the language's script: the everyday vocabulary of other news."""
    syllables = {
        "en": "ba be co de fa go ha in jo ka le mo ne or pa qu re so ta un ve wi".split(),
        "uk": "ба бе ві го ді же за ка ле ми но по ра сі ти ук фа хо ці чи ша ють ння".split(),
        "ru": "ба бе ви го ди же за ка ле ми но по ра си ти ук фа хо цы чи ша ют ние".split(),
    }[lang]
    return ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size)]


def articles(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """Articles of 1.5-4 KB; 5% are reports on deportations (and flagged), the rest
    everyday news, with words drawn by Zipf's law as in real text."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data
    topical = vocabulary()
    langs = sorted(topical)
    common = {lang: background(lang, rng) for lang in langs}
    zipf = list(itertools.accumulate(1 / rank for rank in range(1, 40_001)))
    start = datetime(2022, 3, 1, tzinfo=UTC)
    for i in range(count):
        lang = langs[i % len(langs)]
        size = rng.randint(250, 650)  # words
        body = rng.choices(common[lang], cum_weights=zipf, k=size)
        flagged = rng.random() < 0.05
        if flagged:  # a report: a third of its words from the labeled reports
            for at in rng.sample(range(size), size // 3):
                body[at] = rng.choice(topical[lang])
        for at in range(size):
            if rng.random() < 0.0002:
                body[at] = rng.choice(PLACES)
        yield {
            "id": i + 1,
            "title": " ".join(body[: rng.randint(6, 12)]),
            "text": " ".join(body),
            "language": lang,
            "published_at": start + timedelta(minutes=i * 2),
            "flagged": flagged,
        }


def _without_index(engine: Engine) -> None:
    """Bulk loading: the search index is built once at the end, not row by row."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for trigger in ("insert", "delete", "update"):
                conn.execute(text(f"DROP TRIGGER articles_fts_{trigger}"))
        else:
            conn.execute(text("DROP INDEX ix_articles_search"))


def _rebuild_index(engine: Engine) -> None:
    """The index as migration 0007 makes it, built over everything loaded."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for statement in SQLITE_STATEMENTS[1:]:  # triggers, then 'rebuild'
                conn.execute(text(statement))
        else:
            conn.execute(
                text("CREATE INDEX ix_articles_search ON articles USING gin (search_vector)")
            )


def fill(engine: Engine, count: int, seed: int) -> float:
    """Insert ``count`` articles (one story each); returns seconds taken."""
    started = time.perf_counter()
    _without_index(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        source_id = session.scalar(
            insert(SourceRow)
            .values(name="bench", kind="feed", enabled=True, created_at=SINCE)
            .returning(SourceRow.id)
        )
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(
                insert(StoryCluster),
                [{"id": a["id"], "first_seen_at": a["published_at"]} for a in batch],
            )
            conn.execute(
                insert(Article),
                [
                    a
                    | {
                        "source_id": source_id,
                        "url": f"https://bench.example/{a['id']}",
                        "canonical_url": f"https://bench.example/{a['id']}",
                        "content_hash": f"{a['id']:064x}",
                        "first_seen_at": a["published_at"],
                        "last_seen_at": a["published_at"],
                        "flag_categories": "deportation" if a["flagged"] else None,
                        "cluster_id": a["id"],
                    }
                    for a in batch
                ],
            )
        batch.clear()

    for number, article in enumerate(articles(count, seed), start=1):
        batch.append(article)
        if len(batch) == BATCH:
            flush()
        if number % 100_000 == 0:
            print(f"  {number:,} articles", file=sys.stderr, flush=True)
    if batch:
        flush()
    _rebuild_index(engine)
    return time.perf_counter() - started


def like_search(engine: Engine, query: str, flagged: bool) -> list[int]:
    """The baseline: every term as LIKE '%term%' on title or text, newest first."""
    parsed = parse_query(query)
    conditions = []
    for group in parsed.groups:
        alternatives = []
        for term in group:
            pattern = "%" + " ".join(term.words) + "%"
            alternatives.append(or_(Article.title.ilike(pattern), Article.text.ilike(pattern)))
        conditions.append(or_(*alternatives))
    for term in parsed.excluded:
        pattern = "%" + " ".join(term.words) + "%"
        conditions.append(~or_(Article.title.ilike(pattern), Article.text.ilike(pattern)))
    if flagged:
        conditions.append(Article.flagged.is_(True))
    stmt = select(Article.id).where(and_(*conditions)).order_by(article_date().desc()).limit(50)
    with engine.connect() as conn:
        return list(conn.scalars(stmt))


def agreement(shown: list[int], reference: list[int], top: int) -> tuple[int, int]:
    """How many of the reference's first ``top`` the search shows in its first ``top``."""
    return len(set(shown[:top]) & set(reference[:top])), min(top, len(reference))


def reports_at_10(hits: list[Any]) -> int:
    """Relevance where two rankings differ: how many of the first 10 are the
    generator's reports on deportations (its flagged articles)."""
    return sum(bool(h.article.flagged) for h in hits[:10])


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


def measure(engine: Engine, label: str, args: argparse.Namespace) -> dict[str, Any]:
    sessions = make_sessionmaker(engine)
    postgres = engine.dialect.name == "postgresql"
    results: dict[str, Any] = {"database": label}
    for name, extra in (("unfiltered", {}), ("flagged", FILTERED)):
        fts: list[float] = []
        like: list[float] = []
        full: list[float] = []
        top10, top50 = [0, 0], [0, 0]
        same_order, per_query = 0, []
        flagged = bool(extra)
        for query in QUERIES:
            filters = Filters(query=parse_query(query), **extra)  # type: ignore[arg-type]
            with sessions() as session:
                ours = partial(
                    search,
                    session,
                    filters,
                    limit=50,
                    candidates=args.candidates,
                    exact_up_to=args.exact_up_to,
                )
                hits = ours()  # warms
                shown = [h.article.id for h in hits]
                times = timed(ours, args.repeat)
                fts += times
            if not args.skip_like:
                like += timed(partial(like_search, engine, query, flagged), 1)
            if postgres:
                with sessions() as session:
                    every = partial(search, session, filters, limit=50, candidates=None)
                    reference_hits = every()  # warms
                    reference = [h.article.id for h in reference_hits]
                    full_times = timed(every, args.repeat)
                    full += full_times
                    relevant = (reports_at_10(hits), reports_at_10(reference_hits))
                for total, top in ((top10, 10), (top50, 50)):
                    found, wanted = agreement(shown, reference, top)
                    total[0] += found
                    total[1] += wanted
                same_order += bool(reference) and shown[:10] == reference[:10]
                medians = statistics.median(times), statistics.median(full_times)
                per_query.append(
                    (query, len(reference), agreement(shown, reference, 10), relevant, *medians)
                )
        results[name] = {
            "fts": summary(fts),
            "like": summary(like) if like else None,
            "full": summary(full) if full else None,
            "top10": top10,
            "top50": top50,
            "same_order": same_order,
            "per_query": per_query,
        }
    return results


def export_rss(url: str, workdir: Path) -> tuple[float, float]:
    """Peak RSS (MB) and seconds of ``deportwatch export --format jsonl`` of everything."""
    script = (
        "import resource, sys, time\n"
        "from deportwatch.cli.app import main\n"
        "sys.argv = ['deportwatch', 'export', '--format', 'jsonl', '-o', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)\n"
    )
    env = {"DEPORTWATCH_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 -- our own interpreter and script
        [sys.executable, "-c", script, str(workdir / "export.jsonl")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    return float(done.stderr.strip().splitlines()[-1]), seconds


def run(url: str, label: str, args: argparse.Namespace, workdir: Path) -> None:
    count, seed = args.articles, args.seed
    engine = make_engine(url)
    seconds = 0.0
    if not args.reuse:
        upgrade(engine)
        print(f"{label}: filling {count:,} articles …", file=sys.stderr, flush=True)
        seconds = fill(engine, count, seed)
        print(f"{label}: filled in {seconds:.0f} s", file=sys.stderr, flush=True)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            # Every table: the story lookups after the ranking need plans too.
            conn.execute(text("ANALYZE"))
    results = measure(engine, label, args)
    engine.dispose()
    filled = "reused" if args.reuse else f"filled in {seconds:.0f} s"
    print(f"\n{label}, {count:,} articles ({filled})")
    print("| queries | search median ms | p95 ms | LIKE median ms | p95 ms | speed-up (median) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in ("unfiltered", "flagged"):
        (fm, fp), like = results[name]["fts"], results[name]["like"]
        if like is None:
            print(f"| {name} | {fm:.1f} | {fp:.1f} | — | — | — |")
            continue
        (lm, lp) = like
        print(f"| {name} | {fm:.1f} | {fp:.1f} | {lm:.0f} | {lp:.0f} | {lm / fm:.0f}x |")
    for name in ("unfiltered", "flagged"):
        if results[name]["full"] is None:
            continue
        (rm, rp), top10, top50 = (results[name][k] for k in ("full", "top10", "top50"))
        print(
            f"{name}: ranking every match's full vector (before 0012): median {rm:.1f} ms, "
            f"p95 {rp:.1f} ms; the search shows {top10[0]}/{top10[1]} of its top 10s "
            f"and {top50[0]}/{top50[1]} of its top 50s, "
            f"{results[name]['same_order']} top 10s in the same order"
        )
        print("| query | top 10 shown | reports in top 10: ours / full | median ms: ours / full |")
        print("| --- | ---: | ---: | ---: |")
        for query, found, (shown, wanted), (ours, reference), mine, every in results[name][
            "per_query"
        ]:
            if found:
                print(
                    f"| `{query}` | {shown}/{wanted} | {ours} / {reference} "
                    f"| {mine:.1f} / {every:.1f} |"
                )
    if not args.skip_export:
        rss, export_seconds = export_rss(url, workdir)
        print(
            f"export of {count:,} articles as JSON lines: {export_seconds:.0f} s, "
            f"peak RSS {rss:.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each query")
    parser.add_argument("--postgres", help="also run on this PostgreSQL database (emptied)")
    parser.add_argument(
        "--skip-sqlite", action="store_true", help="measure PostgreSQL only (needs --postgres)"
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=CANDIDATES,
        help="PostgreSQL: matches ranked again on their full vector",
    )
    parser.add_argument(
        "--exact-up-to",
        type=int,
        default=EXACT_UP_TO,
        help="PostgreSQL: full vectors a question may read to rank its first rows exactly",
    )
    parser.add_argument("--skip-like", action="store_true", help="no LIKE baseline")
    parser.add_argument("--skip-export", action="store_true", help="no export of everything")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="PostgreSQL only: measure the archive a previous run filled (same --articles)",
    )
    args = parser.parse_args()
    if args.skip_sqlite and not args.postgres:
        parser.error("--skip-sqlite needs --postgres")
    if args.reuse and not args.skip_sqlite:
        parser.error("--reuse needs --skip-sqlite (the SQLite file is temporary)")
    with tempfile.TemporaryDirectory(prefix="deportwatch-bench-") as tmp:
        workdir = Path(tmp)
        if not args.skip_sqlite:
            run(f"sqlite:///{workdir / 'archive.db'}", "SQLite", args, workdir)
        if args.postgres:
            if args.reuse:
                url = schema_url(args.postgres, "bench_search")
            else:
                url = fresh_schema(args.postgres, "bench_search")
            run(url, "PostgreSQL", args, workdir)


if __name__ == "__main__":
    main()
