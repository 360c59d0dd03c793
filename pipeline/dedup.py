"""Pipeline stage — dedup: is this article new, a new version, or a copy of a known story?

Layers, cheapest first:
1. canonical URL (made by normalize): the same page again is the same row;
2. feed GUID: an entry of the same source whose URL changed is the same row;
3. exact text (content hash): the same body at another URL joins that story;
4. near-duplicate text (MinHash, LSH bands in an indexed table): a syndicated
   or lightly reworded copy joins that story;
and for short posts, too short to compare, a link preview that points at an
archived article joins that article's story.
The stage only decides; the store stage writes. It reads through the same
``ArchiveWriter`` session as the store stage, so it sees the articles of the
batch that is not committed yet: a copy is found even when its original
arrived a moment before.
"""

from __future__ import annotations

from typing import Self

from scrapy.crawler import Crawler
from sqlalchemy.orm import Session

from db.repository.articles import (
    archived_entry,
    article_id_by_hash,
    article_id_by_url,
    band_candidates,
)
from pipeline.items import ArticleItem, Item
from pipeline.similarity import band_keys, signature, similarity
from pipeline.store import ArchiveStage, spooled, writer_of
from pipeline.urls import canonical_url
from pipeline.writer import ArchiveUnavailable, ArchiveWriter

DEFAULT_THRESHOLD = 0.5


class DedupPipeline(ArchiveStage):
    def __init__(self, writer: ArchiveWriter, threshold: float = DEFAULT_THRESHOLD):
        super().__init__(writer)
        self.threshold = threshold

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        threshold = crawler.settings.getfloat("DEPORTWATCH_DUPLICATE_THRESHOLD", DEFAULT_THRESHOLD)
        return cls(writer_of(crawler), threshold)

    def process_item(self, item: Item) -> Item:
        if not isinstance(item, ArticleItem):
            return item  # counter readings pass through to their own store stage
        if item.canonical_url is None or item.content_hash is None:
            raise ValueError("dedup stage reached before normalize")
        item.minhash = signature(item.text)
        item.band_keys = band_keys(item.minhash) if item.minhash else []
        try:
            with self.writer.reading(item) as session:
                return self._decide(session, item)
        except ArchiveUnavailable as exc:
            raise spooled(exc) from None

    def _decide(self, session: Session, item: ArticleItem) -> ArticleItem:
        assert item.canonical_url is not None
        assert item.content_hash is not None
        source_id = self._source_id(session, item.source)
        archived = archived_entry(session, item.canonical_url, source_id, item.feed_guid)
        own_id = None
        if archived is not None:
            own_id, item.canonical_url = archived
        item.archived_id, item.archived_known = own_id, True
        if item.links_to and item.minhash is None:
            # A short post (a Telegram message) whose link preview points at an
            # archived article reports that article's story.
            target = article_id_by_url(session, canonical_url(item.links_to))
            if target is not None and target != own_id:
                item.duplicate_of = target
                return item
        if item.text:
            same_text = article_id_by_hash(session, item.content_hash, exclude=own_id)
            if same_text is not None:
                item.duplicate_of, item.similarity = same_text, 1.0
                return item
        if item.minhash:
            best, best_score = None, 0.0
            for article_id, other in band_candidates(session, item.band_keys, own_id):
                score = similarity(item.minhash, other)
                if score > best_score:
                    best, best_score = article_id, score
            if best is not None and best_score >= self.threshold:
                item.duplicate_of, item.similarity = best, best_score
        return item
