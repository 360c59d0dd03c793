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
    Double,
    Select,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    union_all,
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
# PostgreSQL: how many full vectors (out of line, costly to read) a question may
# read to show its first rows exactly as ``ts_rank`` on the full vector orders
# them; a question that needs more reads the best ``CANDIDATES`` by lead rank
# only. BENCHMARKS.md has the cost and the agreement.
EXACT_UP_TO = 10_000
CANDIDATES = 1000
# ts_rank of an AND whose words are never both in the text (a float4).
_NO_PAIR = 1e-20
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


def _ranked(
    session: Session,
    filters: Filters,
    candidates: int | None,
    exact: int = 50,
    exact_up_to: int = EXACT_UP_TO,
) -> AnySelect:
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
    pg_rank: Any = -func.ts_rank(_VECTOR, tsquery)  # every match ranked on its full vector
    if candidates is not None and _ranks_alike(query):
        # Unless the database reads a word as several (then a phrase, with pairs):
        # a word, and an operand, a NOT and an AND for each excluded word.
        alike = func.numnode(tsquery) == 1 + 3 * len(query.excluded)
        pg_rank = case((alike, literal(-_NO_PAIR, Double)), else_=pg_rank)
    elif candidates is not None:
        rank_on = _pg_bounded if _bounded(query) else _pg_every_match
        return rank_on(
            query, filters, candidates=candidates, exact=max(exact, 1), exact_up_to=exact_up_to
        )
    stmt = select(Article.id, pg_rank.label("rank")).where(_VECTOR.op("@@")(tsquery))
    return _filtered(stmt, filters).order_by(pg_rank, Article.id)


def _ranks_alike(query: Query) -> bool:
    """Whether ``ts_rank`` gives every match the same rank (then ordered by id):
    one word (or prefix) and excluded words. The query is an AND, ranked by
    pairs of its words near each other, and a match holds none of the excluded
    ones: no pair, the rank of no pair (1e-20) for all, whatever the text."""
    [first, *others] = query.groups
    return (
        not others
        and len(first) == 1
        and len(first[0].words) == 1
        and bool(query.excluded)
        and all(len(term.words) == 1 for term in query.excluded)
    )


def _bounded(query: Query) -> bool:
    """Whether ``ts_rank`` of the query is bounded by the lead rank (``_rank_bound``):
    one word, or words and phrases joined by OR; no prefix, no exclusion. With an
    OR at the top (or a lone lexeme) ``ts_rank`` sums over the query's lexemes,
    and the lead holds the first occurrences of each. An AND or a phrase at the
    top ranks pairs of words by their distance anywhere in the text, and a
    prefix sums over every lexeme it matches: the lead bounds neither."""
    [group, *others] = query.groups
    return (
        not others
        and not query.excluded
        and not any(term.prefix for term in group)
        and (len(group) > 1 or len(group[0].words) == 1)
    )


def _rank_bound(lead_rank: Any, tsquery: Any, *, alternatives: bool) -> Any:
    """An upper bound of ``ts_rank`` on the full vector, from the rank on the lead,
    for a ``_bounded`` query (``alternatives``: terms joined by OR).

    ``ts_rank`` (no normalisation) of an OR gives a lexeme with occurrences at weights
    w_1, w_2, ... (in text order) (w_max + sum(w_j / j^2) - w_max / j_max^2) / (pi^2/6),
    and averages that over the query's lexemes. The full vector adds to the
    lead's occurrences only later ones of weight B (0.4): the title (A, 1.0) is
    all in the lead. So a lexeme the lead holds in its title gains less than
    0.4 * (pi^2/6 - 1) / (pi^2/6) < 0.16 past the lead; one the title lacks has
    only B occurrences and stays under 0.4 (and ranks at most 0.4 on the lead,
    where a title occurrence alone ranks 1 / (pi^2/6) = 0.61). For one lexeme:
    under 0.4 without a title hit, else under the lead rank + 0.16; for several,
    under the lead rank + 0.4. A little is added for rounding (ts_rank is a float4).
    A word the database reads as several lexemes is a phrase: no bound (infinite).
    """
    lead = cast(lead_rank, Double)
    one = case((lead >= 0.5, lead + 0.16), else_=literal(0.4, Double))
    several = lead + 0.4 if alternatives else literal(float("inf"), Double)
    return case((func.numnode(tsquery) == 1, one), else_=several) + 1e-4


