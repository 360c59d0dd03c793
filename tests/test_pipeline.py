"""Pipeline stages without a crawl: normalize fed items, store writing real rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from db.engine import make_sessionmaker
from db.models import Article
from db.repository.runs import ensure_source
from pipeline.items import DateCandidate
from pipeline.normalize import NormalizePipeline
from pipeline.store import StorePipeline
from pipeline.writer import ArchiveWriter
from tests.helpers import FETCHED, article_item


def normalized(**overrides: object):  # type: ignore[no-untyped-def]
    return NormalizePipeline().process_item(article_item(**overrides))


def test_normalize_fills_the_stored_fields() -> None:
    item = normalized()
    assert item.canonical_url == "https://kyivindependent.com/a-story"
    assert item.title == "Russia deported children"
    assert item.text == "Russia deported children from occupied Kherson Oblast.\nOfficials said so."
    assert item.published_at == datetime(2023, 4, 7, 15, 37, tzinfo=UTC)
    assert item.date_origin == "page-meta"
    assert item.language == "en"
    assert item.content_hash is not None
    assert len(item.content_hash) == 64


def test_first_parseable_date_wins_in_given_order() -> None:
    item = normalized(
        date_candidates=[
            DateCandidate("selector", "1 min read"),
            DateCandidate("page-meta", "not a date"),
            DateCandidate("feed", "2023-04-07T15:00:00+00:00"),
        ]
    )
    assert item.published_at == datetime(2023, 4, 7, 15, 0, tzinfo=UTC)
    assert item.date_origin == "feed"


def test_no_date_falls_back_to_fetch_time_and_says_so() -> None:
    item = normalized(date_candidates=[])
    assert item.published_at == FETCHED
    assert item.date_origin == "fetch-time"


def test_trusted_page_canonical_is_the_key() -> None:
    item = normalized(page_canonical_url="https://kyivindependent.com/a-story/")
    assert item.canonical_url == "https://kyivindependent.com/a-story"


@pytest.mark.parametrize(
    "declared",
    ["https://kyivindependent.com/", "https://other-site.example/a-story/"],
)
def test_untrustworthy_page_canonical_is_ignored(declared: str) -> None:
    item = normalized(page_canonical_url=declared)
    assert item.canonical_url == "https://kyivindependent.com/a-story"


def test_language_comes_from_the_body_not_the_source() -> None:
    item = normalized(
        source_languages=("en",),
        text="Росія депортувала дітей з окупованої Херсонщини, повідомив омбудсман України.",
    )
    assert item.language == "uk"


# --- store, on both databases -------------------------------------------------------


@pytest.fixture
def store(engine: Engine, writer: ArchiveWriter) -> StorePipeline:
    with make_sessionmaker(engine).begin() as session:
        ensure_source(session, "kyiv-independent", "feed")
    return StorePipeline(writer, MemoryStatsCollector(get_crawler()))


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Article)) or 0


def test_store_is_idempotent_and_moves_last_seen(store: StorePipeline, session: Session) -> None:
    store.process_item(normalized())
    later = FETCHED + timedelta(hours=3)
    store.process_item(normalized(fetched_at=later))
    assert count(session) == 1
    row = session.scalars(select(Article)).one()
    assert row.first_seen_at == FETCHED
    assert row.last_seen_at == later
    assert row.published_at == datetime(2023, 4, 7, 15, 37, tzinfo=UTC)
    assert row.url == "https://kyivindependent.com/a-story/?utm_source=rss"
    assert row.updated_at is None
    assert store.stats is not None
    assert store.stats.get_value("deportwatch/articles/new") == 1
    assert store.stats.get_value("deportwatch/articles/unchanged") == 1


def test_changed_text_updates_the_row(store: StorePipeline, session: Session) -> None:
    store.process_item(normalized())
    edited = FETCHED + timedelta(hours=1)
    store.process_item(normalized(text="Russia deported 31 children.", fetched_at=edited))
    row = session.scalars(select(Article)).one()
    assert row.text == "Russia deported 31 children."
    assert row.updated_at == edited
    assert store.stats is not None
    assert store.stats.get_value("deportwatch/articles/updated") == 1


def test_spellings_of_one_url_are_one_row(store: StorePipeline, session: Session) -> None:
    for url in (
        "https://www.kyivindependent.com/a-story/",
        "https://kyivindependent.com/a-story?utm_medium=feed",
        "https://kyivindependent.com/a-story/amp/",
    ):
        store.process_item(normalized(url=url, final_url=url))
    assert count(session) == 1


def test_unknown_source_is_an_error(store: StorePipeline) -> None:
    with pytest.raises(LookupError, match="'nowhere' is not registered"):
        store.process_item(normalized(source="nowhere"))


def test_store_refuses_unnormalized_items(store: StorePipeline) -> None:
    with pytest.raises(ValueError, match="before normalize"):
        store.process_item(replace(article_item()))


def test_an_article_without_any_readable_date_is_counted(
    store: StorePipeline, session: Session
) -> None:
    undated = normalized(date_candidates=[DateCandidate("selector", "1 min read")])
    store.process_item(undated)
    store.process_item(
        normalized(
            url="https://kyivindependent.com/other/",
            final_url="https://kyivindependent.com/other/",
            text="Another text.",
        )
    )
    row = session.scalars(select(Article).where(Article.date_origin == "fetch-time")).one()
    assert row.published_at == FETCHED
    assert store.stats is not None
    assert store.stats.get_value("deportwatch/articles/undated") == 1
