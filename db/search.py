"""One search over the archive, on SQLite (FTS5) and PostgreSQL (tsvector) alike.

The indexes are made by migrations 0007 and 0012 and are not part of the
models: ``SEARCH_INDEX_NAMES`` lists them for the test that compares models
with the migrated schema. Callers pass a parsed ``Query`` (``db.query``) and filters;
which database answers is this module's business only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import (
    Select,
    and_,
    case,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.expression import ColumnClause, ColumnElement

from db.models import Article, SourceRow, StoryCluster
from db.query import Query, fts5_expression, tsquery_expression

AnySelect: TypeAlias = Select[*tuple[Any, ...]]
SEARCH_INDEX_NAMES = frozenset(
    {
        "articles_fts",
        "articles_fts_config",
        "articles_fts_data",
        "articles_fts_docsize",
        "articles_fts_idx",
        "search_vector",
        "lead_vector",
        "ix_articles_search",
    }
)
HIGHLIGHT = "**"  # around each hit in a snippet, as flag-match snippets have it
SNIPPET_WORDS = 16
_FTS = table("articles_fts", column("rowid"))
_FTS_REF: ColumnClause[Any] = literal_column("articles_fts")
_SIMPLE: ColumnClause[Any] = literal_column("'simple'::regconfig")
_VECTOR: ColumnClause[Any] = literal_column("articles.search_vector")
_LEAD: ColumnClause[Any] = literal_column("articles.lead_vector")
# PostgreSQL: how many matches, best first on the lead vector, are ranked again
# on their full vector. Every question with fewer matches is ranked exactly as
# on the full vector alone; BENCHMARKS.md has the cost and the agreement.
CANDIDATES = 1000
# bm25 weights: a hit in the title counts ten times a hit in the body.
_TITLE_WEIGHT, _TEXT_WEIGHT = 10.0, 1.0


@dataclass(frozen=True)
class Filters:
    """What to look for; every filter given must hold (categories: any of them)."""

    query: Query | None = None
    flagged: bool = False
    categories: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class StoryMember:
    """One copy of a story: which outlet carried it, and where."""

    id: int
    source: str
    url: str
    language: str | None = None


@dataclass
class Hit:
    article: Article
    rank: float | None
    snippet: str
    story_sources: list[str] = field(default_factory=list)  # every outlet of its story
    story_size: int = 1
    members: list[StoryMember] = field(default_factory=list)  # every copy, first seen first
    # The story across languages: its language versions' group (else its cluster)
    # and the languages it was reported in.
    story_id: int | None = None
    languages: list[str] = field(default_factory=list)


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _fts_match(query: Query) -> ColumnElement[bool]:
    """SQLite: rows of articles_fts matching the query."""
    return _FTS_REF.op("MATCH")(fts5_expression(query))


def _tsquery(query: Query) -> Any:
    """PostgreSQL: the query as a tsquery of the 'simple' configuration."""
    return func.to_tsquery(_SIMPLE, tsquery_expression(query))


def article_date() -> Any:
    """When an article was published, else when it was first seen."""
    return func.coalesce(Article.published_at, Article.first_seen_at)


def _filtered(stmt: AnySelect, filters: Filters) -> AnySelect:
    conditions: list[ColumnElement[bool]] = []
    if filters.flagged or filters.categories:
        conditions.append(Article.flagged.is_(True))
    if filters.categories:
        padded = literal(",") + func.coalesce(Article.flag_categories, "") + literal(",")
        conditions.append(or_(*(padded.like(f"%,{c},%") for c in filters.categories)))
    if filters.sources:
        ids = select(SourceRow.id).where(SourceRow.name.in_(filters.sources))
        conditions.append(Article.source_id.in_(ids))
    if filters.languages:
        conditions.append(Article.language.in_(filters.languages))
    if filters.since is not None:
        conditions.append(article_date() >= filters.since)
    if filters.until is not None:
        conditions.append(article_date() < filters.until)
    return stmt.where(and_(*conditions)) if conditions else stmt


def _ranked(session: Session, filters: Filters, candidates: int | None) -> AnySelect:
    """Matching ids with their rank (smaller is better), best first."""
    query = filters.query
    if query is None:
        stmt = select(Article.id, literal(None).label("rank"))
        return _filtered(stmt, filters).order_by(article_date().desc(), Article.id.desc())
    if _sqlite(session):
        # No snippet here: SQLite would build one for every match before sorting.
        rank = func.bm25(_FTS_REF, _TITLE_WEIGHT, _TEXT_WEIGHT)
        stmt = (
            select(Article.id, rank.label("rank"))
            .select_from(_FTS.join(Article, Article.id == _FTS.c.rowid))
            .where(_fts_match(query))
        )
        return _filtered(stmt, filters).order_by(rank, Article.id)
    tsquery = _tsquery(query)
    if candidates is None:  # every match ranked on its full vector
        pg_rank = -func.ts_rank(_VECTOR, tsquery)
        stmt = select(Article.id, pg_rank.label("rank")).where(_VECTOR.op("@@")(tsquery))
        return _filtered(stmt, filters).order_by(pg_rank, Article.id)
    return _pg_ranked(tsquery, filters, candidates)


def _pg_ranked(tsquery: Any, filters: Filters, candidates: int) -> AnySelect:
    """PostgreSQL: every match ranked on its lead vector (in the row), the best
    ``candidates`` of them ranked again on the full vector and shown first.

    The full vector is out of line (TOAST): reading it for every match made broad
    questions slow. The order is total (full rank of the candidates, then the
    others by lead rank), so pages past the candidates follow on.
    """
    lead_rank = func.ts_rank(_LEAD, tsquery)
    place = func.row_number().over(order_by=(lead_rank.desc(), Article.id))
    matches = _filtered(
        select(
            Article.id,
            lead_rank.label("lead_rank"),
            place.label("place"),
            # A reference to the stored value: read only for the candidates below.
            _VECTOR.label("vector"),
        ).where(_VECTOR.op("@@")(tsquery)),
        filters,
    ).subquery("matches")
    candidate = matches.c.place <= candidates
    rank = case((candidate, -func.ts_rank(matches.c.vector, tsquery)), else_=-matches.c.lead_rank)
    return select(matches.c.id.label("id"), rank.label("rank")).order_by(
        case((candidate, 0), else_=1), rank, matches.c.id
    )


def _snippets(session: Session, query: Query, ids: list[int]) -> dict[int, str]:
    """Snippets around the hits, built for the shown rows only (they are costly)."""
    if _sqlite(session):
        snippet = func.snippet(_FTS_REF, -1, HIGHLIGHT, HIGHLIGHT, "…", SNIPPET_WORDS)
        rows = session.execute(
            select(_FTS.c.rowid, snippet).where(_fts_match(query), _FTS.c.rowid.in_(ids))
        )
        return {article_id: text for article_id, text in rows}
    tsquery = _tsquery(query)
    options = (
        f"StartSel={HIGHLIGHT}, StopSel={HIGHLIGHT}, MaxWords={SNIPPET_WORDS * 2}, "
        f"MinWords={SNIPPET_WORDS // 2}, MaxFragments=1, FragmentDelimiter=…"
    )
    rows = session.execute(
        select(
            Article.id,
            func.ts_headline(_SIMPLE, Article.title + " \n" + Article.text, tsquery, options),
        ).where(Article.id.in_(ids))
    )
    return {article_id: text for article_id, text in rows}


def _story_key(row: Row[Any], clusters: dict[int, int | None]) -> int:
    cluster = clusters.get(row.id)
    return cluster if cluster is not None else -row.id


def story_ids(session: Session, article_ids: list[int]) -> dict[int, int | None]:
    """Each article's story across languages: its language group, else its cluster."""
    if not article_ids:
        return {}
    rows = session.execute(
        select(Article.id, func.coalesce(StoryCluster.language_group_id, Article.cluster_id))
        .outerjoin(StoryCluster, StoryCluster.id == Article.cluster_id)
        .where(Article.id.in_(article_ids))
    )
    return {article_id: story for article_id, story in rows}


