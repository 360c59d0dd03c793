"""Dedup + store cost per article as the archive grows, and story-joining quality.

For each archive size N (default 10k, 100k, 1M) a fresh SQLite archive is
filled with N generated articles (texts, publication days spread over two
years, signatures, MinHash band rows and anchor keys included, written in
bulk), then 1,000 further articles go through the real normalize, dedup and
store stages one by one: 10% are near-duplicates of archived articles (5% of
words changed, a syndication trailer added), 5% reworded copies (a quarter of
the words changed: MinHash alone misses them), 5% translations (the same
names, numbers and date in other words, in another language), the rest new.
Each article names people drawn from a skewed pool (a few names in many
articles, as an ombudsman's is) and carries counts and a date. It prints
milliseconds per article (elapsed and CPU), the ratio to the smallest
archive, and precision and recall for copies (near-duplicates and rewrites
joining their story) and for language versions (linked to their story).

Usage: python -m bench.dedup_ingest [--sizes 10000 100000 1000000] [--keep DIR] [--rounds N]

With --keep, the filled archives stay in DIR (as filled: the probes go into a
copy) and a later run with the same DIR measures them again without filling. With
--rounds N every size is probed N times, the sizes in turn, and the medians
are compared: on a shared machine one probe's CPU time moves by 10% or more.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import Article, LshBand, StoryCluster
from db.repository.runs import ensure_source
from pipeline.dedup import DedupPipeline
from pipeline.items import ArticleItem, DateCandidate
from pipeline.normalize import NormalizePipeline
from pipeline.similarity import band_keys, signature
from pipeline.store import StorePipeline
from pipeline.stories import anchors, lead_terms, outlet_article, sentence_terms, story_keys
from pipeline.writer import ArchiveWriter

VOCABULARY = [f"w{i}" for i in range(20_000)]
OTHER_LANGUAGE = [f"v{i}" for i in range(20_000)]
WORDS_PER_ARTICLE = 180
PROBES = 1_000
TRAILER = "Read the original article on The New Voice of Ukraine. Support us with a donation."
NOW = datetime(2026, 11, 22, tzinfo=UTC)
DAYS = 730
MONTHS = "January February March April May June July August September October November December"
_SYLLABLES = [c + v for c in "bdgklmnprstvz" for v in "aeiou"]
NAMES = [
    "".join(random.Random(n).choices(_SYLLABLES, k=4)).capitalize()  # noqa: S311
    for n in range(5_000)
]


def published(i: int) -> datetime:
    return NOW - timedelta(days=i % DAYS, hours=i % 13)


def _facts(i: int) -> tuple[list[str], list[int], datetime]:
    """The names (a few of them in many articles), counts and day article i reports."""
    rng = random.Random(f"facts{i}")  # noqa: S311 -- reproducible test data
    names = [NAMES[min(int(rng.paretovariate(0.8)) - 1, len(NAMES) - 1)] for _ in range(3)]
    return names, [rng.randint(10, 5_000), rng.randint(10, 5_000)], published(i)


def lead_of(i: int) -> str:
    (a, b, c), (n1, n2), day = _facts(i)
    month = MONTHS.split()[day.month - 1]
    return (
        f"Reports say {a} and {b} confirmed {n1} cases on {month} {day.day}, "
        f"with {c} counting {n2}."
    )


def translated_lead_of(i: int) -> str:
    (a, b, c), (n1, n2), day = _facts(i)
    month = "січня лютого березня квітня травня червня липня серпня вересня жовтня листопада грудня"
    return (
        f"За даними {a} та {b}, {day.day} {month.split()[day.month - 1]} "
        f"підтверджено {n1:,} випадків; {c} налічує {n2:,}.".replace(",", " ")
    )


def text_of(i: int) -> str:
    rng = random.Random(i)  # noqa: S311 -- reproducible test data
    return lead_of(i) + " " + " ".join(rng.choices(VOCABULARY, k=WORDS_PER_ARTICLE))


def near_copy(i: int) -> str:
    return changed(i, len(text_of(i).split()) // 20) + " " + TRAILER


def changed(i: int, words_changed: int) -> str:
    rng = random.Random(-i)  # noqa: S311
    lead, body = lead_of(i), text_of(i)[len(lead_of(i)) + 1 :].split()
    for position in rng.sample(range(len(body)), k=words_changed):
        body[position] = rng.choice(VOCABULARY)
    return lead + " " + " ".join(body)


def reworded(i: int) -> str:
    return changed(i, WORDS_PER_ARTICLE // 4)


def translated(i: int) -> str:
    rng = random.Random(f"uk{i}")  # noqa: S311
    return translated_lead_of(i) + " " + " ".join(rng.choices(OTHER_LANGUAGE, k=WORDS_PER_ARTICLE))


def fill(url: str, size: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        source_id = ensure_source(session, "bench", "feed").id
    batch = 5_000
    for start in range(0, size, batch):
        ids = range(start + 1, min(start + batch, size) + 1)
        texts = {i: text_of(i) for i in ids}
        signatures = {i: signature(texts[i]) for i in ids}
        # The keys the dedup stage stores: bands, anchors, the lead's rare terms,
        # the long sentences and the address's article number.
        keys = {
            i: band_keys(signatures[i] or b"")
            + story_keys(
                anchors(texts[i]),
                published(i),
                lead_terms(f"t{i}\n{texts[i]}", "en"),
                outlet_article(f"https://x.test/{i}"),
                sentence_terms(texts[i]),
            )
            for i in ids
        }
        with sessions.begin() as session:
            session.execute(
                insert(StoryCluster),
                [{"id": i, "first_article_id": i, "first_seen_at": NOW} for i in ids],
            )
            session.execute(
                insert(Article),
                [
                    {
                        "id": i,
                        "source_id": source_id,
                        "url": f"https://x.test/{i}",
                        "canonical_url": f"https://x.test/{i}",
                        "title": f"t{i}",
                        "text": texts[i],
                        "language": "en",
                        "published_at": published(i),
                        "content_hash": hashlib.sha256(str(i).encode()).hexdigest(),
                        "first_seen_at": NOW,
                        "last_seen_at": NOW,
                        "cluster_id": i,
                        "minhash": signatures[i],
                    }
                    for i in ids
                ],
            )
            session.execute(
                insert(LshBand),
                [{"band_key": key, "article_id": i} for i in ids for key in set(keys[i])],
            )
    engine.dispose()


def _probe_item(n: int, size: int, rng: random.Random) -> tuple[ArticleItem, str, int | None]:
    """Probe n: its item, what it is (copy, version or new) and the original's id."""
    original: int | None = rng.randint(1, size)
    assert original is not None
    language, day = "en", published(original)
    if n % 20 in (0, 10):
        kind, body = "copy", near_copy(original)
    elif n % 20 == 5:
        kind, body = "copy", reworded(original)
    elif n % 20 == 15:
        kind, body, language = "version", translated(original), "uk"
    else:
        fresh = 10_000_000 + size + n
        kind, body, original, day = "new", text_of(fresh), None, published(fresh)
    link = f"https://y.test/{n}"
    item = ArticleItem(
        source="bench",
        url=link,
        final_url=link,
        title=f"p{n}",
        text=body,
        fetched_at=NOW,
        date_candidates=[DateCandidate("page-meta", day.isoformat())],
        source_languages=(language,),
    )
    return item, kind, original


