"""The spool: items kept on disk while the archive is away, read back whole."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from scrapy.exceptions import DropItem
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler
from sqlalchemy import Engine

from db.engine import make_sessionmaker, make_writer_engine
from db.repository.runs import ensure_source
from pipeline.dedup import DedupPipeline
from pipeline.items import ArticleItem, CounterItem, DateCandidate
from pipeline.normalize import NormalizePipeline
from pipeline.spool import Spool, database_key, from_record, read_items, to_record
from pipeline.store import StorePipeline
from pipeline.writer import ArchiveWriter
from tests.helpers import article_item
from tests.test_dedup import STORY


def raw(item: ArticleItem) -> ArticleItem:
    """The item as a spider made it (what the spool keeps)."""
    return from_record(to_record(item))  # type: ignore[return-value]


def test_records_keep_every_field_a_spider_fills() -> None:
    article = article_item(
        feed_guid="g-1",
        feed_meta_hash="m",
        etag='"e"',
        last_modified="Fri, 07 Apr 2023 15:37:50 GMT",
        links_to="https://kyivindependent.com/x/",
        author="Desk",
        summary="Дітей вивезли до Криму",
        date_candidates=[DateCandidate("selector", "13 вересня 2023, 14:05")],
        source_languages=("uk", "en"),
        page_language="uk",
        details={"views": 1200, "forwarded_from": "Омбудсман"},
    )
    again = raw(article)
    assert again == article
    # What the stages derive is left out and recomputed when it is read back.
    article.canonical_url, article.content_hash, article.duplicate_of = "c", "h", 3
    assert raw(article).canonical_url is None
    assert raw(article).duplicate_of is None

    reading = CounterItem(
        source="children-of-war",
        metric="deported",
        label="Депортовано",
        value=19546,
        as_of=date(2023, 9, 27),
        fetched_at=datetime(2023, 9, 28, 6, 0, tzinfo=UTC),
        url="https://childrenofwar.gov.ua/",
    )
    assert from_record(to_record(reading)) == reading


def test_one_database_one_folder_whatever_the_waiting_time(tmp_path: Path) -> None:
    file = tmp_path / "a.db"
    assert database_key(f"sqlite:///{file}") == database_key(f"sqlite:///{file}?timeout=2")
    assert database_key(f"sqlite:///{file}") != database_key(f"sqlite:///{tmp_path / 'b.db'}")
    secret = database_key("postgresql://u:secret@db/x")
    assert secret == database_key("postgresql://u:other@db/x")  # the password is no part
    assert secret != database_key("postgresql://u@db/y")


def test_a_cut_line_is_reported_and_the_rest_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "sqlite:///a.db")
    spool.keep([article_item(url="https://kyivindependent.com/1/")])
    spool.keep([article_item(url="https://kyivindependent.com/2/")])
    spool.close()
    [path] = list(spool.directory.glob("*/*.jsonl"))
    with path.open("ab") as handle:
        handle.write(b'{"format": 1, "type": "article", "item": {"sou')  # the process died
    [claimed] = Spool(tmp_path, "sqlite:///a.db").claim("kyiv-independent")
    read = [item for _, item in read_items(claimed)]
    claimed.release(delete=False)
    assert [getattr(item, "url", None) for item in read[:2]] == [
        "https://kyivindependent.com/1/",
        "https://kyivindependent.com/2/",
    ]
    assert isinstance(read[2], str)
    assert read[2].startswith("line 3 unreadable")


def test_a_file_being_written_is_not_claimed(tmp_path: Path) -> None:
    writing = Spool(tmp_path, "sqlite:///a.db")
    writing.keep([article_item()])
    assert Spool(tmp_path, "sqlite:///a.db").claim("kyiv-independent") == []
    assert writing.pending() == {"kyiv-independent": 1}
    writing.close()
    [claimed] = Spool(tmp_path, "sqlite:///a.db").claim("kyiv-independent")
    claimed.release(delete=True)
    assert Spool(tmp_path, "sqlite:///a.db").pending() == {}


@pytest.fixture
def sqlite_archive(engine: Engine, database_url: str) -> str:
    if not database_url.startswith("sqlite"):
        pytest.skip("a SQLite file another process locks")
    with make_sessionmaker(engine).begin() as session:
        ensure_source(session, "kyiv-independent", "feed")
    return database_url


def test_while_the_archive_is_away_items_are_spooled_without_waiting_and_not_counted(
    sqlite_archive: str, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool", sqlite_archive)
    writer = ArchiveWriter(
        make_writer_engine(f"{sqlite_archive}?timeout=0.3"), owns_engine=True, spool=spool
    )
    stats = MemoryStatsCollector(get_crawler())
    normalize, dedup, store = (
        NormalizePipeline(),
        DedupPipeline(writer),
        StorePipeline(writer, stats),
    )

    def ingest(n: int) -> float:
        url = f"https://kyivindependent.com/story-{n}/"
        item = article_item(url=url, final_url=url, text=f"{STORY}\nItem {n}.")
        started = time.monotonic()
        with contextlib.suppress(DropItem):
            store.process_item(dedup.process_item(normalize.process_item(item)))
        return time.monotonic() - started

    ingest(1)  # in the open batch, not committed: not counted yet
    assert stats.get_value("deportwatch/articles/new") is None
    writer.commit()
    assert stats.get_value("deportwatch/articles/new") == 1

    other = sqlite3.connect(sqlite_archive.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ingest(2)  # waits its 0.3 s, then goes to the spool
    assert ingest(3) >= 0.3  # tried once more at once: the database may be back
    assert ingest(4) < 0.1  # then it is known to be away: straight to the spool
    assert ingest(5) < 0.1
    other.execute("ROLLBACK")
    other.close()
    writer._retry_at = 0  # the pause is over
    ingest(6)
    writer.close()
    # 1, and 6 (a copy of 1's story); nothing spooled is counted.
    assert stats.get_value("deportwatch/articles/new") == 1
    assert stats.get_value("deportwatch/articles/duplicate") == 1
    assert spool.kept == {"kyiv-independent": 4}
    [claimed] = Spool(tmp_path / "spool", sqlite_archive).claim("kyiv-independent")
    urls = [getattr(item, "url", "") for _, item in read_items(claimed)]
    claimed.release(delete=False)
    assert [url.split("-")[-1] for url in urls] == ["2/", "3/", "4/", "5/"]
