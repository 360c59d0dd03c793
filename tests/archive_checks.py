"""What an archive holds, compared across archives: the crash and two-writer tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from warcio.archiveiterator import ArchiveIterator

from db.engine import make_engine, make_sessionmaker
from db.models import Article, ArticleVersion, CrawlRun, FlagMatch, LshBand, StoryCluster
from deportwatch.archive.captures import capture_ref, read_capture


def archive_state(session: Session) -> dict[str, Any]:
    """Everything a user can see of the archive, keyed by URL, not by row id."""
    url_of: dict[int, str] = {
        article_id: url
        for article_id, url in session.execute(select(Article.id, Article.canonical_url))
    }
    articles = {
        a.canonical_url: [
            a.title,
            a.content_hash,
            a.language,
            a.published_at.isoformat() if a.published_at else None,
            a.date_origin,
            a.flagged,
            a.flag_categories,
            a.keywords_version,
            url_of.get(a.duplicate_of) if a.duplicate_of else None,
        ]
        for a in session.scalars(select(Article))
    }
    matches: dict[str, list[list[object]]] = {}
    for m in session.scalars(select(FlagMatch)):
        matches.setdefault(url_of[m.article_id], []).append(
            [m.category, m.rule, m.term, m.field, m.start, m.end]
        )
    stories: dict[int, list[str]] = {}
    for article_id, cluster_id in session.execute(select(Article.id, Article.cluster_id)):
        stories.setdefault(cluster_id, []).append(url_of[article_id])
    bands = {
        article_id: n
        for article_id, n in session.execute(
            select(LshBand.article_id, func.count()).group_by(LshBand.article_id)
        )
    }
    return {
        "articles": articles,
        "matches": {url: sorted(ms, key=str) for url, ms in matches.items()},
        "stories": sorted(sorted(members) for members in stories.values()),
        "bands": {url_of[a]: n for a, n in bands.items()},
        "versions": session.scalar(select(func.count()).select_from(ArticleVersion)),
    }


def orphans(session: Session) -> dict[str, int]:
    """Rows that belong to nothing (each must be zero)."""

    def count(query: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)

    articles = select(Article.id)
    members = select(Article.cluster_id).where(Article.cluster_id.is_not(None))
    return {
        "flag matches without an article": count(
            select(FlagMatch.id).where(FlagMatch.article_id.not_in(articles))
        ),
        "versions without an article": count(
            select(ArticleVersion.id).where(ArticleVersion.article_id.not_in(articles))
        ),
        "band rows without an article": count(
            select(LshBand.article_id).where(LshBand.article_id.not_in(articles))
        ),
        "articles without a story": count(select(Article.id).where(Article.cluster_id.is_(None))),
        "stories without an article": count(
            select(StoryCluster.id).where(StoryCluster.id.not_in(members))
        ),
        "flagged articles without evidence": count(
            select(Article.id).where(
                Article.flagged.is_(True), Article.id.not_in(select(FlagMatch.article_id))
            )
        ),
    }


def read(database_url: str) -> tuple[dict[str, Any], dict[str, int], list[CrawlRun]]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        state, lonely = archive_state(session), orphans(session)
        runs = list(session.scalars(select(CrawlRun).order_by(CrawlRun.id)))
    engine.dispose()
    return state, lonely, runs


def capture_problems(database_url: str, warc_dir: Path) -> tuple[int, list[str]]:
    """Every WARC record that is complete reads back with its digests checked, and
    every link in the archive leads to such a record with the digest it names.
    Returns the number of links and what is wrong (nothing, when all is well).
    A record a kill cut short at the end of a file is not counted: nothing links to it."""
    problems: list[str] = []
    complete: set[tuple[str, int]] = set()
    for path in sorted(warc_dir.glob("*.warc.gz")) if warc_dir.is_dir() else []:
        with path.open("rb") as stream:
            iterator = ArchiveIterator(stream, check_digests=True)
            try:
                for record in iterator:
                    if record.rec_type in ("response", "revisit"):
                        complete.add((path.name, iterator.get_record_offset()))
                    record.content_stream().read()
            except Exception:  # noqa: S112 -- a tail cut by a kill: no link may point there
                continue
    engine = make_engine(database_url)
    links = 0
    with make_sessionmaker(engine)() as session:
        for model in (Article, ArticleVersion):
            for row in session.scalars(select(model).where(model.capture_file.is_not(None))):
                links += 1
                ref = capture_ref(row)
                assert ref is not None
                if (ref.file, ref.offset) not in complete:
                    problems.append(f"{model.__name__} {row.id}: no complete record at {ref}")
                    continue
                page = read_capture(warc_dir, ref)
                if page.digest != ref.digest:
                    problems.append(
                        f"{model.__name__} {row.id}: digest {page.digest} != {ref.digest}"
                    )
    engine.dispose()
    return links, problems