def story_clusters(ids: set[int]) -> Any:
    """The clusters of stories across languages (a group's, or the cluster itself)."""
    return select(StoryCluster.id).where(
        StoryCluster.id.in_(ids) | StoryCluster.language_group_id.in_(ids)
    )


def search(
    session: Session,
    filters: Filters,
    limit: int = 50,
    offset: int = 0,
    stories: bool = True,
    *,
    candidates: int | None = CANDIDATES,
) -> list[Hit]:
    """The best matches, best first; with ``stories``, one hit per story (its best copy).

    ``candidates`` (PostgreSQL): how many of the best matches on the lead vector
    are ranked again on their full vector; None ranks every match on it (slow
    on broad questions; the benchmark's reference).
    """
    ranked = _ranked(session, filters, candidates)
    if stories:
        rows = _best_per_story(session, ranked, limit + offset)[offset:]
    else:
        rows = list(session.execute(ranked.limit(limit).offset(offset)))
    ids = [row.id for row in rows]
    articles = {
        a.id: a
        for a in session.scalars(
            select(Article)
            .where(Article.id.in_(ids))
            .options(
                selectinload(Article.source),
                selectinload(Article.matches),
                selectinload(Article.cluster),
            )
        )
    }
    snippets = _snippets(session, filters.query, ids) if filters.query is not None and ids else {}
    hits = []
    for row in rows:
        article = articles[row.id]
        snippet = snippets.get(row.id) or _opening(article.text)
        hits.append(Hit(article, row.rank, snippet.replace("\n", " ")))
    _add_story_sources(session, hits)
    return hits