def _pg_bounded(
    query: Query, filters: Filters, *, candidates: int, exact: int, exact_up_to: int
) -> AnySelect:
    """PostgreSQL, a question ``_rank_bound`` bounds: the first ``exact`` rows exactly
    as ``ts_rank`` on the full vector orders every match, reading few full vectors.

    The full vector is out of line (TOAST): reading it for every match made broad
    questions slow. Every match is ranked on its lead vector (in the row). The
    best ``exact`` of them by that rank are ranked on the full vector; the
    ``exact``-th best full rank among them is a threshold no other match can
    beat unless its bound exceeds it, and those are ranked on the full vector
    too. When more than ``exact_up_to`` would have to be, only the best
    ``candidates`` by lead rank are (the first rows are then not certain).
    Those ranked on the full vector come first, by that rank, the others
    follow by lead rank: a total order, so pages follow on.
    """
    tsquery = _tsquery(query)
    lead_rank = func.ts_rank(_LEAD, tsquery)
    place = func.row_number().over(order_by=(lead_rank.desc(), Article.id))
    matches = _filtered(
        select(
            Article.id,
            lead_rank.label("lead_rank"),
            place.label("place"),
            # A reference to the stored value: read only where ranked below.
            _VECTOR.label("vector"),
        ).where(_VECTOR.op("@@")(tsquery)),
        filters,
    ).cte("matches")
    seed = (
        select(matches.c.id, func.ts_rank(matches.c.vector, tsquery).label("full"))
        .where(matches.c.place <= exact)
        .cte("seed")
    )
    # The exact-th best full rank of the seed (none if it has fewer rows: then
    # it holds every match).
    threshold = func.coalesce(
        select(seed.c.full)
        .order_by(seed.c.full.desc())
        .offset(exact - 1)
        .limit(1)
        .scalar_subquery(),
        -1.0,
    )
    alternatives = len(query.groups[0]) > 1
    may_beat = _rank_bound(matches.c.lead_rank, tsquery, alternatives=alternatives) > threshold
    # Counted once (a CTE), however often the condition below names it.
    counted = select(func.count().label("n")).select_from(matches).where(may_beat).cte("needed")
    needed = select(counted.c.n).scalar_subquery()
    read = or_(
        and_(needed <= exact_up_to, may_beat),
        and_(needed > exact_up_to, matches.c.place <= candidates),
    )
    rest = (
        select(
            matches.c.id,
            case((read, -func.ts_rank(matches.c.vector, tsquery))).label("full"),
            (-matches.c.lead_rank).label("lead"),
        )
        .where(matches.c.place > exact)
        .subquery("rest")
    )
    ranked = union_all(
        select(seed.c.id, (-seed.c.full).label("rank"), literal(0).label("tier")),
        select(
            rest.c.id,
            func.coalesce(rest.c.full, rest.c.lead).label("rank"),
            case((rest.c.full.is_(None), 1), else_=0).label("tier"),
        ),
    ).subquery("ranked")
    return select(ranked.c.id, ranked.c.rank).order_by(ranked.c.tier, ranked.c.rank, ranked.c.id)


def _pg_every_match(
    query: Query, filters: Filters, *, candidates: int, exact: int, exact_up_to: int
) -> AnySelect:
    """PostgreSQL, a question the lead does not bound (AND, prefixes): every match
    ranked on its full vector when there are at most ``exact_up_to``, exactly as
    ``candidates=None``; else every match ranked on its lead vector and the best
    ``candidates`` (at least ``exact``) of them again on the full vector, shown
    first. The lead vectors are read only then, by the row's address (ctid).
    """
    tsquery = _tsquery(query)
    matches = _filtered(
        select(
            Article.id,
            literal_column("articles.ctid").label("tid"),
            # A reference to the stored value: read only where ranked below.
            _VECTOR.label("vector"),
            func.count().over().label("total"),
        ).where(_VECTOR.op("@@")(tsquery)),
        filters,
    ).cte("matches")
    every = select(
        matches.c.id,
        (-func.ts_rank(matches.c.vector, tsquery)).label("rank"),
        literal(0).label("tier"),
    ).where(matches.c.total <= exact_up_to)
    row = Article.__table__.alias("lead_row")
    lead_rank = func.ts_rank(literal_column("lead_row.lead_vector"), tsquery)
    leads = (
        select(
            matches.c.id,
            lead_rank.label("lead_rank"),
            func.row_number().over(order_by=(lead_rank.desc(), matches.c.id)).label("place"),
            matches.c.vector,
        )
        .select_from(matches.join(row, literal_column("lead_row.ctid") == matches.c.tid))
        .where(matches.c.total > exact_up_to)
        .subquery("leads")
    )
    read = leads.c.place <= max(candidates, exact)
    best_leads = select(
        leads.c.id,
        case((read, -func.ts_rank(leads.c.vector, tsquery)), else_=-leads.c.lead_rank).label(
            "rank"
        ),
        case((read, 0), else_=1).label("tier"),
    )
    ranked = union_all(every, best_leads).subquery("ranked")
    return select(ranked.c.id, ranked.c.rank).order_by(ranked.c.tier, ranked.c.rank, ranked.c.id)


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
    exact_up_to: int = EXACT_UP_TO,
) -> list[Hit]:
    """The best matches, best first; with ``stories``, one hit per story (its best copy).

    PostgreSQL: the rows asked for are ranked exactly as ``ts_rank`` on the full
    vector ranks every match, if that takes at most ``exact_up_to`` full
    vectors; else the best ``candidates`` on the lead vector are ranked again on
    their full vector. ``candidates=None`` ranks every match on it (slow on
    broad questions; the benchmark's reference).
    """
    wanted = limit + offset
    # The first batch of rows _best_per_story reads is ranked exactly.
    exact = _first_batch(wanted) if stories else wanted
    ranked = _ranked(session, filters, candidates, exact, exact_up_to)
    if stories:
        rows = _best_per_story(session, ranked, wanted)[offset:]
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


def _first_batch(wanted: int) -> int:
    """How many rows _best_per_story reads first: room for copies of a story."""
    return max(wanted * 3, 50)


def _best_per_story(session: Session, ranked: AnySelect, wanted: int) -> list[Row[Any]]:
    """The first ``wanted`` stories in rank order, fetching more rows as copies are skipped."""
    chosen: list[Row[Any]] = []
    seen: set[int] = set()
    fetched, batch = 0, _first_batch(wanted)
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
