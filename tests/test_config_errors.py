"""Every broken configuration is one line naming the file, the place and the reason,
with exit code 2 and no traceback: sources.toml, keywords.toml, settings and
command-line arguments, each through the real command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from db.engine import make_engine
from db.migrate import upgrade
from tests.conftest import REPO
from tests.helpers import run_cli

GOOD_SOURCE = (
    '[[source]]\nname = "ki"\nkind = "feed"\nstart_urls = ["https://kyivindependent.com/rss/"]\n'
    'languages = ["en"]\n'
)

# (what is wrong, the sources file, what the one line must say)
SOURCES = [
    ("not TOML", "[[source]\nname = 1", r"sources\.toml: invalid TOML"),
    ("no source at all", "", r"sources\.toml: .*source"),
    ("a source that is not a table", 'source = "ki"\n', r"sources\.toml: .*source"),
    ("an unknown top-level key", GOOD_SOURCE + "colour = 1\n", r"sources\.toml: .*colour"),
    ("a source without a name", GOOD_SOURCE.replace('name = "ki"\n', ""), r"source #1: .*name"),
    ("a name that is not a slug", GOOD_SOURCE.replace('"ki"', '"Kyiv Independent"'), r"'name'"),
    ("a duplicate name", GOOD_SOURCE * 2, r"source 'ki': field 'name': duplicate source name"),
    ("an unknown kind", GOOD_SOURCE.replace('"feed"', '"rss"'), r"source 'ki': field 'kind'"),
    (
        "start_urls that is a string",
        GOOD_SOURCE.replace('["https://kyivindependent.com/rss/"]', '"https://x.org/"'),
        r"source 'ki': field 'start_urls'",
    ),
    (
        "a start URL that is not http(s)",
        GOOD_SOURCE.replace("https://kyivindependent.com/rss/", "ftp://x.org/feed"),
        r"source 'ki': field 'start_urls.0': 'ftp://x.org/feed' is not an http\(s\) URL",
    ),
    ("no start URL", GOOD_SOURCE.replace('"https://kyivindependent.com/rss/"', ""), r"start_urls"),
    (
        "an unknown language",
        GOOD_SOURCE.replace('["en"]', '["de"]'),
        r"source 'ki': field 'languages.0': Input should be 'uk', 'ru' or 'en', got 'de'",
    ),
    (
        "a bad schedule",
        GOOD_SOURCE + 'schedule = { every = "often" }\n',
        r"source 'ki': field 'schedule",
    ),
    ("an unknown field", GOOD_SOURCE + "speed = 3\n", r"source 'ki': field 'speed'"),
    ("a negative max_items", GOOD_SOURCE + "max_items = -1\n", r"source 'ki': field 'max_items'"),
    (
        "a selector that is not CSS",
        GOOD_SOURCE + '[source.selectors]\nbody = "div[["\n',
        r"source 'ki': field 'selectors.body': 'div\[\[' is not a CSS selector",
    ),
    (
        "a telegram source that is not a channel preview",
        GOOD_SOURCE.replace('"feed"', '"telegram"'),
        r"source 'ki': .* is not a channel preview like https://t.me/s/<name>",
    ),
]

VALID_KEYWORDS = (REPO / "keywords.toml").read_text(encoding="utf-8")

# (what is wrong, a change to the shipped keywords.toml, what the one line must say)
KEYWORDS = [
    ("not TOML", lambda text: text + "\n[[rule]\n", r"keywords\.toml: invalid TOML"),
    ("no version", lambda text: text.replace('version = "', 'versio = "', 1), r"version"),
    (
        "a rule of an unknown category",
        lambda text: text.replace('category = "deportation"', 'category = "deportations"', 1),
        r"keywords\.toml: .*deportations",
    ),
    (
        "a rule naming a group that does not exist",
        lambda text: text.replace('any = ["@forced_transfer"]', 'any = ["@forced"]', 1),
        r"keywords\.toml: .*@forced",
    ),
    (
        "a rule with neither any nor all",
        lambda text: text.replace('any = ["@forced_transfer"]\n', "", 1),
        r"keywords\.toml: .*forced-transfer",
    ),
    (
        "an unknown field in a rule",
        lambda text: text.replace("within = 30\n", "within = 30\nweight_x = 2\n", 1),
        r"keywords\.toml: .*weight_x",
    ),
    (
        "a negative window",
        lambda text: text.replace("within = 30\n", "within = -3\n", 1),
        r"keywords\.toml: .*within",
    ),
    (
        "an empty term",
        lambda text: text.replace('"deport*", ', '"*", ', 1),
        r"keywords\.toml: .*term group 'deport': '\*' is not a term",
    ),
]


def one_line_exit_2(result_output: str, returncode: int, pattern: str) -> None:
    lines = result_output.strip().splitlines()
    assert returncode == 2, result_output
    assert len(lines) == 1, result_output
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result_output
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize(
    ("text", "pattern"), [(t, p) for _, t, p in SOURCES], ids=[w for w, _, _ in SOURCES]
)
def test_a_broken_sources_file(text: str, pattern: str, tmp_path: Path) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(text)
    result = run_cli(["crawl", "--all"], f"sqlite:///{tmp_path / 'a.db'}", sources, tmp_path)
    one_line_exit_2(result.stdout + result.stderr, result.returncode, pattern)
    assert not (tmp_path / "a.db").exists()  # nothing was done


@pytest.mark.parametrize(
    ("change", "pattern"), [(c, p) for _, c, p in KEYWORDS], ids=[w for w, _, _ in KEYWORDS]
)
def test_a_broken_keywords_file(change, pattern: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = change(VALID_KEYWORDS)
    assert broken != VALID_KEYWORDS  # the change applied
    keywords = tmp_path / "keywords.toml"
    keywords.write_text(broken, encoding="utf-8")
    sources = tmp_path / "sources.toml"
    sources.write_text(GOOD_SOURCE)
    result = run_cli(
        ["crawl", "--all"],
        f"sqlite:///{tmp_path / 'a.db'}",
        sources,
        tmp_path,
        keywords=str(keywords),
    )
    one_line_exit_2(result.stdout + result.stderr, result.returncode, pattern)


@pytest.mark.parametrize(
    ("args", "settings", "pattern"),
    [
        (["crawl", "nosuch"], {}, r"unknown source 'nosuch' \(known: ki\)"),
        (["crawl"], {}, r"name the sources to crawl, or use --all"),
        (["crawl", "ki", "--all"], {}, r"give source names or --all, not both"),
        (["crawl", "--all", "--replay", "/no/such/dir"], {}, r"--replay /no/such/dir"),
        (["crawl", "--bogus"], {}, r"No such option: --bogus"),
        (["search", '"unclosed'], {}, r"a phrase is not closed"),
        (["search", "x", "--since", "yesterday-ish"], {}, r"date 'yesterday-ish' not understood"),
        (["figures", "--format", "xml"], {}, r"'xml' is not one of"),
        (["show", "not-a-number"], {}, r"'article_id': Input should be a valid integer"),
        (["frobnicate"], {}, r"No such command 'frobnicate'"),
        (["crawl", "--all"], {"download_timeout": "-1"}, r"setting DEPORTWATCH_DOWNLOAD_TIMEOUT"),
        (["crawl", "--all"], {"obey_robots": "maybe"}, r"setting DEPORTWATCH_OBEY_ROBOTS"),
        (
            ["crawl", "--all"],
            {"database_url": "nonsense://"},
            r"database URL 'nonsense://': 'nonsense' is not supported; use SQLite",
        ),
        (
            ["search"],
            {"database_url": "mysql://u:secret@127.0.0.1/x"},
            r"database URL 'mysql://u:\*\*\*@127.0.0.1/x': 'mysql' is not supported; "
            r"use SQLite \(sqlite:///FILE\) or PostgreSQL \(postgresql://USER@HOST/DB\)$",
        ),
        (
            ["export", "--format", "csv"],
            {"database_url": "postgresql+asyncpg://u@127.0.0.1/x"},
            r"driver 'asyncpg' is not installed; use SQLite",
        ),
        (["crawl", "--all"], {"database_url": "sqlite:///a.db?timeout=soon"}, r"timeout='soon'"),
    ],
)
def test_bad_arguments_and_settings(
    args: list[str], settings: dict[str, str], pattern: str, tmp_path: Path
) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(GOOD_SOURCE)
    database = settings.pop("database_url", f"sqlite:///{tmp_path / 'a.db'}")
    if args[0] == "search" and database.startswith("sqlite"):
        # The commands that read never create an archive; these cases are about the query.
        engine = make_engine(database)
        upgrade(engine)
        engine.dispose()
    result = run_cli(args, database, sources, tmp_path, **settings)
    one_line_exit_2(result.stdout + result.stderr, result.returncode, pattern)