def _best_per_story(session: Session, ranked: AnySelect, wanted: int) -> list[Row[Any]]:
    """The first ``wanted`` stories in rank order, fetching more rows as copies are skipped."""
    chosen: list[Row[Any]] = []
    seen: set[int] = set()
    fetched, batch = 0, max(wanted * 3, 50)
    while len(chosen) < wanted:
        rows = list(session.execute(ranked.limit(batch).offset(fetched)))
        clusters = story_ids(session, [r.id for r in rows])
        for row in rows:
            key = _story_key(row, clusters)
            if key not in seen:
                seen.add(key)
                chosen.append(row)
        fetched += len(rows)
        if len(rows) < batch:
            break
        batch *= 2
    return chosen[:wanted]


def _add_story_sources(session: Session, hits: list[Hit]) -> None:
    """Every copy of each hit's story, its language versions' copies included."""
    stories = story_ids(session, [h.article.id for h in hits])
    wanted = {s for s in stories.values() if s is not None}
    members: dict[int, list[StoryMember]] = {}
    if wanted:
        story = func.coalesce(StoryCluster.language_group_id, StoryCluster.id)
        rows = session.execute(
            select(story, Article.id, SourceRow.name, Article.url, Article.language)
            .join(SourceRow, SourceRow.id == Article.source_id)
            .join(StoryCluster, StoryCluster.id == Article.cluster_id)
            .where(Article.cluster_id.in_(story_clusters(wanted)))
            .order_by(Article.id)
        )
        for story_id, article_id, name, url, language in rows:
            members.setdefault(story_id, []).append(StoryMember(article_id, name, url, language))
    for hit in hits:
        a = hit.article
        hit.story_id = stories.get(a.id)
        own = [StoryMember(a.id, a.source.name, a.url, a.language)]
        hit.members = members.get(hit.story_id, own) if hit.story_id is not None else own
        hit.story_sources = list(dict.fromkeys(m.source for m in hit.members))
        hit.story_size = len(hit.members)
        hit.languages = sorted({m.language for m in hit.members if m.language})


def _opening(text: str, words: int = SNIPPET_WORDS * 2) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


def _match_condition(session: Session, query: Query) -> Any:
    """Articles matching ``query``, as a WHERE condition (no rank, no snippet)."""
    if _sqlite(session):
        matching = select(_FTS.c.rowid).where(_fts_match(query))
        return Article.id.in_(matching)
    return _VECTOR.op("@@")(_tsquery(query))


def iter_matches(session: Session, filters: Filters, batch: int = 500) -> Iterator[Row[Any]]:
    """Every matching article as a row of columns (and its source's name), in id order.

    Read in batches of ids (keyset paging), so memory stays flat however many
    rows match, on both databases.
    """
    ids = _filtered(select(Article.id), filters)
    if filters.query is not None:
        ids = ids.where(_match_condition(session, filters.query))
    columns = [
        *Article.__table__.c,
        SourceRow.name.label("source_name"),
        func.coalesce(StoryCluster.language_group_id, Article.cluster_id).label("story_id"),
    ]
    last = 0
    while True:
        page = list(session.scalars(ids.where(Article.id > last).order_by(Article.id).limit(batch)))
        if not page:
            return
        rows = session.execute(
            select(*columns)
            .join(SourceRow, SourceRow.id == Article.source_id)
            .outerjoin(StoryCluster, StoryCluster.id == Article.cluster_id)
            .where(Article.id.in_(page))
            .order_by(Article.id)
        )
        yield from rows
        last = page[-1]
