"""Reads and writes of the archive, each an explicit function over a session."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import (
    Article,
    ArticleVersion,
    Base,
    CounterReading,
    CrawlRun,
    FetchState,
    FlagMatch,
    LshBand,
    SourceRow,
    StoryCluster,
)
from db.types import utcnow


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


class ReadingLike(Protocol):
    """One counter reading as a spider found it (spiders.items.CounterItem)."""

    metric: str
    label: str
    value: int
    as_of: date
    fetched_at: datetime
    url: str


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


def ensure_source(session: Session, name: str, kind: str, enabled: bool = True) -> SourceRow:
    """The source's row, created or brought in line with the sources file."""
    row = session.scalar(select(SourceRow).where(SourceRow.name == name))
    if row is None:
        row = SourceRow(name=name, kind=kind, enabled=enabled)
        session.add(row)
        session.flush()
    else:
        row.kind, row.enabled = kind, enabled
    return row


def start_run(session: Session, source_id: int) -> CrawlRun:
    """A new ``running`` row, owned by this process (``take_run`` hands it on)."""
    run = CrawlRun(
        source_id=source_id,
        outcome="running",
        pages=0,
        articles_new=0,
        articles_updated=0,
        articles_unchanged=0,
        errors=0,
    )
    take_run(run)
    session.add(run)
    session.flush()
    return run


def take_run(run: CrawlRun) -> None:
    """Mark ``run`` as this process's: the crawl that opened it, or the child
    process the scheduler opened it for."""
    run.pid, run.host = os.getpid(), socket.gethostname()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def close_abandoned_runs(session: Session) -> list[int]:
    """Close the runs left ``running`` by crawl processes of this machine that no
    longer exist (killed: ``kill -9``, the machine lost power): they are
    ``crashed``. Runs of other machines, and of live processes, are left alone."""
    runs = session.scalars(
        select(CrawlRun).where(
            CrawlRun.outcome == "running",
            CrawlRun.host == socket.gethostname(),
            CrawlRun.pid.is_not(None),
        )
    )
    closed = []
    for run in runs:
        assert run.pid is not None
        if _process_alive(run.pid):
            continue
        run.outcome = "crashed"
        run.finished_at = utcnow()
        run.error_text = (
            f"the crawl process (pid {run.pid}) ended without recording how the run ended "
            "(killed?); what it had stored is kept, the rest is fetched again"
        )
        closed.append(run.id)
    return closed


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
        return existing, StoreOutcome.UNCHANGED
    # An edit: the text it replaces becomes a version, with when it was current.
    existing.versions.append(
        ArticleVersion(
            title=existing.title,
            text=existing.text,
            content_hash=existing.content_hash,
            seen_from=existing.updated_at or existing.first_seen_at,
            seen_until=item.fetched_at,
        )
    )
    _apply(existing, item, content_hash)
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


@dataclass(frozen=True)
class KnownEntry:
    feed_meta_hash: str | None
    first_seen_at: datetime
    etag: str | None = None
    last_modified: str | None = None
    checked_at: datetime | None = None


def known_entries(session: Session, canonical_urls: list[str]) -> dict[str, KnownEntry]:
    """Which of these URLs are archived, with what feed metadata: one indexed query."""
    if not canonical_urls:
        return {}
    rows = session.execute(
        select(
            Article.canonical_url,
            Article.feed_meta_hash,
            Article.first_seen_at,
            Article.etag,
            Article.last_modified,
            Article.checked_at,
        ).where(Article.canonical_url.in_(canonical_urls))
    )
    return {
        url: KnownEntry(meta, seen, etag, lm, checked)
        for url, meta, seen, etag, lm, checked in rows
    }


def mark_seen(session: Session, canonical_urls: list[str], seen_at: datetime) -> None:
    """Entries still listed by their feed but not fetched again: seen all the same."""
    if canonical_urls:
        session.execute(
            update(Article)
            .where(Article.canonical_url.in_(canonical_urls), Article.last_seen_at < seen_at)
            .values(last_seen_at=seen_at)
        )


def mark_checked(session: Session, canonical_urls: list[str], checked_at: datetime) -> None:
    """Pages asked for again that answered 304: checked, unchanged."""
    if canonical_urls:
        session.execute(
            update(Article)
            .where(Article.canonical_url.in_(canonical_urls))
            .values(checked_at=checked_at)
        )


