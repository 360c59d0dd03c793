"""One article as a researcher cites it: metadata, flag evidence, its story, its versions."""

from __future__ import annotations

import difflib
import json
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db.models import Article, StoryCluster
from db.repository.articles import MatchLike, language_versions
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


def language_version_articles(session: Session, article: Article) -> list[Article]:
    """The articles of the story's versions in other languages, oldest first."""
    clusters = language_versions(session, article.cluster_id)
    if not clusters:
        return []
    return list(
        session.scalars(
            select(Article)
            .where(Article.cluster_id.in_(clusters))
            .order_by(Article.id)
            .options(selectinload(Article.source))
        )
    )


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


def article_record(article: Article, versions: list[Article] | None = None) -> dict[str, Any]:
    """Every stored field a user may cite, as JSON-ready values.

    ``versions``: the articles of the story's language versions
    (``language_version_articles``), each still its own article.
    """
    members = article.cluster.members if article.cluster else [article]
    cluster = article.cluster
    group = cluster.language_group_id if cluster is not None else None
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
        "story": {
            "cluster_id": article.cluster_id,
            "first_article_id": article.cluster.first_article_id if article.cluster else None,
            # The story across languages: the id its language versions share.
            "story_id": group if group is not None else article.cluster_id,
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
            "language_versions": [
                {
                    "id": v.id,
                    "cluster_id": v.cluster_id,
                    "language": v.language,
                    "source": v.source.name,
                    "url": v.url,
                    "title": v.title,
                    "published_at": iso_time(v.published_at),
                    "flagged": v.flagged,
                }
                for v in versions or []
            ],
        },
        "versions": [
            {
                "title": v.title,
                "text": v.text,
                "seen_from": iso_time(v.seen_from),
                "seen_until": iso_time(v.seen_until),
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
