"""Pipeline stage last — store: one idempotent upsert per article, in its own savepoint.

The writes go through the process's ``ArchiveWriter`` (pipeline/writer.py),
which commits them in batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.statscollectors import StatsCollector
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import SourceRow
from db.repository.articles import (
    StoreOutcome,
    StoryLink,
    apply_flag,
    article_by_url,
    insert_article,
    needs_flag,
    set_signature,
    update_article,
)
from pipeline.items import ArticleItem, Item
from pipeline.writer import ArchiveUnavailable, ArchiveWriter, release, shared_writer

STAT_PREFIX = "deportwatch/articles"
FLAGGED_STAT = "deportwatch/flagged/new"
UNDATED_STAT = "deportwatch/articles/undated"
READINGS_STAT = "deportwatch/readings/new"


class ArchiveStage:
    """A pipeline stage that writes to the archive: its writer and source ids."""

    def __init__(self, writer: ArchiveWriter, stats: StatsCollector | None = None):
        self.writer = writer
        self.stats = stats
        self._source_ids: dict[str, int] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(writer_of(crawler), crawler.stats)

    def close_spider(self) -> None:
        release(self.writer)

    def _source_id(self, session: Session, name: str) -> int:
        if name not in self._source_ids:
            source_id = session.scalar(select(SourceRow.id).where(SourceRow.name == name))
            if source_id is None:
                raise LookupError(f"source {name!r} is not registered in the archive")
            self._source_ids[name] = source_id
        return self._source_ids[name]

    def count(self, key: str) -> None:
        """Count ``key`` once the item's batch is committed (a spooled item is not stored)."""
        stats = self.stats
        if stats is not None:
            self.writer.on_commit(lambda: stats.inc_value(key))


def writer_of(crawler: Crawler) -> ArchiveWriter:
    """The process's writer for the crawl's archive, spooling where the settings say."""
    spool = crawler.settings.get("DEPORTWATCH_SPOOL_DIR")
    return shared_writer(
        crawler.settings["DEPORTWATCH_DATABASE_URL"], Path(spool) if spool else None
    )


def spooled(exc: ArchiveUnavailable) -> DropItem:
    """The end of an item's way through the stages when the archive is away (it
    waits in the spool). Logged to the crawl log only, without the item's text:
    the run's errors and the crawl's last line give the total."""
    return DropItem(f"archive unavailable: {exc}", log_level="INFO")


class StorePipeline(ArchiveStage):
    """Writes each normalized article to the archive.

    Crawling the same site twice creates no new rows: the article at a known
    canonical URL is updated (text changed) or only marked seen (unchanged).
    Outcomes are counted in the crawl stats, which the run recorder copies
    into ``crawl_runs``.
    """

    def process_item(self, item: Item) -> Item:
        if not isinstance(item, ArticleItem):
            return item  # counter readings pass through to their own store stage
        if item.canonical_url is None or item.content_hash is None:
            raise ValueError("store stage reached before normalize")
        try:
            self._store(item)
        except ArchiveUnavailable as exc:
            raise spooled(exc) from None
        return item

    def _store(self, item: ArticleItem) -> None:
        assert item.canonical_url is not None
        assert item.content_hash is not None
        with self.writer.item(item) as session:
            source_id = self._source_id(session, item.source)
            # Dedup has just looked the item up in this session; a new article
            # (the usual case) needs no second query. Nothing can come between:
            # Scrapy runs one item's stages without yielding (they are all
            # synchronous), so no other item is written in the meantime.
            new = item.archived_known and item.archived_id is None
            existing = None if new else article_by_url(session, item.canonical_url)
            if existing is None:
                story = StoryLink(
                    item.duplicate_of,
                    item.similarity,
                    item.minhash,
                    item.band_keys,
                    item.language_of,
                    item.language_score,
                )
                joined, flagged = insert_article(
                    session,
                    source_id,
                    item.canonical_url,
                    item.content_hash,
                    item,
                    story=story,
                    flag=item.flag,
                )
                self.count(f"{STAT_PREFIX}/{'duplicate' if joined else 'new'}")
                if flagged:
                    self.count(FLAGGED_STAT)
                if item.date_origin == "fetch-time":
                    self.count(UNDATED_STAT)  # no readable date anywhere: a user should know
                return
            article, outcome = update_article(existing, item, item.content_hash)
            if outcome is not StoreOutcome.UNCHANGED or article.minhash is None:
                set_signature(session, article, item.minhash, item.band_keys)
            newly_flagged = False
            if item.flag is not None and needs_flag(article, outcome, item.flag.version):
                newly_flagged = apply_flag(session, article, item.flag, item.fetched_at)
            self.count(f"{STAT_PREFIX}/{outcome.value}")
            if newly_flagged:
                self.count(FLAGGED_STAT)