def fetch_state(session: Session, url: str) -> FetchState | None:
    return session.get(FetchState, url)


def save_fetch_state(
    session: Session,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    body_hash: str | None,
    entry_urls: list[str],
    checked_at: datetime,
    update_seconds: int | None = None,
) -> None:
    state = session.get(FetchState, url) or FetchState(url=url)
    state.etag, state.last_modified, state.body_hash = etag, last_modified, body_hash
    state.entry_urls = json.dumps(entry_urls)
    state.checked_at = checked_at
    state.update_seconds = update_seconds
    session.add(state)


@dataclass(frozen=True)
class RunCounts:
    pages: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: int = 0
    flagged: int = 0
    duplicate: int = 0
    undated: int = 0
    readings: int = 0


def finish_run(
    session: Session,
    run_id: int,
    *,
    outcome: str,
    finish_reason: str | None,
    counts: RunCounts,
    error_text: str | None,
    finished_at: datetime | None = None,
) -> None:
    run = session.get_one(CrawlRun, run_id)
    run.finished_at = finished_at or utcnow()
    run.outcome = outcome
    run.finish_reason = finish_reason
    run.pages = counts.pages
    run.articles_new = counts.new
    run.articles_updated = counts.updated
    run.articles_unchanged = counts.unchanged
    run.errors = counts.errors
    run.articles_flagged = counts.flagged
    run.articles_duplicate = counts.duplicate
    run.articles_undated = counts.undated
    run.readings_new = counts.readings
    run.error_text = error_text


def last_runs(session: Session) -> dict[str, CrawlRun]:
    """The newest crawl run of every source, by source name."""
    newest = (
        select(CrawlRun.source_id, func.max(CrawlRun.id).label("run_id"))
        .group_by(CrawlRun.source_id)
        .subquery()
    )
    rows = session.execute(
        select(SourceRow.name, CrawlRun)
        .join(newest, newest.c.run_id == CrawlRun.id)
        .join(SourceRow, SourceRow.id == CrawlRun.source_id)
    )
    return {name: run for name, run in rows}


def runs_by_id(session: Session, run_ids: list[int]) -> list[tuple[str, CrawlRun]]:
    rows = session.execute(
        select(SourceRow.name, CrawlRun)
        .join(SourceRow, SourceRow.id == CrawlRun.source_id)
        .where(CrawlRun.id.in_(run_ids))
        .order_by(CrawlRun.id)
    )
    return [(name, run) for name, run in rows]


def store_reading(session: Session, source_id: int, reading: ReadingLike) -> bool:
    """Store a counter reading unless the same value for the same date is stored.

    Returns True when a row was added. The unique constraint makes this safe
    against a concurrent writer storing the same reading.
    """
    same = select(CounterReading.id).where(
        CounterReading.source_id == source_id,
        CounterReading.metric == reading.metric,
        CounterReading.as_of == reading.as_of,
        CounterReading.value == reading.value,
    )
    if session.scalar(same) is not None:
        return False
    row = CounterReading(
        source_id=source_id,
        metric=reading.metric,
        label=reading.label,
        value=reading.value,
        as_of=reading.as_of,
        fetched_at=reading.fetched_at,
        url=reading.url,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def counter_series(
    session: Session,
    metric: str | None = None,
    since: date | None = None,
    source: str | None = None,
) -> list[tuple[CounterReading, str]]:
    """Counter readings with their source's name, oldest first, optionally filtered."""
    query = select(CounterReading, SourceRow.name).join(
        SourceRow, SourceRow.id == CounterReading.source_id
    )
    if metric is not None:
        query = query.where(CounterReading.metric == metric)
    if since is not None:
        query = query.where(CounterReading.as_of >= since)
    if source is not None:
        query = query.where(SourceRow.name == source)
    query = query.order_by(CounterReading.as_of, CounterReading.metric, CounterReading.id)
    return [(row, name) for row, name in session.execute(query)]


def counter_metrics(session: Session) -> list[str]:
    """Every metric that has at least one reading."""
    return list(session.scalars(select(CounterReading.metric).distinct().order_by("metric")))
