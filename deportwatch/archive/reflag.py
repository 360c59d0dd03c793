"""Re-apply the flagging taxonomy to archived articles (after keywords.toml changed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from db.models import Article, SourceRow
from db.repository.articles import apply_flag
from db.types import utcnow
from pipeline.matcher import Matcher

BATCH = 500


@dataclass
class ReflagCounts:
    examined: int = 0
    became_flagged: int = 0
    became_unflagged: int = 0
    still_flagged: int = 0


def _filtered(query, since: datetime | None, source: str | None):  # type: ignore[no-untyped-def]
    if since is not None:
        query = query.where(Article.published_at >= since)
    if source is not None:
        query = query.join(SourceRow, SourceRow.id == Article.source_id).where(
            SourceRow.name == source
        )
    return query


def count_articles(
    sessions: sessionmaker[Session], since: datetime | None = None, source: str | None = None
) -> int:
    with sessions() as session:
        query = _filtered(select(func.count(Article.id)), since, source)
        return int(session.scalar(query) or 0)


def reflag(
    sessions: sessionmaker[Session],
    matcher: Matcher,
    since: datetime | None = None,
    source: str | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ReflagCounts:
    """Flag every selected article again, in batches of one transaction each.

    Walks the archive by id (keyset pagination), so memory stays flat and a
    run that is interrupted keeps the batches it finished.
    """
    counts = ReflagCounts()
    last_id = 0
    now = utcnow()
    while True:
        with sessions.begin() as session:
            query = _filtered(select(Article), since, source)
            batch = list(
                session.scalars(
                    query.where(Article.id > last_id)
                    .order_by(Article.id)
                    .limit(BATCH)
                    .options(selectinload(Article.matches))
                )
            )
            if not batch:
                return counts
            for article in batch:
                was = article.flagged
                result = matcher.flag(article.title, article.text, article.language)
                apply_flag(session, article, result, now)
                counts.examined += 1
                if result.flagged and not was:
                    counts.became_flagged += 1
                elif was and not result.flagged:
                    counts.became_unflagged += 1
                elif result.flagged:
                    counts.still_flagged += 1
            last_id = batch[-1].id
        if on_batch is not None:
            on_batch(len(batch))
