"""Every statement the stages run per item finds its rows through an index.

The cost of a crawl must not grow with the archive: each lookup and update an
item makes (dedup's URL, GUID, hash and band lookups, store's edits, flag
evidence) is replayed under the database's own planner, on SQLite and
PostgreSQL, and no plan may read a whole archive table. A search's statements
(the ranking, the shown rows, snippets, stories) are held to the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler
from sqlalchemy import Engine, event, text

from db.engine import make_sessionmaker
from db.models import Article
from db.query import parse_query
from db.repository.runs import ensure_source, known_entries
from db.search import Filters, search
from deportwatch.config.keywords import load_taxonomy
from pipeline.dedup import DedupPipeline
from pipeline.flag import FlagPipeline
from pipeline.matcher import Matcher
from pipeline.normalize import NormalizePipeline
from pipeline.store import StorePipeline
from pipeline.writer import ArchiveWriter
from tests.conftest import REPO
from tests.helpers import FETCHED, article_item
from tests.test_dedup import REWORDED, STORY, SYNDICATED

# The tables that grow with the archive; a scan of `sources` (a few dozen rows)
# would not matter, but it has its unique index all the same.
GROWING = (
    "articles",
    "article_versions",
    "lsh_bands",
    "flag_matches",
    "story_clusters",
    "sources",
)


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(**kw: Any) -> None:
        statement, parameters = kw["statement"], kw["parameters"]
        if re.match(r"\s*(SELECT|WITH|UPDATE|DELETE)\b", statement, re.IGNORECASE):
            many = kw["executemany"] and parameters
            seen.append((statement, parameters[0] if many else parameters))

    event.listen(engine, "before_cursor_execute", record, named=True)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def ingest_a_day_of_news(engine: Engine, writer: ArchiveWriter) -> None:
    with make_sessionmaker(engine).begin() as session:
        for name in ("nv-en", "yahoo", "kyiv-independent", "telegram"):
            ensure_source(session, name, "feed")
    stats = MemoryStatsCollector(get_crawler())
    stages = (
        NormalizePipeline(),
        DedupPipeline(writer),
        FlagPipeline(Matcher(load_taxonomy(REPO / "keywords.toml"))),
        StorePipeline(writer, stats),
    )
    later = FETCHED + timedelta(hours=3)
    items = [
        article_item(
            url="https://english.nv.ua/camps/", text=STORY, source="nv-en", feed_guid="g1"
        ),
        # a syndicated copy, a reworded one, the same page edited, an entry that moved
        article_item(url="https://www.yahoo.com/camps/", text=SYNDICATED, source="yahoo"),
        article_item(url="https://kyivindependent.com/camps/", text=REWORDED),
        article_item(
            url="https://english.nv.ua/camps/",
            text=STORY + " Updated.",
            fetched_at=later,
            source="nv-en",
        ),
        article_item(
            url="https://english.nv.ua/camps-2/", text=STORY, source="nv-en", feed_guid="g1"
        ),
        # a short post whose link preview points at an archived article
        article_item(
            url="https://t.me/s/channel/7",
            text="Ще 11 дітей повернули додому.",
            source="telegram",
            links_to="https://english.nv.ua/camps/",
        ),
    ]
    for item in items:
        passed = item
        for stage in stages:
            passed = stage.process_item(passed)  # type: ignore[attr-defined]
    writer.commit()
    with make_sessionmaker(engine)() as session:
        known_entries(session, ["https://english.nv.ua/camps", "https://yahoo.com/camps"])


def whole_table_reads(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The plan's steps that read one of the growing tables from end to end."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            steps = [str(row[-1]) for row in rows]
            # SEARCH is an index lookup; SCAN (even USING INDEX) reads everything.
            return [s for s in steps if re.match(rf"SCAN ({'|'.join(GROWING)})\b", s)]
        # With sequential scans priced out, PostgreSQL takes any index that
        # serves the query, so a Seq Scan left in the plan means there is none.
        conn.execute(text("SET enable_seqscan = off"))
        rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
        steps = [str(row[0]) for row in rows]
        return [s for s in steps if re.search(rf"Seq Scan on ({'|'.join(GROWING)})\b", s)]


def test_per_item_statements_use_indexes(
    engine: Engine, writer: ArchiveWriter, statements: list[tuple[str, Any]]
) -> None:
    ingest_a_day_of_news(engine, writer)
    distinct = {statement: parameters for statement, parameters in statements}
    # The lookups of every layer were exercised: URL or GUID, hash, bands, edits.
    assert len(distinct) >= 8
    assert any("lsh_bands" in s for s in distinct)
    assert any(re.match(r"\s*UPDATE articles", s) for s in distinct)
    offenders = {
        statement: steps
        for statement, parameters in distinct.items()
        if (steps := whole_table_reads(engine, statement, parameters))
    }
    assert offenders == {}


def test_the_check_sees_a_whole_table_read(engine: Engine) -> None:
    # The test above can fail: a lookup on a column without an index is caught.
    steps = whole_table_reads(
        engine,
        "SELECT id FROM articles WHERE title = 'x'",
        {} if engine.dialect.name != "sqlite" else (),
    )
    assert steps


def test_search_statements_use_indexes(
    engine: Engine, corpus: dict[str, Article], statements: list[tuple[str, Any]]
) -> None:
    with make_sessionmaker(engine)() as session:
        for query in ("Kherson OR Скадовська", "deported children", "депорт*"):
            assert search(session, Filters(query=parse_query(query)))
    distinct = {statement: parameters for statement, parameters in statements}
    assert any("ts_rank" in s or "bm25" in s for s in distinct)
    offenders = {
        statement: steps
        for statement, parameters in distinct.items()
        if (steps := whole_table_reads(engine, statement, parameters))
    }
    assert offenders == {}
