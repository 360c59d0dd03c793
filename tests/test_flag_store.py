"""Flags in the archive, on SQLite and PostgreSQL: stored with evidence, re-applied by reflag."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from db.engine import make_sessionmaker
from db.models import Article, FlagMatch
from db.repository.runs import ensure_source
from deportwatch.archive.reflag import reflag
from deportwatch.cli.app import app
from deportwatch.config.keywords import load_taxonomy, parse_taxonomy
from deportwatch.config.settings import load_settings
from deportwatch.web.app import create_app
from pipeline.flag import FlagPipeline
from pipeline.matcher import Matcher
from pipeline.normalize import NormalizePipeline
from pipeline.store import FLAGGED_STAT, StorePipeline
from pipeline.writer import ArchiveWriter
from tests.conftest import REPO
from tests.helpers import FETCHED, article_item

DEPORTED = "Russia deported 31 Ukrainian children from occupied Kherson Oblast, the Ombudsman said."
UNRELATED = "Electricity returned to most homes in Kharkiv after repairs, the mayor said."


@pytest.fixture
def matcher() -> Matcher:
    return Matcher(load_taxonomy(REPO / "keywords.toml"))


@pytest.fixture
def store(engine: Engine, writer: ArchiveWriter) -> StorePipeline:
    with make_sessionmaker(engine).begin() as session:
        ensure_source(session, "kyiv-independent", "feed")
    return StorePipeline(writer, MemoryStatsCollector(get_crawler()))


def ingest(store: StorePipeline, matcher: Matcher, **overrides: object) -> None:
    item = NormalizePipeline().process_item(article_item(**overrides))
    store.process_item(FlagPipeline(matcher).process_item(item))


def ingest_deported_and_unrelated(store: StorePipeline, matcher: Matcher) -> None:
    """Two articles: one reporting deportations (flags), one about power cuts (does not)."""
    for path, text, title in (
        ("a", DEPORTED, "Russia deported children"),
        ("b", UNRELATED, "Power"),
    ):
        url = f"https://kyivindependent.com/{path}/"
        ingest(store, matcher, url=url, final_url=url, text=text, title=title)


def test_flag_and_evidence_are_stored(
    store: StorePipeline, matcher: Matcher, session: Session
) -> None:
    ingest_deported_and_unrelated(store, matcher)
    flagged, clean = session.scalars(select(Article).order_by(Article.id)).all()
    assert flagged.flagged is True
    assert flagged.flag_categories == "deportation"
    assert flagged.keywords_version == matcher.taxonomy.version
    assert flagged.flagged_at == FETCHED
    assert flagged.flag_score is not None
    assert flagged.flag_score >= 1
    evidence = {(m.rule, m.field, flagged.text[m.start : m.end]) for m in flagged.matches}
    assert ("deport-in-context", "text", "deported") in evidence
    assert clean.flagged is False
    assert clean.matches == []
    assert clean.keywords_version == matcher.taxonomy.version
    assert store.stats is not None
    assert store.stats.get_value(FLAGGED_STAT) == 1


def test_recrawl_does_not_count_a_flag_again(
    store: StorePipeline, matcher: Matcher, session: Session
) -> None:
    ingest(store, matcher, text=DEPORTED)
    ingest(store, matcher, text=DEPORTED)
    assert store.stats is not None
    assert store.stats.get_value(FLAGGED_STAT) == 1
    assert session.scalar(select(func.count()).select_from(Article)) == 1
    matches = session.scalar(select(func.count()).select_from(FlagMatch))
    ingest(store, matcher, text=DEPORTED + " More details follow.")  # a new version
    assert session.scalar(select(func.count()).select_from(FlagMatch)) == matches
    assert store.stats.get_value(FLAGGED_STAT) == 1


def test_reflag_applies_a_changed_taxonomy(
    store: StorePipeline, matcher: Matcher, engine: Engine, session: Session
) -> None:
    ingest_deported_and_unrelated(store, matcher)
    # A new taxonomy: "deport" no longer flags, "electricity" does.
    data = tomllib.loads((REPO / "keywords.toml").read_text(encoding="utf-8"))
    data["version"] = "test-2"
    data["rule"] = [{"id": "power", "category": "return", "any": ["electricity"], "why": "test"}]
    data["exclude"] = []
    counts = reflag(make_sessionmaker(engine), Matcher(parse_taxonomy(data, "t")))
    assert (counts.examined, counts.became_flagged, counts.became_unflagged) == (2, 1, 1)
    session.expire_all()
    deported, power = session.scalars(select(Article).order_by(Article.id)).all()
    assert (deported.flagged, deported.keywords_version, deported.matches) == (False, "test-2", [])
    assert deported.flagged_at is None
    assert power.flagged is True
    assert power.flag_categories == "return"
    assert [m.term for m in power.matches] == ["Electricity"]
    orphans = session.scalar(
        select(func.count())
        .select_from(FlagMatch)
        .where(FlagMatch.article_id.not_in(select(Article.id)))
    )
    assert orphans == 0


def test_reflag_filters_by_source(store: StorePipeline, matcher: Matcher, engine: Engine) -> None:
    ingest(store, matcher, text=DEPORTED)
    sessions = make_sessionmaker(engine)
    assert reflag(sessions, matcher, source="nv-en").examined == 0
    assert reflag(sessions, matcher, source="kyiv-independent").examined == 1


# --- the commands -------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("DEPORTWATCH_SOURCES", str(REPO / "sources.toml"))
    monkeypatch.setenv("DEPORTWATCH_KEYWORDS", str(REPO / "keywords.toml"))


def test_flag_command_prints_json(cli_env: None) -> None:
    result = runner.invoke(app, ["flag", "-"], input="Окупанти вивезли дітей з Херсона до Криму.")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["flagged"] is True
    assert data["categories"] == ["abduction"]
    assert data["matches"][0]["rule"] == "taken-to-russia"
    assert data["matches"][0]["snippet"] == "Окупанти **вивезли** дітей з Херсона до Криму."


def test_flag_command_folds_soft_hyphens(cli_env: None) -> None:
    result = runner.invoke(app, ["flag", "-"], input="Росія депор\u00adтувала дітей.\n")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["flagged"] is True
    assert data["matches"][0]["snippet"] == "Росія **депортувала** дітей."


def test_flag_command_jsonl(cli_env: None) -> None:
    lines = "\n".join(
        [
            json.dumps({"id": "a", "title": "", "text": DEPORTED}),
            "{not json",
            json.dumps({"id": 7, "text": UNRELATED, "lang": "en"}),
        ]
    )
    result = runner.invoke(app, ["flag", "--jsonl", "-"], input=lines)
    assert result.exit_code == 2
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["id"], r["flagged"]) for r in rows] == [("a", True), (7, False)]
    assert "error: line 2:" in result.stderr


def test_reflag_command(cli_env: None, store: StorePipeline, matcher: Matcher) -> None:
    ingest(store, matcher, text=DEPORTED)
    result = runner.invoke(app, ["reflag", "--since", "2020-01-01"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Reflagged 1 articles" in result.stdout
    assert "0 became flagged, 0 became unflagged, 1 still flagged" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reflag", "--since", "last tuesday"], "date 'last tuesday' not understood"),
        (["reflag", "--source", "nowhere"], "unknown source 'nowhere'"),
        (["flag", "/no/such/file"], "/no/such/file: no such file"),
    ],
)
def test_flag_commands_usage_errors(cli_env: None, args: list[str], message: str) -> None:
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 2
    assert message in result.output


# --- the report's frame: signals out of `flag`, stored, shown, re-applied ---------------

US_TITLE = "Ukrainian deported from the United States after parole ran out"
US_TEXT = (
    "A Ukrainian man was deported from the United States last week after his parole ran out. "
    "He fled Russia's invasion in 2022 and now lives in Kyiv."
)


def test_flag_jsonl_carries_the_frame_of_each_match(cli_env: None) -> None:
    lines = "\n".join(
        json.dumps(row, ensure_ascii=False)
        for row in (
            {"id": "report", "text": "Окупанти вивезли дітей з Херсона до Криму.", "lang": "uk"},
            {"id": "us", "title": US_TITLE, "text": US_TEXT, "lang": "en"},
        )
    )
    result = runner.invoke(app, ["flag", "--jsonl", "-"], input=lines)
    assert result.exit_code == 0, result.output
    report, us = (json.loads(line) for line in result.stdout.splitlines())
    assert report["flagged"] is True
    [match] = report["matches"]
    assert match["verdict"] == "confirmed"
    frame = match["frame"]
    assert frame["agent"] == {"answer": "ours", "words": ["Окупанти"], "read": "sentence"}
    assert frame["direction"]["answer"] == "ours"
    assert frame["direction"]["words"] == ["до Криму"]
    assert frame["people"]["words"] == ["дітей"]
    # today's occupiers date the report: it is not a memorial of 1944
    assert frame["period"] == {"answer": "ours", "words": ["Окупанти"], "read": "sentence"}
    assert us["flagged"] is False
    assert us["score"] == 0
    assert {m["field"] for m in us["matches"]} == {"title", "text"}
    for vetoed in us["matches"]:
        assert vetoed["verdict"] == "vetoed"
        assert vetoed["weight"] == 0
        assert vetoed["frame"]["agent"]["answer"] == "other"
        assert vetoed["frame"]["agent"]["words"] == ["United States"]
        assert "agent is other: United States" in vetoed["frame"]["reason"]


def _without_frames() -> Matcher:
    """The rules as they decided before frames: keywords.toml without its frames file."""
    data = tomllib.loads((REPO / "keywords.toml").read_text(encoding="utf-8"))
    del data["frames_file"]
    data["version"] = "2026.11.22-1"
    return Matcher(parse_taxonomy(data, "old keywords"))


def test_reflag_applies_frames_to_an_archive_flagged_without_them(
    cli_env: None, store: StorePipeline, engine: Engine, session: Session, database_url: str
) -> None:
    old = _without_frames()
    for path, title, text in (("report", "Children deported", DEPORTED), ("us", US_TITLE, US_TEXT)):
        url = f"https://kyivindependent.com/{path}/"
        ingest(store, old, url=url, final_url=url, title=title, text=text)
    before = session.scalars(select(Article).order_by(Article.id)).all()
    assert [(a.flagged, a.keywords_version) for a in before] == [
        (True, "2026.11.22-1"),
        (True, "2026.11.22-1"),  # the US story: what real war news got wrong
    ]
    assert all(
        m.details is None or m.details["verdict"] == "unknown" for a in before for m in a.matches
    )

    result = runner.invoke(app, ["reflag"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    version = load_taxonomy(REPO / "keywords.toml").version
    assert f"Reflagged 2 articles with keywords {version}" in result.stdout
    assert "0 became flagged, 1 became unflagged, 1 still flagged" in result.stdout

    session.expire_all()
    report, us = session.scalars(select(Article).order_by(Article.id)).all()
    assert (report.flagged, report.keywords_version) == (True, version)
    assert {m.details["verdict"] for m in report.matches if m.details} == {"confirmed"}
    [body] = [m for m in report.matches if m.field == "text" and m.details]
    assert body.details["agent"]["words"] == ["Russia"]
    assert (us.flagged, us.flag_score, us.flag_categories, us.flagged_at) == (False, 0, None, None)
    assert {(m.field, m.weight, m.details["verdict"]) for m in us.matches if m.details} == {
        ("title", 0.0, "vetoed"),
        ("text", 0.0, "vetoed"),
    }

    shown = runner.invoke(app, ["show", str(us.id)], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "every match vetoed by its frame" in shown.stdout
    assert re.search(
        r"deportation/deport-in-context \((title|text|title and text), vetoed\)", shown.stdout
    )
    assert "vetoed: agent is other: United States" in shown.stdout
    assert "agent other: 'United States' (sentence)" in shown.stdout
    shown = runner.invoke(app, ["show", str(report.id)], catch_exceptions=False)
    assert re.search(
        r"deportation/deport-in-context \((title|text|title and text), confirmed\)", shown.stdout
    )
    assert "agent ours: 'Russia' (sentence)" in shown.stdout
    record = json.loads(runner.invoke(app, ["show", str(us.id), "--format", "json"]).stdout)
    assert record["flagged"] is False
    assert record["vetoed"] == 2
    assert record["matches"][0]["frame"]["agent"]["words"] == ["United States"]

    settings = load_settings(
        database_url=database_url, sources=REPO / "sources.toml", keywords=REPO / "keywords.toml"
    )
    with TestClient(create_app(settings)) as client:
        page = client.get(f"/articles/{us.id}").text
        assert "Not flagged: every match below was vetoed by its frame" in page
        assert '<strong class="verdict">vetoed</strong>' in page
        assert "agent is other: United States" in page
        body = page.split('<section class="body">', 1)[1]
        assert "<mark>" not in body  # vetoed matches are listed, not marked in the text
        page = client.get(f"/articles/{report.id}").text
        assert '<strong class="verdict">confirmed</strong>' in page
        assert "<q>Russia</q>" in page
        assert "<mark>deported</mark>" in page.split('<section class="body">', 1)[1]


def test_a_broken_frames_file_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "keywords.toml").write_text(
        (REPO / "keywords.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    frames = (REPO / "frames.toml").read_text(encoding="utf-8")
    (tmp_path / "frames.toml").write_text(
        frames.replace(
            'id = "agent"\ncategories = [', 'id = "agent"\ncategories = ["kidnapping", ', 1
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("DEPORTWATCH_KEYWORDS", str(tmp_path / "keywords.toml"))
    result = runner.invoke(app, ["flag", "-"], input="Russia deported children.")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'frames.toml'}: dimension 'agent': unknown category 'kidnapping'"
    ]
    (tmp_path / "frames.toml").unlink()
    result = runner.invoke(app, ["reflag"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'frames.toml'}: frames file not found"
