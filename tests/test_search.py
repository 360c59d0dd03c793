"""Full-text search, filters, exports: on SQLite (FTS5) and PostgreSQL (tsvector) alike."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.search_latency import articles, fill
from db.models import Article
from db.query import QueryError, fts5_expression, parse_query, tsquery_expression
from db.repository.runs import ensure_source
from db.search import Filters, _bounded, _rank_bound, _tsquery, search
from deportwatch.cli.app import app
from tests.conftest import REPO
from tests.corpus import Corpus
from tests.helpers import DEPORTWATCH

runner = CliRunner()
HOSTILE = 'Report <script>alert("x")</script> & ]]> "quoted", comma\x01\nline two'


def ids(session: Session, query: str | None = None, **filters: object) -> list[int]:
    stories = bool(filters.pop("stories", False))
    found = search(
        session,
        Filters(query=parse_query(query) if query else None, **filters),  # type: ignore[arg-type]
        limit=50,
        stories=stories,
    )
    return sorted(h.article.id for h in found)


def test_phrases_or_exclusion_and_prefixes_in_latin_and_cyrillic(
    session: Session, corpus: dict[str, Article]
) -> None:
    k, c, s, camp, p = (corpus[n].id for n in ("kherson", "copy", "skadovsk", "camp", "power"))
    assert ids(session, '"deported children"') == [k, c]  # not "children deported"
    assert ids(session, "children deported") == [k, c, p]
    assert ids(session, "Скадовська OR Kharkiv") == [s, p]
    assert ids(session, "children -Crimea") == [p]
    assert ids(session, "депорт*") == [s]
    assert ids(session, "СКАДОВСЬКА") == [s]  # case-insensitive in Cyrillic
    assert ids(session, '"оздоровительный лагерь" OR "health camp"') == [camp]
    assert ids(session, "вывезли -лагерь") == []
    assert ids(session, "Kherson* Crimea") == [k, c]


def test_filters_combine_and_stories_collapse_copies(
    session: Session, corpus: dict[str, Article]
) -> None:
    k, c, s, camp = (corpus[n].id for n in ("kherson", "copy", "skadovsk", "camp"))
    assert ids(session, "children", flagged=True) == [k, c]
    assert ids(session, None, categories=("return", "camps")) == [s, camp]
    assert ids(session, None, sources=("nv-en",)) == [c, camp]
    assert ids(session, None, languages=("uk", "ru")) == [s, camp]
    june = datetime(2023, 6, 1, tzinfo=UTC)
    assert ids(session, None, flagged=True, since=june) == [s, camp]
    assert ids(session, None, since=june, until=datetime(2023, 10, 1, tzinfo=UTC)) == [s]
    assert ids(session, "children", sources=("nv-en",), flagged=True) == [c]
    # One row per story: the two outlets' copies are one hit naming both.
    [story] = search(session, Filters(query=parse_query("Kherson Crimea")), stories=True)
    assert story.story_sources == ["kyiv-independent", "nv-en"]
    assert story.story_size == 2
    assert ids(session, "Kherson Crimea", stories=True) in ([k], [c])


def test_results_are_ranked_and_snippets_show_the_hit(
    session: Session, corpus: dict[str, Article]
) -> None:
    hits = search(session, Filters(query=parse_query("Kharkiv")), stories=False)
    assert [h.article.id for h in hits] == [corpus["power"].id]
    assert "**Kharkiv**" in hits[0].snippet
    # A title hit ranks above a body-only hit.
    hits = search(session, Filters(query=parse_query("Скадовська OR Криму")), stories=False)
    assert hits[0].article.id == corpus["skadovsk"].id
    newest = search(session, Filters(), limit=2, stories=False)
    assert [h.article.id for h in newest] == [corpus["power"].id, corpus["camp"].id]


def test_the_index_follows_updates_and_reflagging(
    session: Session, corpus: dict[str, Article]
) -> None:
    power = corpus["power"]
    power.text = "Updated: the grid of Skadovsk is down."
    session.commit()
    assert ids(session, "Skadovsk") == [power.id]
    assert ids(session, "strike") == []
    power.flagged, power.flag_categories = True, "deportation"
    session.commit()
    assert power.id in ids(session, None, categories=("deportation",))
    session.delete(corpus["camp"])
    session.commit()
    assert ids(session, "лагерь") == []


# Longer than the lead (migration 0012 keeps the first 600 characters).
FILLER = " ".join(f"word{i}" for i in range(120))


@pytest.fixture
def evacuations(session: Session) -> dict[str, int]:
    """Four reports of one word: in a title, twice and once in the lead, five
    times after the lead only."""
    corpus = Corpus(session)
    source = ensure_source(session, "suspilne", "feed")
    texts = {
        "title": ("Evacuation of Kupiansk", "Buses left at dawn. " + FILLER),
        "lead2": ("Buses left", "The evacuation began. The evacuation went on. " + FILLER),
        "lead1": ("A convoy", "An evacuation was announced. " + FILLER),
        "deep": ("A report", FILLER + " evacuation" * 5),
    }
    return {name: corpus.add(source, *pair).id for name, pair in texts.items()}


def ranked(
    session: Session,
    candidates: int | None,
    limit: int = 50,
    offset: int = 0,
    query: str = "evacuation",
    **options: int,
) -> list[int]:
    filters = Filters(query=parse_query(query))
    found = search(session, filters, limit, offset, stories=False, candidates=candidates, **options)
    return [h.article.id for h in found]


def test_broad_questions_rank_the_best_leads_on_the_whole_text(
    session: Session, evacuations: dict[str, int]
) -> None:
    title, lead2, lead1, deep = evacuations.values()
    exact = ranked(session, candidates=None)
    assert exact[0] == title  # a title hit first, on both databases
    # Pages follow on: the order is total, past the candidates too.
    for candidates in (None, 1, 2, 4):
        pages = [ranked(session, candidates, limit=1, offset=n)[0] for n in range(4)]
        assert pages == ranked(session, candidates) == exact
    if session.get_bind().dialect.name == "sqlite":
        return  # bm25 reads its own index
    # PostgreSQL ranks the whole text: five hits after the lead beat one or two in it.
    assert exact == [title, deep, lead2, lead1]
    # The title hit is first, and no lead without the word in its title can beat
    # it: the first row is certain without reading every full vector.
    assert ranked(session, candidates=1, limit=1, exact_up_to=2) == [title]
    assert ranked(session, candidates=1, limit=2) == [title, deep]
    # A question that would need more full vectors than allowed ranks the best
    # leads only: the five late hits are missed.
    assert ranked(session, candidates=3, limit=2, exact_up_to=0) == [title, lead2]


@pytest.fixture
def generated(session: Session) -> list[str]:
    """3,000 articles of the search benchmark's generator (a third in English);
    the English words by how many articles hold them, most first."""
    count = 3000
    fill(session.get_bind(), count, seed=7)  # type: ignore[arg-type]
    holding = Counter[str]()
    for article in articles(count, seed=7):
        if article["language"] == "en":
            holding.update(set(article["text"].split()))
    return [word for word, _ in holding.most_common()]


def test_two_word_questions_rank_as_the_full_vector_where_candidates_matter(
    session: Session, generated: list[str]
) -> None:
    # Two everyday words, in about a third and a fifth of the English articles:
    # they are together in a hundred, far more than ten candidates.
    query = f"{generated[100]} {generated[200]}"
    matches = len(ranked(session, candidates=None, limit=1000, query=query))
    assert matches > 50
    exact = ranked(session, candidates=None, limit=10, query=query)
    assert ranked(session, candidates=10, limit=10, query=query) == exact
    assert ranked(session, candidates=10, limit=20, offset=10, query=query) == ranked(
        session, candidates=None, limit=20, offset=10, query=query
    )
    if session.get_bind().dialect.name == "postgresql":
        # The ten best leads alone miss some of them: a pair of words ranks by
        # their distance anywhere in the text, and leads rarely hold both.
        leads = ranked(session, candidates=10, limit=10, query=query, exact_up_to=0)
        assert set(leads) != set(exact)
    # One word and an excluded one: no pair of words to rank, every match ranks
    # alike, the first ids first.
    query = f"{generated[100]} -{generated[200]}"
    exact = ranked(session, candidates=None, limit=30, query=query)
    assert ranked(session, candidates=10, limit=30, query=query) == exact
    if session.get_bind().dialect.name == "postgresql":
        assert exact == sorted(exact)


def test_one_word_questions_read_few_full_vectors_and_rank_exactly(
    session: Session, generated: list[str]
) -> None:
    query = generated[50]  # in half the English articles, in the title of a few
    matches = len(ranked(session, candidates=None, limit=2000, query=query))
    exact = ranked(session, candidates=None, limit=10, query=query)
    # Allowed to read a fifth of the matches' full vectors: the bound on the
    # rank past the lead leaves only the title hits to read, and the first ten
    # are those of the full vectors.
    allowed = matches // 5
    assert ranked(session, candidates=10, limit=10, query=query, exact_up_to=allowed) == exact


def test_the_lead_rank_bounds_the_full_rank(session: Session) -> None:
    """The bound the ranking relies on, checked against ts_rank itself: texts of
    few words (so they repeat, in titles and bodies, cut mid-word by the lead)."""
    if session.get_bind().dialect.name == "sqlite":
        pytest.skip("the bound is PostgreSQL's (ts_rank on the lead vector)")
    rng = random.Random(3)  # noqa: S311 -- reproducible test data
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    corpus = Corpus(session)
    source = ensure_source(session, "suspilne", "feed")
    for _ in range(150):
        title = " ".join(rng.choices(words, k=rng.randint(0, 8)))
        text = " ".join(rng.choices(words, weights=range(1, 9), k=rng.randint(5, 400)))
        corpus.add(source, title, text)
    # A phrase alone ranks as an AND (pairs of words): not bounded.
    assert not _bounded(parse_query('"beta gamma"'))
    for query in [*words, "alpha OR beta", '"beta gamma" OR delta', "eta OR theta OR zeta"]:
        parsed = parse_query(query)
        assert _bounded(parsed)
        tsquery = _tsquery(parsed)
        full = func.ts_rank(literal_column("search_vector"), tsquery)
        lead = func.ts_rank(literal_column("lead_vector"), tsquery)
        bound = _rank_bound(lead, tsquery, alternatives=len(parsed.groups[0]) > 1)
        worst = session.scalar(
            select(func.max(full - bound))
            .select_from(Article)
            .where(literal_column("search_vector").op("@@")(tsquery))
        )
        assert worst is not None
        assert worst < 0, query


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('"unclosed', "a phrase is not closed"),
        ("OR Kherson", "OR needs a term on each side"),
        ("Kherson OR", "OR needs a term on each side"),
        ("-Crimea", "needs at least one word"),
        ('""', "no letters or digits"),
        ("x OR -y", "OR cannot join an excluded term"),
    ],
)
def test_malformed_queries_are_one_line_and_exit_2(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_query(query)


def test_no_query_text_reaches_the_database_as_syntax() -> None:
    query = parse_query("NEAR(a b) col:x ^start a&b|c !d 'e' :* (f)")
    assert (
        fts5_expression(query)
        == '"near a" AND "b" AND "col x" AND "start" AND "a b c" AND "d" AND "e" AND "f"'
    )
    assert "&" in tsquery_expression(query)
    assert all(w.isalnum() for w in query.words)


def cli(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {
        "DEPORTWATCH_DATABASE_URL": database_url,
        "DEPORTWATCH_SOURCES": str(REPO / "sources.toml"),
        "DEPORTWATCH_KEYWORDS": str(REPO / "keywords.toml"),
        "DEPORTWATCH_LOG_DIR": str(tmp_path / "logs"),
        "COLUMNS": "200",
    }
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_search_command_formats_and_errors(
    database_url: str, corpus: dict[str, Article], tmp_path: Path
) -> None:
    code, stdout, _ = cli(database_url, tmp_path, "search", "Скадовська", "--format", "json")
    assert code == 0
    [record] = json.loads(stdout)
    assert record["id"] == corpus["skadovsk"].id
    assert record["flag_categories"] == ["deportation", "return"]
    assert record["url"] == "https://ombudsman-uk.example/3"
    assert "**Скадовська**" in record["snippet"]

    code, stdout, _ = cli(
        database_url, tmp_path, "search", "deported", "--all-copies", "--format", "jsonl"
    )
    assert code == 0
    assert len(stdout.splitlines()) == 3

    code, stdout, _ = cli(database_url, tmp_path, "search", "Kherson", "--since", "2023-04-08")
    assert code == 0
    assert "1 stories" in stdout
    assert f"│ {corpus['copy'].id} " in stdout  # the copy inside the date range stands for it
    assert "nv-en" in stdout

    for args, message in [
        (("search", '"open'), "a phrase is not closed"),
        (("search", "x", "--source", "nowhere"), "unknown source 'nowhere' (known: "),
        (("search", "x", "--category", "weather"), "unknown category 'weather' (known: "),
        (("search", "x", "--since", "yesterday"), "date 'yesterday' not understood"),
    ]:
        code, stdout, stderr = cli(database_url, tmp_path, *args)
        assert code == 2, (args, stdout, stderr)
        assert message in stderr
        assert len(stderr.strip().splitlines()) == 1
        assert "Traceback" not in stderr


def test_csv_and_jsonl_exports_round_trip(
    session: Session, database_url: str, corpus: dict[str, Article], tmp_path: Path
) -> None:
    corpus["power"].title = HOSTILE
    session.commit()
    out = tmp_path / "all.jsonl"
    code, _, stderr = cli(database_url, tmp_path, "export", "--format", "jsonl", "-o", str(out))
    assert code == 0
    assert "Exported 5 articles" in stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == sorted(a.id for a in corpus.values())
    assert rows[-1]["title"] == HOSTILE
    assert rows[0]["text"] == corpus["kherson"].text
    assert not list(tmp_path.glob("*.part"))

    code, stdout, _ = cli(
        database_url, tmp_path, "export", "--format", "csv", "--flagged", "--lang", "uk"
    )
    assert code == 0
    [row] = list(csv.DictReader(io.StringIO(stdout)))
    assert row["title"] == corpus["skadovsk"].title
    assert row["flag_categories"] == "deportation;return"

    code, stdout, _ = cli(database_url, tmp_path, "export", "--format", "csv", "Kharkiv")
    [row] = list(csv.DictReader(io.StringIO(stdout)))
    assert row["title"] == HOSTILE


def test_atom_export_is_a_valid_feed_that_keeps_hostile_text_inert(
    session: Session, database_url: str, corpus: dict[str, Article], tmp_path: Path
) -> None:
    corpus["kherson"].title = HOSTILE
    corpus["kherson"].url = "javascript:alert(1)"
    session.commit()
    code, stdout, _ = cli(database_url, tmp_path, "export", "--format", "atom", "--flagged")
    assert code == 0
    feed = feedparser.parse(stdout)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert len(feed.entries) == 4
    first = feed.entries[0]
    assert first.title == HOSTILE.replace("\x01", "")
    assert not first.get("links") or all(
        not link["href"].startswith("javascript") for link in first.links
    )
    assert "<script>" not in stdout  # escaped, never markup
    assert [t.term for t in feed.entries[1].tags] == ["deportation", "children"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x", "--format", "xml"], "'xml' is not one of 'table', 'json', 'jsonl', 'csv'"),
        (["search", "x", "--lang", "de"], "'de' is not one of 'uk', 'ru', 'en'"),
        (["export", "--format", "pdf"], "'pdf' is not one of 'csv', 'jsonl', 'atom'"),
        (["search", "x", "--limit", "0"], "'--limit'"),
    ],
)
def test_bad_choices_are_one_line_naming_the_valid_ones(args: list[str], message: str) -> None:
    result = subprocess.run(
        [DEPORTWATCH, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