def probe(url: str, size: int) -> tuple[float, float, dict[str, tuple[float, float]]]:
    """Ms per article through dedup + store (elapsed, and this process's CPU
    time, which other work on a shared machine disturbs far less), and
    precision and recall per kind."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    writer = ArchiveWriter(engine)  # batched commits, as in a crawl
    dedup, store, normalize = DedupPipeline(writer), StorePipeline(writer), NormalizePipeline()
    rng = random.Random(size)  # noqa: S311
    expected: dict[str, tuple[str, int | None]] = {}
    items = []
    for n in range(PROBES):
        item, kind, original = _probe_item(n, size, rng)
        expected[item.url] = (kind, original)
        items.append(item)
    started, cpu_started = time.perf_counter(), time.process_time()
    for raw in items:
        normalized = normalize.process_item(raw)
        assert isinstance(normalized, ArticleItem)
        # Generated words are no language: the probe says which it is.
        normalized.language = normalized.source_languages[0]
        store.process_item(dedup.process_item(normalized))
    writer.close()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    scores = score(sessions, expected)
    engine.dispose()
    return elapsed / PROBES * 1000, cpu / PROBES * 1000, scores


def _story(cluster: int | None, group: dict[int, int | None]) -> int | None:
    """A story across languages: its language group, else its cluster."""
    return (group.get(cluster) or cluster) if cluster is not None else None


def score(
    sessions: sessionmaker[Session], expected: dict[str, tuple[str, int | None]]
) -> dict[str, tuple[float, float]]:
    """Precision and recall of copies joining their story and of versions linking to it."""
    with sessions() as session:
        cluster: dict[str, int | None] = dict(
            session.execute(select(Article.url, Article.cluster_id)).all()
        )
        group: dict[int, int | None] = dict(
            session.execute(select(StoryCluster.id, StoryCluster.language_group_id)).all()
        )
        joined = {
            url: _story(cluster[url], group)
            for url, duplicate_of in session.execute(
                select(Article.url, Article.duplicate_of).where(
                    Article.url.like("https://y.test/%")
                )
            )
            if duplicate_of is not None
        }
    # Linked as a language version: a story of its own in a group (a copy that
    # joined a story already in a group is a copy, scored above).
    linked: dict[str, int | None] = {}
    for url in expected:
        own = cluster.get(url)
        if url not in joined and own is not None and group.get(own) is not None:
            linked[url] = group[own]

    def story(original: int) -> int | None:
        return _story(cluster[f"https://x.test/{original}"], group)

    def right(url: str, story_id: int | None) -> bool:
        original = expected[url][1]
        return original is not None and story_id == story(original)

    # Two probes may copy or translate the same original: the second then joins
    # the first (the same story), which is right whatever its kind.
    out = {}
    for kind, found in (("copy", joined), ("version", linked)):
        precision = sum(right(u, s) for u, s in found.items()) / len(found) if found else 1.0
        wanted = [u for u, (k, _) in expected.items() if k == kind]
        hits = sum(right(u, joined.get(u) or linked.get(u)) for u in wanted)
        out[kind] = (precision, hits / len(wanted) if wanted else 1.0)
    return out


def probe_copy(folder: Path, size: int) -> tuple[float, float, dict[str, tuple[float, float]]]:
    """Probe a copy of the filled archive: the archive stays as filled, so it can
    be probed again in a later round, or a later run, without an hour's fill at 1M."""
    probed = folder / f"probed-{size}.db"
    shutil.copyfile(folder / f"archive-{size}.db", probed)
    try:
        return probe(f"sqlite:///{probed}", size)
    finally:
        probed.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the filled archives in this folder, and reuse those already there",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="probe every size this many times, in turn, and compare the medians",
    )
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="deportwatch-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    fill_seconds = {}
    for size in args.sizes:
        started = time.perf_counter()
        filled = folder / f"archive-{size}.db"
        if not filled.exists():
            # Filled under another name first: a fill stopped half way is not
            # taken for a filled archive by the next run.
            filling = folder / f"filling-{size}.db"
            filling.unlink(missing_ok=True)
            fill(f"sqlite:///{filling}", size)
            filling.rename(filled)
        fill_seconds[size] = time.perf_counter() - started
    header = (
        f"{'archive':>10} {'fill s':>8} {'ms/article':>11} {'vs smallest':>12} "
        f"{'CPU ms':>7} {'vs smallest':>12} "
        f"{'copies P':>9} {'R':>6} {'versions P':>11} {'R':>6}"
    )
    # The sizes are probed in turn, round after round: a machine whose speed
    # drifts (a shared one does, by 10% and more) then slows every size alike.
    measured: dict[int, list[tuple[float, float]]] = {size: [] for size in args.sizes}
    scores: dict[int, dict[str, tuple[float, float]]] = {}
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}:" if args.rounds > 1 else header, flush=True)
        for size in args.sizes:
            ms, cpu_ms, scores[size] = probe_copy(folder, size)
            measured[size].append((ms, cpu_ms))
            if args.rounds > 1:
                print(f"{size:>10} {ms:>11.2f} ms {cpu_ms:>7.2f} ms CPU", flush=True)
    if args.rounds > 1:
        print(f"median of {args.rounds} rounds:\n{header}")
    baseline = cpu_baseline = None
    for size in args.sizes:
        ms = statistics.median(m for m, _ in measured[size])
        cpu_ms = statistics.median(c for _, c in measured[size])
        baseline, cpu_baseline = baseline or ms, cpu_baseline or cpu_ms
        (copy_p, copy_r), (version_p, version_r) = scores[size]["copy"], scores[size]["version"]
        print(
            f"{size:>10} {fill_seconds[size]:>8.0f} {ms:>11.2f} {ms / baseline:>11.2f}x "
            f"{cpu_ms:>7.2f} {cpu_ms / cpu_baseline:>11.2f}x "
            f"{copy_p:>9.3f} {copy_r:>6.3f} {version_p:>11.3f} {version_r:>6.3f}",
            flush=True,
        )
    if args.keep is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
