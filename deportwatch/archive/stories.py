"""Re-link an archive's stories: rewrites joined, language versions linked.

An archive built before the rewrite and language-version search (or under
other thresholds) holds each rewrite as a story of its own and no language
versions. Going through it in the order it was built, each article is judged
against the articles archived before it, exactly as the dedup stage judges a
new one, and its lookup keys are stored. Each batch is one transaction; a run
stopped part way keeps what it finished, and running again changes nothing
that is already linked (``--after`` goes on from where a run stopped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Article, StoryCluster
from db.repository.articles import link_language_version, merge_clusters, set_signature
from pipeline.dedup import match_story
from pipeline.similarity import band_keys, signature

BATCH = 200


@dataclass
class RelinkCounts:
    examined: int = 0
    joined: int = 0  # rewrites moved into an earlier article's story
    linked: int = 0  # stories newly linked as language versions
    last_id: int = 0


def count_articles(sessions: sessionmaker[Session], after: int = 0) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count(Article.id)).where(Article.id > after)) or 0)


def relink(
    sessions: sessionmaker[Session],
    after: int = 0,
    on_batch: Callable[[int, int], None] | None = None,
) -> RelinkCounts:
    """Judge every article after ``after`` (by id) against the ones before it."""
    counts = RelinkCounts(last_id=after)
    while True:
        with sessions.begin() as session:
            batch = list(
                session.scalars(
                    select(Article)
                    .where(Article.id > counts.last_id)
                    .order_by(Article.id)
                    .limit(BATCH)
                )
            )
            if not batch:
                return counts
            for article in batch:
                _relink_one(session, article, counts)
                counts.examined += 1
            counts.last_id = batch[-1].id
        if on_batch is not None:
            on_batch(len(batch), counts.last_id)


def _relink_one(session: Session, article: Article, counts: RelinkCounts) -> None:
    sig = article.minhash or signature(article.text)
    keys = band_keys(sig) if sig else []
    found = match_story(
        session,
        text=article.text,
        title=article.title,
        url=article.canonical_url,
        language=article.language,
        published_at=article.published_at or article.first_seen_at,
        own_id=article.id,
        minhash=sig,
        minhash_keys=keys,
        before=article.id,
    )
    set_signature(session, article, sig, keys + found.story_keys)
    if found.duplicate_of is not None:
        target = session.scalar(select(Article.cluster_id).where(Article.id == found.duplicate_of))
        if target is not None and article.cluster_id is not None and target != article.cluster_id:
            merge_clusters(session, article.cluster_id, target)
            article.duplicate_of, article.similarity = found.duplicate_of, found.similarity
            session.flush()
            session.expire(article, ["cluster_id"])
            counts.joined += 1
    elif found.language_of is not None and article.cluster_id is not None:
        before = _group(session, article.cluster_id)
        link_language_version(
            session, article.cluster_id, found.language_of, found.language_score or 0
        )
        if _group(session, article.cluster_id) != before:
            counts.linked += 1


def _group(session: Session, cluster_id: int) -> int | None:
    return session.scalar(
        select(StoryCluster.language_group_id).where(StoryCluster.id == cluster_id)
    )
