"""Pipeline stage — dedup: is this article new, a new version, or a copy of a known story?

Layers, cheapest first:
1. canonical URL (made by normalize): the same page again is the same row;
2. feed GUID: an entry of the same source whose URL changed is the same row;
3. exact text (content hash): the same body at another URL joins that story;
4. near-duplicate text (MinHash, LSH bands in an indexed table): a syndicated
   or lightly reworded copy joins that story;
5. rewrites and language versions (pipeline/stories.py): the articles of the
   same days that share anchors (numbers, dates, names), rare lead terms, the
   outlet's article number or a band are read again; a rewrite in the same
   language joins that story, a report of it in another language becomes a
   language version of it;
and for short posts, too short to compare, a link preview that points at an
archived article joins that article's story.
The stage only decides; the store stage writes. It reads through the same
``ArchiveWriter`` session as the store stage, so it sees the articles of the
batch that is not committed yet: a copy is found even when its original
arrived a moment before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Self

from scrapy.crawler import Crawler
from sqlalchemy.orm import Session

from db.repository.articles import (
    Candidate,
    archived_entry,
    article_id_by_hash,
    article_id_by_url,
    band_candidates,
    candidate_articles,
    story_candidates,
)
from pipeline.items import ArticleItem, Item
from pipeline.similarity import band_keys, signature, similarity
from pipeline.store import ArchiveStage, spooled, writer_of
from pipeline.stories import (
    CANDIDATE_WEIGHT,
    COMMON_ANCHOR_ARTICLES,
    Anchors,
    Verdict,
    anchors,
    language_verdict,
    lead_terms,
    lookup_keys,
    outlet_article,
    outlet_host,
    rewrite_verdict,
    sentence_terms,
    story_keys,
)
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
        found = match_story(
            session,
            text=item.text,
            title=item.title,
            url=item.canonical_url,
            language=item.language,
            published_at=item.published_at,
            own_id=own_id,
            minhash=item.minhash,
            minhash_keys=item.band_keys,
            threshold=self.threshold,
        )
        item.band_keys = item.band_keys + found.story_keys
        item.duplicate_of, item.similarity = found.duplicate_of, found.similarity
        item.language_of, item.language_score = found.language_of, found.language_score
        return item


@dataclass
class StoryMatch:
    """What an article is to the archive's stories, and the keys it is stored under."""

    story_keys: list[int] = field(default_factory=list)
    duplicate_of: int | None = None
    similarity: float | None = None
    language_of: int | None = None
    language_score: float | None = None


def match_story(
    session: Session,
    *,
    text: str,
    title: str,
    url: str | None = None,
    language: str | None,
    published_at: datetime | None,
    own_id: int | None,
    minhash: bytes | None,
    minhash_keys: list[int],
    threshold: float = DEFAULT_THRESHOLD,
    before: int | None = None,
) -> StoryMatch:
    """The story an article belongs to: a near-duplicate, else a rewrite, else
    a language version of one; ``before`` keeps to articles archived earlier
    (re-linking an archive in the order it was built).
    """
    found = anchors(f"{title}\n{text}")
    terms = lead_terms(f"{title}\n{text}", language)
    sentences = sentence_terms(text)
    outlet = outlet_article(url)
    match = StoryMatch(story_keys=story_keys(found, published_at, terms, outlet, sentences))
    best, best_score, near = _nearest(session, minhash, minhash_keys, own_id, before)
    if best is not None and best_score >= threshold:
        match.duplicate_of, match.similarity = best, best_score
        return match
    if own_id is not None and before is None:
        return match  # an archived article seen again keeps its story
    ids = story_candidates(
        session,
        lookup_keys(found, published_at, terms, outlet, sentences),
        own_id,
        least=CANDIDATE_WEIGHT,
        common=COMMON_ANCHOR_ARTICLES,
    )
    ids = [i for i in dict.fromkeys(near[:5] + ids) if before is None or i < before]
    best_rewrite: tuple[float, int] | None = None
    best_version: tuple[float, int] | None = None
    for other in candidate_articles(session, ids):
        verdict = _verdict(text, found, language, published_at, other, url=url, outlet=outlet)
        if verdict is None or not verdict.same:
            continue
        if other.language == language:
            if best_rewrite is None or verdict.score > best_rewrite[0]:
                best_rewrite = (verdict.score, other.id)
        elif best_version is None or verdict.score > best_version[0]:
            best_version = (verdict.score, other.id)
    if best_rewrite is not None:
        match.similarity, match.duplicate_of = best_rewrite
    elif best_version is not None:
        match.language_score, match.language_of = best_version
    return match


def _nearest(
    session: Session,
    minhash: bytes | None,
    keys: list[int],
    own_id: int | None,
    before: int | None,
) -> tuple[int | None, float, list[int]]:
    """The most similar article by MinHash, its similarity, and every band candidate."""
    best: int | None = None
    best_score = 0.0
    near: list[int] = []
    if not minhash:
        return best, best_score, near
    for article_id, other in band_candidates(session, keys, own_id):
        if before is not None and article_id >= before:
            continue
        score = similarity(minhash, other)
        if score > best_score:
            best, best_score = article_id, score
        near.append(article_id)
    return best, best_score, near


def _verdict(
    text: str,
    found: Anchors,
    language: str | None,
    published_at: datetime | None,
    other: Candidate,
    *,
    url: str | None,
    outlet: str | None,
) -> Verdict | None:
    """A rewrite in the same language, a language version in another; None when
    either language is unknown (nothing can be said across languages then)."""
    if other.language == language:
        return rewrite_verdict(
            text,
            other.text,
            published_at,
            other.published_at,
            language,
            outlets=(outlet_host(url), outlet_host(other.url)),
        )
    if not language or not other.language:
        return None
    return language_verdict(
        found,
        anchors(other.text),
        published_at,
        other.published_at,
        outlet_a=outlet,
        outlet_b=outlet_article(other.url),
    )
