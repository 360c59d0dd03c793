"""The command line: help everywhere, one-line errors, source listing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from db.migrate import head_revision
from deportwatch.cli.app import app
from tests.conftest import REPO

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
