"""One article as a researcher cites it: metadata, flag evidence, its story, its versions."""

from __future__ import annotations

import difflib
import json
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db.models import Article, ArticleVersion, StoryCluster
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


FRAME_DIMENSIONS = ("agent", "direction", "people", "recipient", "period")


def match_record(match: MatchLike) -> dict[str, Any]:
    """A flag match (computed or stored) as JSON-ready values.

    ``verdict`` says whether the report's frame confirmed the match, vetoed it
    (weight 0: it did not count) or said nothing; ``frame`` holds each
    dimension's answer with the words that gave it. Matches stored before
    frames existed have neither (None).
    """
    frame = match.details
    return {
        "category": match.category,
        "rule": match.rule,
        "term": match.term,
        "field": match.field,
        "start": match.start,
        "end": match.end,
        "snippet": match.snippet,
        "weight": match.weight,
        "verdict": frame.get("verdict") if frame else None,
        "frame": frame,
    }


def evidence(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Each flag match of an article record with the field(s) it was found in, once.

    A Telegram post has no title of its own: its title is its first line, often
    the whole post. Where the text starts with the title, a title match at the
    same place as a text match is the same words, so it is listed once, for both.
    """
    title, text = record["title"] or "", record["text"] or ""
    shared = bool(title) and text.startswith(title)

    def key(m: dict[str, Any]) -> tuple[object, ...]:
        return (m["category"], m["rule"], m["term"], m["start"], m["end"])

    in_field = {
        field: {key(m) for m in record["matches"] if m["field"] == field}
        for field in ("title", "text")
    }
    both = in_field["title"] & in_field["text"] if shared else set()
    lines = []
    for m in record["matches"]:
        if key(m) not in both:
            lines.append((m["field"], m))
        elif m["field"] == "text":
            lines.append(("title and text", m))
    return lines


def frame_summary(frame: dict[str, Any] | None) -> str:
    """Why a match counted or not, in one line: the verdict, its reason, then each
    dimension's answer with its words ("agent ours: Russia · period —")."""
    if not frame:
        return "no frame recorded (flagged before frames were read)"
    answers = []
    for dimension in FRAME_DIMENSIONS:
        signal = frame.get(dimension)
        if not isinstance(signal, dict):
            continue
        if signal.get("answer"):
            words = ", ".join(f"'{w}'" for w in signal.get("words") or [])
            answers.append(f"{dimension} {signal['answer']}: {words} ({signal.get('read')})")
        else:
            answers.append(f"{dimension} —")
    head = f"{frame.get('verdict')}: {frame.get('reason')}"
    return head + (" | " + " · ".join(answers) if answers else "")


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
        "vetoed": sum(1 for m in article.matches if (m.details or {}).get("verdict") == "vetoed"),
        "capture": capture_record(article),
        "source_state": article.source_state,
        "verified_at": iso_time(article.verified_at),
        "removed_at": iso_time(article.removed_at),
        "source_note": removal_note(article),
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
