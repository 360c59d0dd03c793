"""The command line: help everywhere, one-line errors, source listing."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.main import get_command
from typer.testing import CliRunner

from db.migrate import head_revision
from db.models import Article, CounterReading, FlagMatch
from db.repository.runs import ensure_source
from deportwatch.cli.app import app
from tests.conftest import REPO, WEB
from tests.corpus import Corpus
from tests.helpers import DEPORTWATCH, run_cli

runner = CliRunner()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'archive.db'}")
    monkeypatch.setenv("DEPORTWATCH_SOURCES", str(REPO / "sources.toml"))
    monkeypatch.setenv("DEPORTWATCH_LOG_DIR", str(tmp_path / "logs"))


def test_commands_exist() -> None:
    assert COMMANDS == [
        "crawl",
        "evidence",
        "export",
        "figures",
        "flag",
        "init",
        "reflag",
        "relink",
        "schedule",
        "search",
        "serve",
        "show",
        "sources",
        "status",
        "verify",
        "worker",
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Usage:" in result.output
    assert "Example" in result.output


def test_init_creates_the_schema(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Archive ready" in result.output
    assert f"(schema {head_revision()})" in result.output
    assert (tmp_path / "archive.db").exists()


def test_sources_table_without_an_archive_creates_nothing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sources"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "kyiv-independent" in result.output
    assert "every 30m" in result.output
    assert "never" in result.output
    assert not (tmp_path / "archive.db").exists()


def test_sources_json() -> None:
    result = runner.invoke(app, ["sources", "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == [
        "kyiv-independent",
        "kyiv-independent-archive",
        "nv-en",
        "nv-uk",
        "nv-ru",
        "ukrinform-en",
        "ukrinform-uk",
        "up-uk",
        "up-en",
        "suspilne",
        "ombudsman-uk",
        "ombudsman-en",
        "ombudsman-telegram",
        "pgo-telegram",
        "nrc-uk",
        "nrc-en",
        "minre",
        "children-of-war",
    ]
    assert {r["kind"] for r in rows} == {"feed", "listing", "sitemap", "telegram", "counters"}
    assert [r["name"] for r in rows if not r["enabled"]] == ["ombudsman-telegram"]
    assert rows[0] == {
        "name": "kyiv-independent",
        "kind": "feed",
        "languages": ["en"],
        "schedule": "every 30m",
        "enabled": True,
        "start_urls": ["https://kyivindependent.com/news-archive/rss/"],
        "last_crawl": None,
        "last_outcome": None,
    }


def test_malformed_sources_file_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "sources.toml"
    bad.write_text(
        '[[source]]\nname = "ki"\nkind = "rss"\nstart_urls = ["https://x.org/"]\nlanguages = ["en"]\n'
    )
    monkeypatch.setenv("DEPORTWATCH_SOURCES", str(bad))
    for args in (["sources"], ["crawl", "--all"]):
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1
        assert (
            "source 'ki': field 'kind': Input should be 'feed', 'sitemap', 'listing', 'telegram' or 'counters', got 'rss'"
            in lines[0]
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crawl"], "name the sources to crawl, or use --all"),
        (
            ["crawl", "nowhere"],
            "unknown source 'nowhere' (known: kyiv-independent, kyiv-independent-archive, nv-en",
        ),
        (["crawl", "nv-en", "--all"], "give source names or --all, not both"),
        (
            ["crawl", "--all", "--replay", "/no/such/dir"],
            "--replay /no/such/dir: no such directory",
        ),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPORTWATCH_DOWNLOAD_TIMEOUT", "soon")
    result = runner.invoke(app, ["sources"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "setting DEPORTWATCH_DOWNLOAD_TIMEOUT" in result.output


def test_unreachable_database_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    result = runner.invoke(app, ["init"], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.output.startswith("error: database postgresql+psycopg://nobody@127.0.0.1:9/none")
    assert len(result.output.strip().splitlines()) == 1


# --- Text from users, files and pages is printed as it is, never read as Rich markup ---


def test_a_sources_file_error_keeps_its_brackets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "sources.toml"
    bad.write_text('[[sources]]\nname = "ki"\n')
    monkeypatch.setenv("DEPORTWATCH_SOURCES", str(bad))
    result = runner.invoke(app, ["sources"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {bad}: unknown top-level key 'sources' (expected [[source]])"
    )


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["search", "--source", "[/]"], "[/]"),
        (["crawl", "[/x]"], "[/x]"),
        (["search", "--source", "[bold]x"], "[bold]x"),
        (["export", "--format", "csv", "--source", "[red]x[/red]"], "[red]x[/red]"),
        (["reflag", "--source", "[/]"], "[/]"),
    ],
)
def test_names_that_look_like_markup_are_quoted_as_typed(
    args: list[str], name: str, tmp_path: Path
) -> None:
    archive = f"sqlite:///{tmp_path / 'a.db'}"
    # Readers never create an archive, so there is one to read.
    assert run_cli(["init"], archive, REPO / "sources.toml", tmp_path).returncode == 0
    result = run_cli(args, archive, REPO / "sources.toml", tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: unknown source '{name}' (known: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "unexpected" not in result.stderr


MARKUP_TITLE = "Kids [bold]taken[/bold] [/] away"
MARKUP_TEXT = "Russia deported children [link=x]here[/link] and [/] there."
MARKUP_LABEL = "Deported [b]children[/b] [/]"


def test_scraped_text_that_looks_like_markup_is_printed_as_it_is(
    database_url: str, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ensure_source(session, "nv-en", "feed")
    article = Corpus(session).add(source, MARKUP_TITLE, MARKUP_TEXT, categories="deportation")
    session.add(
        FlagMatch(
            article_id=article.id,
            category="deportation",
            rule="deport-in-context",
            term="deported",
            field="text",
            start=7,
            end=15,
            snippet="Russia **deported** children [link=x]here[/link]",
            weight=1.0,
        )
    )
    counters = ensure_source(session, "children-of-war", "counters")
    session.add(
        CounterReading(
            source_id=counters.id,
            metric="deported",
            label=MARKUP_LABEL,
            value=19_546,
            as_of=date(2023, 10, 15),
            fetched_at=datetime(2023, 10, 15, tzinfo=UTC),
            url="https://childrenofwar.gov.ua/en/",
        )
    )
    session.commit()
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", database_url)

    show = runner.invoke(app, ["show", str(article.id)], catch_exceptions=False)
    assert show.exit_code == 0, show.output
    assert f"#{article.id} {MARKUP_TITLE}" in show.stdout
    assert "children [link=x]here[/link]" in show.stdout  # the evidence's snippet
    assert MARKUP_TEXT in show.stdout

    search = runner.invoke(app, ["search", "--format", "table"], catch_exceptions=False)
    assert search.exit_code == 0, search.output
    assert MARKUP_TITLE in search.stdout

    figures = runner.invoke(app, ["figures"], catch_exceptions=False)
    assert figures.exit_code == 0, figures.output
    assert MARKUP_LABEL in figures.stdout
    assert "19,546" in figures.stdout


# --- Ordinary mistakes are usage errors, not "unexpected" ---


def test_export_to_a_folder_that_does_not_exist_is_one_line(
    database_url: str, engine: object, tmp_path: Path
) -> None:
    target = tmp_path / "no" / "such" / "x.csv"
    for args, message in [
        (["-o", str(target)], f"error: --output {target}: no such folder {target.parent}"),
        (["-o", str(tmp_path)], f"error: --output {tmp_path}: is a folder; name a file in it"),
    ]:
        result = run_cli(
            ["export", "--format", "csv", *args], database_url, REPO / "sources.toml", tmp_path
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == message
    assert not target.parent.exists()
    assert not list(tmp_path.rglob("*.part"))


def test_sources_says_when_the_archive_cannot_be_read(tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_text("not a database")
    for url, reason in [
        ("postgresql://nobody@127.0.0.1:9/none", "unreachable"),
        (f"sqlite:///{broken}", "file is not a database"),
    ]:
        for output in ("table", "json"):
            result = run_cli(["sources", "--format", output], url, REPO / "sources.toml", tmp_path)
            assert result.returncode == 1, result.stderr
            [line] = result.stderr.strip().splitlines()
            assert line.startswith(f"error: database {url} could not be read"), line
            assert reason in line
            if output == "json":  # every configured source, no last crawl
                rows = json.loads(result.stdout)
                assert len(rows) == 18
                assert {r["last_crawl"] for r in rows} == {None}
            else:  # not "never": nothing is known about the last crawls
                assert "kyiv-independent" in result.stdout
                assert "never" not in result.stdout
                assert result.stdout.count("unknown") == 18


def test_flag_refuses_an_unknown_language_as_search_does(tmp_path: Path) -> None:
    def refused(args: list[str], stdin: str = "") -> str:
        result = subprocess.run(
            [DEPORTWATCH, *args],
            check=False,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert not result.stdout
        [line] = result.stderr.strip().splitlines()
        return line

    flagged = refused(["flag", "--lang", "xx"], "Russia deported children")
    searched = refused(["search", "--lang", "xx"])
    assert (
        flagged
        == searched
        == ("error: Invalid value for '--lang': 'xx' is not one of 'uk', 'ru', 'en'.")
    )
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"id": 1, "text": "x", "lang": "de"}\n{"id": 2, "text": "deported"}\n')
    result = subprocess.run(
        [DEPORTWATCH, "flag", "--jsonl", str(lines)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: line 1: 'lang': 'de' is not one of 'uk', 'ru', 'en'"
    assert [json.loads(row)["id"] for row in result.stdout.splitlines()] == [2]


# --- deportwatch show: evidence names its field, and a post's evidence is listed once ---


def test_show_labels_evidence_and_lists_a_post_once(
    database_url: str, session: Session, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    crawl = run_cli(
        ["crawl", "pgo-telegram", "--replay", str(WEB)],
        database_url,
        REPO / "sources.toml",
        tmp_path,
    )
    assert crawl.returncode == 0, crawl.stderr
    posts = session.scalars(select(Article).where(Article.flagged)).all()
    whole = [a for a in posts if a.title == a.text]  # a one-line post
    assert whole
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", database_url)
    for post in posts:
        record = json.loads(runner.invoke(app, ["show", str(post.id), "--format", "json"]).stdout)
        text = runner.invoke(app, ["show", str(post.id)], catch_exceptions=False).stdout
        evidence = [line.strip() for line in text.splitlines() if line.lstrip().startswith("· ")]
        assert evidence
        # "· category/rule (FIELDS, VERDICT): snippet"
        fields = [line.split("(", 1)[1].split(")", 1)[0].rsplit(", ", 1)[0] for line in evidence]
        assert set(fields) <= {"title", "text", "title and text"}, evidence
        assert len(evidence) == len(set(evidence)), evidence
        by_field = [m["field"] for m in record["matches"]]
        if post in whole:
            # Every match was found in both fields of the same string: listed once.
            assert by_field.count("title") == by_field.count("text") == len(evidence)
            assert set(fields) == {"title and text"}
        else:
            assert len(evidence) <= len(by_field)
