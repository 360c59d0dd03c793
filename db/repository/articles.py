"""Articles, their versions, flags and stories: what dedup and store read and write."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import Table, TextClause, func, insert, select, text, update
from sqlalchemy.orm import Session

from db.models import (
    Article,
    ArticleVersion,
    Base,
    FlagMatch,
    LshBand,
    StoryCluster,
)


class ArticleLike(Protocol):
    """The normalized fields the store needs (an ArticleItem after normalize)."""

    url: str
    final_url: str
    page_canonical_url: str | None
    feed_guid: str | None
    feed_meta_hash: str | None
    etag: str | None
    last_modified: str | None
    title: str
    author: str | None
    summary: str | None
    published_at: datetime | None
    date_origin: str | None
    language: str | None
    text: str
    fetched_at: datetime
    details: dict[str, object] | None
    capture: dict[str, object] | None


CAPTURE_FIELDS = (
    "capture_file",
    "capture_offset",
    "capture_length",
    "capture_digest",
    "captured_at",
)


def capture_fields(capture: dict[str, object] | None) -> dict[str, object]:
    """An item's capture reference as the article's columns (none when not captured)."""
    if not capture:
        return {}
    captured = capture.get("captured_at")
    return {
        "capture_file": capture.get("file"),
        "capture_offset": capture.get("offset"),
        "capture_length": capture.get("length"),
        "capture_digest": capture.get("digest"),
        "captured_at": datetime.fromisoformat(str(captured).replace("Z", "+00:00"))
        if captured
        else None,
    }


class MatchLike(Protocol):
    """One match of a flagging result (pipeline.matcher.Match)."""

    @property
    def category(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def term(self) -> str: ...
    @property
    def field(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def snippet(self) -> str: ...
    @property
    def weight(self) -> float: ...
    @property
    def details(self) -> dict[str, Any] | None: ...


class FlagLike(Protocol):
    """A flagging result (pipeline.matcher.FlagResult)."""

    @property
    def flagged(self) -> bool: ...
    @property
    def score(self) -> float: ...
    @property
    def categories(self) -> tuple[str, ...]: ...
    @property
    def matches(self) -> tuple[MatchLike, ...]: ...
    @property
    def version(self) -> str: ...


class StoreOutcome(StrEnum):
    NEW = "new"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def _page_fields(item: ArticleLike, content_hash: str) -> dict[str, object]:
    """The columns an article takes from its page, on insert and on an edit alike."""
    return {
        "checked_at": item.fetched_at,
        "final_url": item.final_url,
        "page_canonical_url": item.page_canonical_url,
        "feed_guid": item.feed_guid,
        "feed_meta_hash": item.feed_meta_hash,
        "etag": item.etag,
        "last_modified": item.last_modified,
        "title": item.title,
        "author": item.author,
        "summary": item.summary,
        "published_at": item.published_at,
        "date_origin": item.date_origin,
        "language": item.language,
        "text": item.text,
        "content_hash": content_hash,
        "details": _details_json(item.details),
    }


def _apply(article: Article, item: ArticleLike, content_hash: str) -> None:
    for name, value in _page_fields(item, content_hash).items():
        # A feed GUID or metadata hash the page no longer comes with is kept.
        if value is not None or name not in ("feed_guid", "feed_meta_hash"):
            setattr(article, name, value)


def _details_json(details: dict[str, object] | None) -> str | None:
    return json.dumps(details, ensure_ascii=False, sort_keys=True) if details else None


def update_article(
    existing: Article, item: ArticleLike, content_hash: str
) -> tuple[Article, StoreOutcome]:
    """An archived article seen again: unchanged (marked seen), or edited (its
    replaced text kept as a version)."""
    existing.last_seen_at = max(existing.last_seen_at, item.fetched_at)
    existing.checked_at = item.fetched_at
    existing.etag, existing.last_modified = item.etag, item.last_modified
    if existing.content_hash == content_hash and existing.title == item.title:
        # Same text; facts that drift (a post's view count) are refreshed in place.
        existing.details = _details_json(item.details) or existing.details
        if existing.capture_file is None:
            # The text's first capture stands as its evidence; one made later
            # (capture was off, or the disk was full) fills the gap.
            for name, value in capture_fields(item.capture).items():
                setattr(existing, name, value)
        return existing, StoreOutcome.UNCHANGED
    # An edit: the text it replaces becomes a version, with when it was current.
    existing.versions.append(
        ArticleVersion(
            title=existing.title,
            text=existing.text,
            content_hash=existing.content_hash,
            seen_from=existing.updated_at or existing.first_seen_at,
            seen_until=item.fetched_at,
            **{name: getattr(existing, name) for name in CAPTURE_FIELDS},
        )
    )
    _apply(existing, item, content_hash)
    for name in CAPTURE_FIELDS:  # the new text's capture, or none if it was not captured
        setattr(existing, name, capture_fields(item.capture).get(name))
    existing.updated_at = item.fetched_at
    return existing, StoreOutcome.UPDATED


def article_by_url(session: Session, canonical_url: str) -> Article | None:
    return session.scalar(select(Article).where(Article.canonical_url == canonical_url))


def insert_article(
    session: Session,
    source_id: int,
    canonical_url: str,
    content_hash: str,
    item: ArticleLike,
    *,
    story: StoryLink,
    flag: FlagLike | None,
) -> tuple[bool, bool]:
    """A new article, its story, band rows and flag evidence, in Core statements.

    Written without the ORM's unit of work: a new article is nearly every item
    of a crawl, and the ORM's bookkeeping for its rows (article, story, bands,
    evidence) cost more CPU than the SQL. Returns (joined an existing story, flagged).
    Run under the archive's write lock (the writer's batch), so no other
    process can insert the same URL in between.
    """
    articles, clusters = _table(Article), _table(StoryCluster)
    cluster_id = _matched_cluster(session, story.duplicate_of)
    joined = cluster_id is not None
    if cluster_id is None:
        cluster_id = session.execute(
            insert(clusters).values(first_seen_at=item.fetched_at).returning(clusters.c.id)
        ).scalar_one()
    flagged = flag is not None and flag.flagged
    article_id = session.execute(
        insert(articles)
        .values(
            source_id=source_id,
            url=item.url,
            canonical_url=canonical_url,
            **_page_fields(item, content_hash),
            first_seen_at=item.fetched_at,
            last_seen_at=item.fetched_at,
            **capture_fields(item.capture),
            cluster_id=cluster_id,
            duplicate_of=story.duplicate_of if joined else None,
            similarity=story.similarity if joined else None,
            minhash=story.minhash,
            flagged=flagged,
            flag_score=flag.score if flag else None,
            flag_categories=(",".join(flag.categories) or None) if flag else None,
            keywords_version=flag.version if flag else None,
            flagged_at=item.fetched_at if flagged else None,
        )
        .returning(articles.c.id)
    ).scalar_one()
    if not joined:
        session.execute(
            update(clusters).where(clusters.c.id == cluster_id).values(first_article_id=article_id)
        )
        if story.language_of is not None:
            link_language_version(session, cluster_id, story.language_of, story.language_score or 0)
    if story.band_keys:
        session.execute(
            insert(_table(LshBand)),
            [{"band_key": key, "article_id": article_id} for key in set(story.band_keys)],
        )
    if flag is not None and flag.matches:
        session.execute(
            insert(_table(FlagMatch)),
            [
                {
                    "article_id": article_id,
                    "category": m.category,
                    "rule": m.rule,
                    "term": m.term,
                    "field": m.field,
                    "start": m.start,
                    "end": m.end,
                    "snippet": m.snippet,
                    "weight": m.weight,
                    "details": m.details,
                }
                for m in flag.matches
            ],
        )
    return joined, flagged


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


@dataclass(frozen=True)
class StoryLink:
    """What dedup decided for a new article: the article it copies, if any, and
    its signature."""

    duplicate_of: int | None
    similarity: float | None
    minhash: bytes | None
    band_keys: list[int]
    # The archived article this one is another language's version of, if any.
    language_of: int | None = None
    language_score: float | None = None


def _matched_cluster(session: Session, duplicate_of: int | None) -> int | None:
    """The story of the article a new one copies (made now for an article archived
    before stories existed); None when it copies nothing, or nothing left."""
    if duplicate_of is None:
        return None
    row = session.execute(
        select(Article.cluster_id, Article.first_seen_at).where(Article.id == duplicate_of)
    ).one_or_none()
    if row is None:
        return None
    cluster_id, first_seen_at = row
    if cluster_id is None:
        clusters, articles = _table(StoryCluster), _table(Article)
        cluster_id = session.execute(
            insert(clusters)
            .values(first_seen_at=first_seen_at, first_article_id=duplicate_of)
            .returning(clusters.c.id)
        ).scalar_one()
        session.execute(
            update(articles).where(articles.c.id == duplicate_of).values(cluster_id=cluster_id)
        )
    return int(cluster_id)


def apply_flag(session: Session, article: Article, result: FlagLike, now: datetime) -> bool:
    """Store a flagging result on the article, replacing its matches.

    Returns True when the article is *newly* flagged: it was not flagged
    before (under any taxonomy version) and is now. That is what alerts and
    run counts care about; a re-crawl of a flagged story is not news.
    """
    newly = result.flagged and not article.flagged
    article.flagged = result.flagged
    article.flag_score = result.score
    article.flag_categories = ",".join(result.categories) or None
    article.keywords_version = result.version
    if newly or (result.flagged and article.flagged_at is None):
        article.flagged_at = now
    if not result.flagged:
        article.flagged_at = None
    article.matches = [
        FlagMatch(
            category=m.category,
            rule=m.rule,
            term=m.term,
            field=m.field,
            start=m.start,
            end=m.end,
            snippet=m.snippet,
            weight=m.weight,
            details=m.details,
        )
        for m in result.matches
    ]
    return newly


def needs_flag(article: Article, outcome: StoreOutcome, version: str) -> bool:
    """Flags are recomputed for new or changed text, or under a new taxonomy."""
    return outcome is not StoreOutcome.UNCHANGED or article.keywords_version != version


def article_id_by_url(session: Session, canonical_url: str) -> int | None:
    return session.scalar(select(Article.id).where(Article.canonical_url == canonical_url))


def archived_entry(
    session: Session, canonical_url: str, source_id: int, guid: str | None
) -> tuple[int, str] | None:
    """The archived article an item is (its id and URL), in one indexed query.

    A feed entry its source archived under this GUID is that article even when
    its URL changed (the earliest such article, if there are several); else
    the article at the item's canonical URL, if any.
    """
    query = select(Article.id, Article.canonical_url, Article.source_id, Article.feed_guid)
    if guid is None:
        query = query.where(Article.canonical_url == canonical_url)
    else:
        query = query.where(
            (Article.canonical_url == canonical_url)
            | ((Article.source_id == source_id) & (Article.feed_guid == guid))
        )
    rows = session.execute(query.order_by(Article.id)).all()
    for row in rows:
        if guid is not None and row.source_id == source_id and row.feed_guid == guid:
            return row.id, row.canonical_url
    for row in rows:
        if row.canonical_url == canonical_url:
            return row.id, row.canonical_url
    return None


def article_id_by_hash(session: Session, content_hash: str, exclude: int | None) -> int | None:
    """The first archived article with exactly this text (another URL, any source)."""
    query = select(Article.id).where(Article.content_hash == content_hash)
    if exclude is not None:
        query = query.where(Article.id != exclude)
    return session.scalar(query.order_by(Article.id).limit(1))


def band_candidates(
    session: Session, keys: list[int], exclude: int | None, limit: int = 50
) -> list[tuple[int, bytes]]:
    """Articles sharing an LSH band key, most shared keys first: one indexed query."""
    shared = func.count(LshBand.band_key).label("shared")
    query = (
        select(Article.id, Article.minhash)
        .join(LshBand, LshBand.article_id == Article.id)
        .where(LshBand.band_key.in_(keys), Article.minhash.is_not(None))
        .group_by(Article.id, Article.minhash)
        .order_by(shared.desc(), Article.id)
        .limit(limit)
    )
    if exclude is not None:
        query = query.where(Article.id != exclude)
    return [(article_id, minhash) for article_id, minhash in session.execute(query) if minhash]


def set_signature(
    session: Session, article: Article, sig: bytes | None, keys: list[int], *, new: bool = False
) -> None:
    """Store the article's MinHash and replace its LSH band rows.

    The band rows go through Core statements, not ORM objects: they are 21 per
    article and nothing reads them back in the session, so the ORM's unit of
    work (a tenth of a crawl's CPU) is not paid for them. A new article has no
    rows to delete.
    """
    article.minhash = sig
    bands = _table(LshBand)
    if not new:
        session.execute(bands.delete().where(bands.c.article_id == article.id))
    if keys:
        session.execute(
            bands.insert(), [{"band_key": key, "article_id": article.id} for key in set(keys)]
        )


def story_candidates(
    session: Session,
    keys: dict[int, float],
    exclude: int | None,
    *,
    least: float,
    common: int,
    limit: int = 10,
) -> list[int]:
    """Articles whose shared anchor keys (anchors on the same days) weigh at
    least ``least``, heaviest first; ``keys`` maps each key to its anchor's weight.

    A key that ``common`` or more articles carry (the day's own date, a name in
    every report of the day such as the ombudsman's) tells nothing about which
    story an article is: it is read no further and not counted. So each key
    costs at most ``common`` index entries, and the candidates are the articles
    sharing telling anchors, however many articles a day holds; without the
    cap, the rows and the candidates grew with the archive's articles per day.
    The database leaves the common keys out and adds up the weights itself:
    when the rows of common keys came back to be counted here, they were most
    of a probe's lookup cost at 100k articles (540 rows an article against 164
    at 10k; 1.5-2.1 ms against 0.4-0.5 ms with this statement, at 100k).
    """
    if not keys:
        return []
    params: dict[str, int | float] = {}
    for i, (key, weight) in enumerate(keys.items()):
        params[f"k{i}"], params[f"w{i}"] = key, weight
    params["exclude"] = -1 if exclude is None else exclude
    statement = _telling_weights(len(keys), common, least, limit)
    return list(session.scalars(statement, params))


@lru_cache(maxsize=128)
def _telling_weights(count: int, cap: int, least: float, limit: int) -> TextClause:
    """The articles of ``count`` keys, each key's weight summed per article over
    the keys fewer than ``cap`` articles carry: one statement per count, with
    bound keys and weights. It is SQL text because SQLAlchemy would walk the
    same statement built in Core, a hundred subqueries, for its cache key on
    every call: 0.7 ms an article at 100k, more than the query itself."""
    # Only the model's names and these numbers are spliced in; keys, weights
    # and the excluded id are bound.
    table, key, article = LshBand.__tablename__, LshBand.band_key.name, LshBand.article_id.name
    cap, least, limit = int(cap), float(least), int(limit)
    carriers = f"FROM {table} WHERE {key} = :k{{i}} AND {article} != :exclude"
    rows = f"SELECT {article} {carriers} LIMIT {cap}"
    # The cap-th carrier: an index probe that stops there, returning no row.
    common = f"SELECT 1 {carriers} LIMIT 1 OFFSET {cap - 1}"
    part = f"SELECT :w{{i}} AS weight, {article} FROM ({rows}) r WHERE NOT EXISTS ({common})"  # noqa: S608
    shared = " UNION ALL ".join(part.format(i=i) for i in range(count))
    return text(
        f"SELECT {article} FROM ({shared}) shared GROUP BY {article}"  # noqa: S608
        f" HAVING sum(weight) >= {least!r} ORDER BY sum(weight) DESC, {article} LIMIT {limit}"
    )


@dataclass(frozen=True)
class Candidate:
    """An archived article as the story decisions need it."""

    id: int
    cluster_id: int | None
    language: str | None
    published_at: datetime | None
    text: str
    url: str | None = None


def candidate_articles(session: Session, ids: list[int]) -> list[Candidate]:
    if not ids:
        return []
    rows = session.execute(
        select(
            Article.id,
            Article.cluster_id,
            Article.language,
            Article.published_at,
            Article.text,
            Article.canonical_url,
        )
        .where(Article.id.in_(ids))
        .order_by(Article.id)
    )
    return [Candidate(*row) for row in rows]


def link_language_version(
    session: Session, cluster_id: int, other_article_id: int, score: float
) -> bool:
    """Make the story ``cluster_id`` a language version of another article's story.

    Every story of a group names the group's first story; joining two groups
    moves the later one under the earlier. Returns False when there is
    nothing to link (the other article has no story, or it is the same one).
    """
    other = session.scalar(select(Article.cluster_id).where(Article.id == other_article_id))
    if other is None or other == cluster_id:
        return False
    clusters = _table(StoryCluster)
    groups = dict(
        session.execute(
            select(clusters.c.id, clusters.c.language_group_id).where(
                clusters.c.id.in_([cluster_id, other])
            )
        ).all()
    )
    own_group = groups.get(cluster_id) or cluster_id
    other_group = groups.get(other) or other
    group = min(own_group, other_group)
    session.execute(
        update(clusters)
        .where(
            clusters.c.id.in_([cluster_id, other, own_group, other_group])
            | clusters.c.language_group_id.in_([own_group, other_group])
        )
        .values(language_group_id=group)
    )
    session.execute(
        update(clusters)
        .where(clusters.c.id == cluster_id, clusters.c.language_score.is_(None))
        .values(language_score=score)
    )
    return True


def language_versions(session: Session, cluster_id: int | None) -> list[int]:
    """The other stories of a story's language group (their cluster ids), oldest first."""
    if cluster_id is None:
        return []
    group = session.scalar(
        select(StoryCluster.language_group_id).where(StoryCluster.id == cluster_id)
    )
    if group is None:
        return []
    return list(
        session.scalars(
            select(StoryCluster.id)
            .where(StoryCluster.language_group_id == group, StoryCluster.id != cluster_id)
            .order_by(StoryCluster.id)
        )
    )


def story_of(session: Session, cluster_id: int) -> tuple[int, list[int]]:
    """A story across languages: its id (the language group's, else the cluster's)
    and every cluster in it."""
    group = session.scalar(
        select(StoryCluster.language_group_id).where(StoryCluster.id == cluster_id)
    )
    if group is None:
        return cluster_id, [cluster_id]
    clusters = session.scalars(
        select(StoryCluster.id).where(
            (StoryCluster.language_group_id == group) | (StoryCluster.id == group)
        )
    )
    return group, sorted(set(clusters) | {cluster_id})


def merge_clusters(session: Session, source: int, into: int) -> None:
    """Move every article of story ``source`` into story ``into`` and drop ``source``.

    Their language groups become one (under the earlier group); a group whose
    first story was ``source`` is kept under ``into``.
    """
    if source == into:
        return
    clusters, articles = _table(StoryCluster), _table(Article)
    session.execute(update(articles).where(articles.c.cluster_id == source).values(cluster_id=into))
    rows = session.execute(
        select(
            clusters.c.id,
            clusters.c.language_group_id,
            clusters.c.first_article_id,
            clusters.c.first_seen_at,
        ).where(clusters.c.id.in_([source, into]))
    ).all()
    by_id = {row.id: row for row in rows}
    groups = {row.language_group_id for row in rows if row.language_group_id is not None}
    if groups:
        renamed = {into if g == source else g for g in groups}
        group = min(renamed)
        session.execute(
            update(clusters)
            .where(clusters.c.language_group_id.in_(groups | {source}) | (clusters.c.id == into))
            .values(language_group_id=group)
        )
    firsts = [by_id[c] for c in (source, into) if c in by_id]
    if firsts:
        earliest = min(firsts, key=lambda row: (row.first_seen_at, row.first_article_id or 0))
        session.execute(
            update(clusters)
            .where(clusters.c.id == into)
            .values(
                first_article_id=earliest.first_article_id, first_seen_at=earliest.first_seen_at
            )
        )
    session.execute(clusters.delete().where(clusters.c.id == source))
