"""Dedup + store cost per article as the archive grows, and near-duplicate quality.

For each archive size N (default 10k, 100k, 1M) a fresh SQLite archive is
filled with N generated articles (signatures and LSH band rows included,
written in bulk), then 1,000 further articles go through the real dedup and
store stages one by one: 10% are near-duplicates of archived articles
(5% of words changed, a syndication trailer added), the rest are new. It
prints milliseconds per article, the ratio to the smallest archive, and the
precision and recall of near-duplicate detection on those 1,000.

Usage: python -m bench.dedup_ingest [--sizes 10000 100000 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import Article, LshBand, StoryCluster
from db.repository.runs import ensure_source
from pipeline.dedup import DedupPipeline
from pipeline.items import ArticleItem
from pipeline.normalize import NormalizePipeline
from pipeline.similarity import band_keys, signature
from pipeline.store import StorePipeline
from pipeline.writer import ArchiveWriter

VOCABULARY = [f"w{i}" for i in range(20_000)]
WORDS_PER_ARTICLE = 180
PROBES = 1_000
TRAILER = "Read the original article on The New Voice of Ukraine. Support us with a donation."
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def text_of(i: int) -> str:
    rng = random.Random(i)  # noqa: S311 -- reproducible test data
    return " ".join(rng.choices(VOCABULARY, k=WORDS_PER_ARTICLE))


def near_copy(i: int) -> str:
    rng = random.Random(-i)  # noqa: S311
    words = text_of(i).split()
    for position in rng.sample(range(len(words)), k=len(words) // 20):
        words[position] = rng.choice(VOCABULARY)
    return " ".join(words) + " " + TRAILER


def fill(url: str, size: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        source_id = ensure_source(session, "bench", "feed").id
    batch = 5_000
    for start in range(0, size, batch):
        ids = range(start + 1, min(start + batch, size) + 1)
        signatures = {i: signature(text_of(i)) for i in ids}
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
                        "text": "",
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
                [
                    {"band_key": key, "article_id": i}
                    for i in ids
                    for key in set(band_keys(signatures[i] or b""))
                ],
            )
    engine.dispose()


def probe(url: str, size: int) -> tuple[float, float, float]:
    """Ms per article through dedup + store, and near-duplicate precision and recall."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    writer = ArchiveWriter(engine)  # batched commits, as in a crawl
    dedup, store, normalize = DedupPipeline(writer), StorePipeline(writer), NormalizePipeline()
    rng = random.Random(size)  # noqa: S311
    expected: dict[str, int | None] = {}
    items = []
    for n in range(PROBES):
        if n % 10 == 0:
            original = rng.randint(1, size)
            body = near_copy(original)
        else:
            original, body = None, text_of(10_000_000 + size + n)
        link = f"https://y.test/{n}"
        expected[link] = original
        items.append(
            ArticleItem(
                source="bench", url=link, final_url=link, title=f"p{n}", text=body, fetched_at=NOW
            )
        )
    started = time.perf_counter()
    for item in items:
        store.process_item(dedup.process_item(normalize.process_item(item)))
    writer.close()
    elapsed = time.perf_counter() - started
    # Right means: in the same story as its original (possibly via an earlier copy of it).
    with sessions() as session:
        cluster = dict(session.execute(select(Article.url, Article.cluster_id)).all())
        joined = {
            url: cluster[url]
            for url, duplicate_of in session.execute(
                select(Article.url, Article.duplicate_of).where(
                    Article.url.like("https://y.test/%")
                )
            )
            if duplicate_of is not None
        }
    engine.dispose()
    right = sum(
        1
        for url, original in expected.items()
        if original is not None and joined.get(url) == cluster[f"https://x.test/{original}"]
    )
    actual = sum(1 for original in expected.values() if original is not None)
    return elapsed / PROBES * 1000, right / len(joined) if joined else 1.0, right / actual


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--keep", type=Path, help="keep the generated archives in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="deportwatch-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    baseline = None
    print(
        f"{'archive':>10} {'fill s':>8} {'ms/article':>11} {'vs smallest':>12} "
        f"{'precision':>10} {'recall':>7}"
    )
    for size in args.sizes:
        url = f"sqlite:///{folder / f'archive-{size}.db'}"
        started = time.perf_counter()
        fill(url, size)
        fill_seconds = time.perf_counter() - started
        ms, precision, recall = probe(url, size)
        baseline = baseline or ms
        print(
            f"{size:>10} {fill_seconds:>8.0f} {ms:>11.2f} {ms / baseline:>11.2f}x "
            f"{precision:>10.3f} {recall:>7.3f}",
            flush=True,
        )
        if args.keep is None:
            (folder / f"archive-{size}.db").unlink()


if __name__ == "__main__":
    main()
