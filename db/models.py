"""The archive's tables, as SQLAlchemy 2 typed models.

The schema itself is owned by the Alembic migrations in ``db/migrations``;
these models must describe the same tables (a test compares them).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.types import UTCDateTime, utcnow


class Base(DeclarativeBase):
    pass


class SourceRow(Base):
    """A configured source as the archive knows it (mirrors ``sources.toml``)."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The health state last announced by an alert (healthy | unhealthy), so a
    # change is announced once, when it happens.
    health_state: Mapped[str | None] = mapped_column(String(16))

    runs: Mapped[list[CrawlRun]] = relationship(back_populates="source")


class CrawlRun(Base):
    """One crawl of one source: when, how it ended, what it found."""

    __tablename__ = "crawl_runs"
    __table_args__ = (Index("ix_crawl_runs_source_started", "source_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # running | ok | partial | failed | interrupted | timeout | crashed
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    finish_reason: Mapped[str | None] = mapped_column(String(64))
    pages: Mapped[int] = mapped_column(Integer, default=0)
    articles_new: Mapped[int] = mapped_column(Integer, default=0)
    articles_updated: Mapped[int] = mapped_column(Integer, default=0)
    articles_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    articles_flagged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # New articles that joined an already archived story (syndicated copies).
    articles_duplicate: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error_text: Mapped[str | None] = mapped_column(Text)
    # Articles stored without a readable date (given the fetch time instead).
    articles_undated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Counter readings (figures) stored by this run.
    readings_new: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the run's newly flagged stories were queued as alerts (None: not yet).
    alerts_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The process running the crawl (and its machine): a run still "running"
    # whose process is gone was killed, and the next crawl closes it.
    pid: Mapped[int | None]
    host: Mapped[str | None] = mapped_column(String(255))

    source: Mapped[SourceRow] = relationship(back_populates="runs")


class StoryCluster(Base):
    """One story: every article (any outlet, any URL) that reports it, in one language.

    The same story in other languages is a story of its own, linked as a
    *language version*: every version of a group names the group's first story
    in ``language_group_id`` (that story names itself).
    """

    __tablename__ = "story_clusters"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_article_id: Mapped[int | None]
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    language_group_id: Mapped[int | None] = mapped_column(index=True)
    # How much language-independent evidence (numbers, dates, names) the link had.
    language_score: Mapped[float | None] = mapped_column(Float)

    members: Mapped[list[Article]] = relationship(back_populates="cluster", order_by="Article.id")


class CaptureColumns:
    """Where a text was archived as fetched: a record in a WARC file (see
    spiders/middlewares/capture.py), written only once that record was flushed."""

    capture_file: Mapped[str | None] = mapped_column(Text)
    capture_offset: Mapped[int | None] = mapped_column(BigInteger)
    capture_length: Mapped[int | None] = mapped_column(Integer)
    capture_digest: Mapped[str | None] = mapped_column(String(80))
    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Article(CaptureColumns, Base):
    """One archived article: the latest text seen at its canonical URL."""

    __tablename__ = "articles"
    __table_args__ = (
        Index("ix_articles_source_published", "source_id", "published_at"),
        Index("ix_articles_source_guid", "source_id", "feed_guid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)  # as first found (feed link), never rewritten
    canonical_url: Mapped[str] = mapped_column(Text, unique=True)
    final_url: Mapped[str | None] = mapped_column(Text)  # after redirects
    page_canonical_url: Mapped[str | None] = mapped_column(Text)  # <link rel="canonical">
    feed_guid: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Where the date came from: page-meta | selector | feed | page-text | fetch-time
    date_origin: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Flag state under the taxonomy version that produced it.
    flagged: Mapped[bool] = mapped_column(default=False, server_default=false(), index=True)
    flag_score: Mapped[float | None] = mapped_column(Float)
    flag_categories: Mapped[str | None] = mapped_column(Text)  # comma-separated ids
    keywords_version: Mapped[str | None] = mapped_column(String(32))
    flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Deduplication: the story this article belongs to, and why.
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("story_clusters.id", ondelete="SET NULL", name="fk_articles_cluster"),
        index=True,
    )
    minhash: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Hash of the feed entry's title and summary (not its date, which some
    # sites change on every refresh): unchanged means no need to fetch again.
    feed_meta_hash: Mapped[str | None] = mapped_column(String(64))
    # The page's validators, sent back on re-checks (conditional GET).
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    # When its page was last asked for (fetched, or answered 304): recent
    # articles are asked again, but not on every crawl.
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duplicate_of: Mapped[int | None]  # the archived article it was matched to
    similarity: Mapped[float | None] = mapped_column(Float)  # 1.0 = same text
    # Kind-specific facts as JSON, e.g. a Telegram post's views, forwarded-from
    # and link preview.
    details: Mapped[str | None] = mapped_column(Text)
    # What asking the source again last said (deportwatch verify): alive |
    # changed | removed, when it was asked, and since when it is gone.
    source_state: Mapped[str | None] = mapped_column(String(16))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    source: Mapped[SourceRow] = relationship()
    cluster: Mapped[StoryCluster | None] = relationship(back_populates="members")
    versions: Mapped[list[ArticleVersion]] = relationship(
        cascade="all, delete-orphan", order_by="ArticleVersion.id"
    )
    matches: Mapped[list[FlagMatch]] = relationship(
        back_populates="article", cascade="all, delete-orphan", order_by="FlagMatch.id"
    )


class FlagMatch(Base):
    """One piece of evidence for a flag: which rule matched what, where."""

    __tablename__ = "flag_matches"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    category: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(64))
    term: Mapped[str] = mapped_column(Text)
    field: Mapped[str] = mapped_column(String(8))  # title | text
    start: Mapped[int]
    end: Mapped[int]
    snippet: Mapped[str] = mapped_column(Text)
    weight: Mapped[float] = mapped_column(Float)
    # The match's frame (pipeline.matcher.Frame.record): verdict, reason, and each
    # dimension's answer with the words that gave it. None before keywords 2026.12.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    article: Mapped[Article] = relationship(back_populates="matches")


class ArticleVersion(CaptureColumns, Base):
    """An earlier text of an edited article, with the time it was current."""

    __tablename__ = "article_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    seen_from: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_until: Mapped[datetime] = mapped_column(UTCDateTime)


class LshBand(Base):
    """One LSH band key of an article's MinHash: articles sharing a key are
    near-duplicate candidates, found with one indexed lookup."""

    __tablename__ = "lsh_bands"

    band_key: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class FetchState(Base):
    """What a feed URL answered last time a crawl of it ended well (conditional GET)."""

    __tablename__ = "fetch_state"

    url: Mapped[str] = mapped_column(Text, primary_key=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    body_hash: Mapped[str | None] = mapped_column(String(64))
    # JSON list of the canonical URLs the feed listed: a 304 means they were all
    # listed again, so they are marked seen without fetching anything.
    entry_urls: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # How often the feed says it changes (sy:updatePeriod / sy:updateFrequency).
    update_seconds: Mapped[int | None]


class CounterReading(Base):
    """One published total (e.g. children deported) as a source showed it on a date.

    Aggregate figures only: the pages that show them also show children's
    names and photos, which are never read into the archive.
    """

    __tablename__ = "counter_readings"
    __table_args__ = (
        UniqueConstraint("source_id", "metric", "as_of", "value", name="uq_counter_readings"),
        Index("ix_counter_readings_metric_as_of", "metric", "as_of"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(64))  # deported | returned | killed | ...
    label: Mapped[str] = mapped_column(Text)  # as the page words it
    value: Mapped[int] = mapped_column(BigInteger)
    as_of: Mapped[date] = mapped_column(Date)  # the page's own date, else the fetch day (Kyiv)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    url: Mapped[str] = mapped_column(Text)

    source: Mapped[SourceRow] = relationship()


class Alert(Base):
    """A message to send: a newly flagged story or a change in a source's health.

    ``key`` makes an alert unique (``story:<cluster id>``), so a story is
    announced once however many runs and processes see it.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # story | health
    key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[str] = mapped_column(Text)  # JSON: what the message says
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertDelivery(Base):
    """An alert delivered to one target; targets without a row are retried."""

    __tablename__ = "alert_deliveries"

    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    # A hash of the target's URL: the URL itself holds tokens and passwords.
    target: Mapped[str] = mapped_column(String(32), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
