"""The batched archive writer on SQLite and PostgreSQL: what a batch sees, keeps and loses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from scrapy.exceptions import DropItem
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError

from db.engine import make_engine, make_sessionmaker, make_writer_engine
from db.models import Article, LshBand
from db.repository.articles import StoryLink, insert_article
from db.repository.runs import ensure_source
from pipeline.dedup import DedupPipeline
from pipeline.normalize import NormalizePipeline
from pipeline.spool import Spool, read_items
from pipeline.store import StorePipeline
from pipeline.writer import ArchiveWriter, release, shared_writer
from tests.helpers import article_item
from tests.test_dedup import STORY, SYNDICATED


@pytest.fixture
def batch(engine: Engine, database_url: str) -> Iterator[ArchiveWriter]:
    """A writer as a crawl has it: its own engine, batches of up to 100 items."""
    with make_sessionmaker(engine).begin() as session:
        for name in ("kyiv-independent", "nv-en"):
            ensure_source(session, name, "feed")
    writer = ArchiveWriter(make_writer_engine(database_url), batch_seconds=60, owns_engine=True)
    yield writer
    writer.close()


def ingest(writer: ArchiveWriter, n: int, **overrides: object) -> None:
    normalize, dedup = NormalizePipeline(), DedupPipeline(writer)
    store = StorePipeline(writer, MemoryStatsCollector(get_crawler()))
    url = f"https://kyivindependent.com/story-{n}/"
    values: dict[str, object] = {"url": url, "final_url": url, "text": f"{STORY}\nItem {n}."}
    store.process_item(
        dedup.process_item(normalize.process_item(article_item(**values | overrides)))
    )


def stored(engine: Engine) -> list[str]:
    with make_sessionmaker(engine)() as session:
        return list(session.scalars(select(Article.url).order_by(Article.url)))


def test_a_copy_in_the_uncommitted_batch_joins_its_story(
    batch: ArchiveWriter, engine: Engine
) -> None:
    ingest(batch, 1, text=STORY)
    ingest(batch, 2, source="nv-en", text=SYNDICATED)
    assert stored(engine) == []  # nothing committed yet: another connection sees nothing
    batch.commit()
    with make_sessionmaker(engine)() as session:
        original, copy = session.execute(
            select(Article.id, Article.cluster_id, Article.duplicate_of).order_by(Article.url)
        ).all()
    assert copy.duplicate_of == original.id
    assert copy.cluster_id == original.cluster_id


def test_batches_commit_every_n_items_and_at_close(engine: Engine, database_url: str) -> None:
    with make_sessionmaker(engine).begin() as session:
        ensure_source(session, "kyiv-independent", "feed")
    # No time limit: on a loaded machine seven items can outlast the default
    # batch time, and a commit on time is not what this test counts.
    writer = ArchiveWriter(
        make_writer_engine(database_url), batch_items=3, batch_seconds=3600, owns_engine=True
    )
    for n in range(7):
        ingest(writer, n)
    assert writer.commits == 2
    assert len(stored(engine)) == 6
    writer.close()
    assert len(stored(engine)) == 7


NO_STORY = StoryLink(duplicate_of=None, similarity=None, minhash=None, band_keys=[1, 2])


def write_then_fail(writer: ArchiveWriter) -> None:
    url = "https://kyivindependent.com/half-written/"
    with writer.item() as session:
        item = article_item(url=url, final_url=url)
        insert_article(session, 1, url, "hash", item, story=NO_STORY, flag=None)
        session.flush()  # the row is written inside the item's savepoint…
        raise RuntimeError("midway")  # …and the item fails after it


def test_a_failing_item_leaves_nothing_and_the_batch_goes_on(
    batch: ArchiveWriter, engine: Engine
) -> None:
    ingest(batch, 1)
    with pytest.raises(RuntimeError, match="midway"):
        write_then_fail(batch)
    ingest(batch, 2)
    batch.commit()
    assert stored(engine) == [
        "https://kyivindependent.com/story-1/",
        "https://kyivindependent.com/story-2/",
    ]
    with make_sessionmaker(engine)() as session:
        orphans = session.scalar(
            select(func.count())
            .select_from(LshBand)
            .where(LshBand.article_id.not_in(select(Article.id)))
        )
    assert orphans == 0


def test_an_open_batch_is_committed_on_time_while_the_crawl_waits(
    batch: ArchiveWriter, engine: Engine
) -> None:
    batch.batch_seconds = 0.2

    async def crawl_then_wait_for_the_network() -> None:
        ingest(batch, 1)
        await asyncio.sleep(0.6)

    asyncio.run(crawl_then_wait_for_the_network())
    assert stored(engine) == ["https://kyivindependent.com/story-1/"]
    assert batch.commits == 1


def test_one_writer_per_process_and_database(database_url: str) -> None:
    first, second = shared_writer(database_url), shared_writer(database_url)
    assert first is second
    assert first.users == 2
    release(first)
    assert shared_writer(database_url) is first  # still open for its other user
    release(first)
    release(first)
    again = shared_writer(database_url)
    assert again is not first  # the last release closed it
    release(again)


def test_sqlite_batch_holds_the_write_lock_only_until_it_commits(
    tmp_path: Path, engine: Engine, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's database-wide write lock")
    with make_sessionmaker(engine).begin() as session:
        ensure_source(session, "kyiv-independent", "feed")
    writer = ArchiveWriter(make_writer_engine(database_url), owns_engine=True)
    other = make_engine(database_url)
    with other.connect() as conn:
        conn.exec_driver_sql("PRAGMA busy_timeout=100")
        ingest(writer, 1)  # BEGIN IMMEDIATE: the batch has the lock from its first statement
        with pytest.raises(OperationalError, match="locked"):
            conn.execute(text("UPDATE sources SET enabled = enabled"))
        conn.rollback()
        writer.commit()
        conn.execute(text("UPDATE sources SET enabled = enabled"))
        conn.commit()
    other.dispose()
    writer.close()


def test_a_lost_connection_spools_the_batch_and_says_so(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a server connection to cut")
    with make_sessionmaker(engine).begin() as session:
        ensure_source(session, "kyiv-independent", "feed")
    spool = Spool(tmp_path / "spool", database_url)
    writer = ArchiveWriter(
        make_writer_engine(database_url), batch_seconds=60, owns_engine=True, spool=spool
    )
    ingest(writer, 1)
    pid = writer.session.scalar(text("SELECT pg_backend_pid()"))
    with engine.begin() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with pytest.raises(DropItem, match="2 items kept in the spool"):
        ingest(writer, 2)  # the batch (item 1) and the item that found the server gone
    assert len(writer.failures) == 1
    assert "OperationalError" in writer.failures[0]
    ingest(writer, 3)  # a fresh connection, a fresh batch
    writer.commit()
    assert stored(engine) == ["https://kyivindependent.com/story-3/"]
    writer.close()
    [spooled] = Spool(tmp_path / "spool", database_url).claim("kyiv-independent")
    urls = [item.url for _, item in read_items(spooled) if not isinstance(item, str)]
    assert urls == ["https://kyivindependent.com/story-1/", "https://kyivindependent.com/story-2/"]
    spooled.release(delete=False)
