"""One article as a researcher cites it: metadata, flag evidence, its story, its versions."""

from __future__ import annotations

import difflib
import json
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db.models import Article, ArticleVersion, StoryCluster
from db.repository.articles import MatchLike
from deportwatch.config.errors import UsageError


def load_article(session: Session, article_id: int) -> Article:
    article = session.scalar(
        select(Article)
        .where(Article.id == article_id)
        .options(
            selectinload(Article.matches),
            selectinload(Article.versions),
            selectinload(Article.cluster).selectinload(StoryCluster.members),
        )
    )
    if article is None:
        raise UsageError(f"no article with id {article_id}")
    return article


def iso_time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def category_list(flagged: bool, categories: str | None) -> list[str]:
    """An article's flag categories (stored comma-separated) as a list."""
    return [c for c in (categories or "").split(",") if c] if flagged else []


def match_record(match: MatchLike) -> dict[str, Any]:
    """A flag match (computed or stored) as JSON-ready values."""
    return {
        "category": match.category,
        "rule": match.rule,
        "term": match.term,
        "field": match.field,
        "start": match.start,
        "end": match.end,
        "snippet": match.snippet,
    }


def removal_note(article: Article | Any) -> str | None:
    """ "removed from the source on DATE; archived capture of DATE", when it was."""
    if article.source_state != "removed" or article.removed_at is None:
        return None
    captured = article.captured_at.date().isoformat() if article.captured_at else "none"
    return (
        f"removed from the source on {article.removed_at.date().isoformat()}; "
        f"archived capture of {captured}"
    )


def capture_record(row: Article | ArticleVersion) -> dict[str, Any] | None:
    """Where a text was archived as fetched (a WARC record), if it was."""
    if not row.capture_file:
        return None
    return {
        "file": row.capture_file,
        "offset": row.capture_offset,
        "length": row.capture_length,
        "digest": row.capture_digest,
        "captured_at": iso_time(row.captured_at),
    }


def article_record(article: Article) -> dict[str, Any]:
    """Every stored field a user may cite, as JSON-ready values."""
    members = article.cluster.members if article.cluster else [article]
    return {
        "id": article.id,
        "source": article.source.name,
        "title": article.title,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "final_url": article.final_url,
        "page_canonical_url": article.page_canonical_url,
        "author": article.author,
        "published_at": iso_time(article.published_at),
        "date_origin": article.date_origin,
        "first_seen_at": iso_time(article.first_seen_at),
        "last_seen_at": iso_time(article.last_seen_at),
        "language": article.language,
        "details": json.loads(article.details) if article.details else None,
        "flagged": article.flagged,
        "flag_score": article.flag_score,
        "flag_categories": category_list(article.flagged, article.flag_categories),
        "keywords_version": article.keywords_version,
        "matches": [match_record(m) for m in article.matches],
        "capture": capture_record(article),
        "source_state": article.source_state,
        "verified_at": iso_time(article.verified_at),
        "removed_at": iso_time(article.removed_at),
        "source_note": removal_note(article),
        "story": {
            "cluster_id": article.cluster_id,
            "first_article_id": article.cluster.first_article_id if article.cluster else None,
            "duplicate_of": article.duplicate_of,
            "similarity": article.similarity,
            "members": [
                {
                    "id": m.id,
                    "source": m.source.name,
                    "url": m.url,
                    "title": m.title,
                    "first_seen_at": iso_time(m.first_seen_at),
                }
                for m in members
                if m.id != article.id
            ],
        },
        "versions": [
            {
                "title": v.title,
                "text": v.text,
                "seen_from": iso_time(v.seen_from),
                "seen_until": iso_time(v.seen_until),
                "capture": capture_record(v),
            }
            for v in article.versions
        ],
        "text": article.text,
    }


def version_diffs(article: Article) -> list[str]:
    """A unified diff from each version to the next, the last one to the current text."""
    texts = [(v.text, v.seen_from.isoformat()) for v in article.versions]
    texts.append((article.text, "current"))
    return [
        "\n".join(
            difflib.unified_diff(
                old.splitlines(), new.splitlines(), fromfile=old_at, tofile=new_at, lineterm=""
            )
        )
        for (old, old_at), (new, new_at) in pairwise(texts)
    ]
