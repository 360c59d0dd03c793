"""sources.toml: valid files load, every kind of mistake is one line naming the place."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from deportwatch.config.errors import ConfigError
from deportwatch.config.sources import load_sources, parse_sources
from tests.conftest import REPO

VALID = {
    "name": "kyiv-independent",
    "kind": "feed",
    "start_urls": ["https://kyivindependent.com/news-archive/rss/"],
    "languages": ["en"],
}


def test_the_shipped_sources_file_is_valid() -> None:
    config = load_sources(REPO / "sources.toml")
    names = [s.name for s in config.sources]
    assert names[:3] == ["kyiv-independent", "kyiv-independent-archive", "nv-en"]
    minre = config.get("minre")
    assert minre is not None
    assert (minre.kind, minre.lookback_delta, minre.follow) == (
        "sitemap",
        timedelta(days=30),
        ("wp-sitemap-posts-post-",),
    )
    nv = config.get("nv-en")
    assert nv is not None
    assert nv.selectors.body == "div[id^=article_content_replace_] p"
    assert nv.domains == ("english.nv.ua",)
    assert nv.schedule is not None
    assert nv.schedule.interval == timedelta(minutes=30)


def test_defaults_and_domains() -> None:
    source = parse_sources({"source": [VALID]}, "t.toml").sources[0]
    assert source.enabled is True
    assert source.max_items == 200
    assert source.schedule is None
    assert source.domains == ("kyivindependent.com",)


def test_www_is_dropped_from_allowed_domains() -> None:
    entry = VALID | {"allowed_domains": ["www.ukrinform.net", "ukrinform.net", "ukrinform.ua"]}
    source = parse_sources({"source": [entry]}, "t.toml").sources[0]
    assert source.domains == ("ukrinform.net", "ukrinform.ua")


def test_cron_schedule() -> None:
    entry = VALID | {"schedule": {"cron": "*/15 6-23 * * *"}}
    source = parse_sources({"source": [entry]}, "t.toml").sources[0]
    assert source.schedule is not None
    assert source.schedule.describe() == "cron */15 6-23 * * *"
    assert source.schedule.interval is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"kind": "carrier-pigeon"},
            "source 'kyiv-independent': field 'kind': Input should be 'feed'",
        ),
        (
            {"name": "Kyiv Independent"},
            "source 'Kyiv Independent': field 'name': String should match",
        ),
        ({"start_urls": []}, "field 'start_urls': Tuple should have at least 1 item"),
        (
            {"start_urls": ["ftp://x.org/feed"]},
            "field 'start_urls.0': 'ftp://x.org/feed' is not an http(s) URL",
        ),
        (
            {"languages": ["de"]},
            "field 'languages.0': Input should be 'uk', 'ru' or 'en', got 'de'",
        ),
        ({"schedule": {"every": "often"}}, "field 'schedule.every': 'often' is not an interval"),
        (
            {"schedule": {"cron": "61 * * * *"}},
            "field 'schedule.cron': '61 * * * *' is not a crontab line",
        ),
        ({"schedule": {}}, 'field \'schedule\': give exactly one of "every" or "cron"'),
        ({"selectors": {"bodyy": "p"}}, "field 'selectors.bodyy': unknown field"),
        ({"max_items": 0}, "field 'max_items': Input should be greater than or equal to 1"),
        ({"enabled": "sometimes"}, "field 'enabled': Input should be a valid boolean"),
        ({"colour": "blue"}, "field 'colour': unknown field"),
        (
            {"kind": "listing"},
            'field \'(entry)\': a "listing" source needs [source.listing] with "items"',
        ),
        (
            {"kind": "listing", "listing": {"next": "a.next"}},
            "field 'listing.items': Field required",
        ),
        (
            {"kind": "telegram", "start_urls": ["https://t.me/pgo_gov_ua"]},
            "'https://t.me/pgo_gov_ua' is not a channel preview like https://t.me/s/<name>",
        ),
        ({"lookback": "a while"}, "field 'lookback': 'a while' is not an interval"),
        ({"follow": ["posts-("]}, "field 'follow': 'posts-(' is not a regular expression"),
        ({"max_pages": 0}, "field 'max_pages': Input should be greater than or equal to 1"),
    ],
)
def test_invalid_entries_name_source_and_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_sources({"source": [VALID | change]}, "sources.toml")
    text = str(caught.value)
    assert text.startswith("sources.toml: source '")
    assert message in text
    assert "\n" not in text


def test_missing_name_is_reported_by_position() -> None:
    entry = {k: v for k, v in VALID.items() if k != "name"}
    with pytest.raises(ConfigError, match=r"source #2: field 'name': Field required"):
        parse_sources({"source": [VALID, entry]}, "sources.toml")


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="source 'kyiv-independent': field 'name': duplicate"):
        parse_sources({"source": [VALID, VALID]}, "sources.toml")


def test_unknown_top_level_key() -> None:
    with pytest.raises(ConfigError, match="unknown top-level key 'sources'"):
        parse_sources({"sources": [VALID]}, "sources.toml")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[[source]]\nname = "x"\nkind = \n', r"invalid TOML: .*line 3"),
        (b"\xff\xfe garbage", "not UTF-8 text"),
        (b'source = "feed"', "'source' must be an array of tables"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "sources.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_sources(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sources file not found"):
        load_sources(tmp_path / "nope.toml")


def test_toml_error_message_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[[source]]\nname = "x\n')
    with pytest.raises(ConfigError) as caught:
        load_sources(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(path.read_text())
