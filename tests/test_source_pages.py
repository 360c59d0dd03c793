"""Every configured source's article snapshots extract to the right title, date
(in UTC), language and body, without page furniture."""

from __future__ import annotations

import filecmp
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from deportwatch.config.sources import load_sources
from pipeline.items import ArticleItem
from pipeline.normalize import NormalizePipeline
from pipeline.urls import canonical_url
from spiders import SPIDERS_BY_KIND
from spiders.extract import FeedHints
from tests.conftest import FIXTURES, REPO, WEB
from tests.fixtures import snapshots
from tests.fixtures.snapshots import Page
from tests.helpers import snapshot_response

SOURCES = load_sources(REPO / "sources.toml")
PAGES: dict[str, list[Page]] = {
    "kyiv-independent-archive": snapshots.KI_NEW,
    "nv-uk": snapshots.NV_UK,
    "nv-ru": snapshots.NV_RU,
    "ukrinform-en": snapshots.UKRINFORM_EN,
    "ukrinform-uk": snapshots.UKRINFORM_UK,
    "up-uk": snapshots.UP_UK,
    "up-en": snapshots.UP_EN,
    "suspilne": snapshots.SUSPILNE,
    "ombudsman-uk": snapshots.OMBUDSMAN_UK,
    "ombudsman-en": snapshots.OMBUDSMAN_EN,
    "nrc-uk": snapshots.NRC_UK,
    "nrc-en": snapshots.NRC_EN,
    "minre": snapshots.MINRE,
}
# These sites show a day without a time: the archive keeps midnight, Kyiv time.
DATE_ONLY = {"ombudsman-uk", "ombudsman-en", "minre"}
FURNITURE = ["Реклама", "Поділитися", "Підпишіться", "Also in", "Свіжі записи", "Share", "©"]
CASES = [(name, page) for name, pages in PAGES.items() for page in pages]


def test_snapshots_match_their_generator(tmp_path: Path) -> None:
    """The committed snapshot files are what tests/fixtures/snapshots.py writes."""
    written = snapshots.write(tmp_path / "web", tmp_path / "history")
    assert len(written) == 46
    for path in written:
        top = path.relative_to(tmp_path).parts[0]
        base = FIXTURES / "history" if top == "history" else WEB
        committed = base / path.relative_to(tmp_path / top)
        assert committed.is_file(), f"{committed} missing: run python -m tests.fixtures.snapshots"
        assert filecmp.cmp(path, committed, shallow=False), f"{committed} is out of date"


def test_every_source_has_a_report_and_an_unrelated_page() -> None:
    covered = set(PAGES) | {"kyiv-independent", "nv-en"}  # hand-written snapshots
    covered |= {"pgo-telegram", "ombudsman-telegram", "children-of-war"}  # see test_kinds
    assert covered == {s.name for s in SOURCES.sources}
    for name, pages in PAGES.items():
        assert len(pages) >= 2, name


@pytest.mark.parametrize(
    ("name", "page"), CASES, ids=[p.url.split("/")[2] + ":" + n for n, p in CASES]
)
def test_article_snapshot_extracts(name: str, page: Page) -> None:
    source = SOURCES.get(name)
    assert source is not None
    spider = SPIDERS_BY_KIND[source.kind](source=source)
    (item,) = list(spider.parse_article(snapshot_response(page.url), FeedHints()))
    assert isinstance(item, ArticleItem)
    normalized = NormalizePipeline().process_item(item)
    assert isinstance(normalized, ArticleItem)

    assert normalized.title == page.title
    assert normalized.language == page.lang
    assert normalized.canonical_url == canonical_url(page.url)
    published = datetime.fromisoformat(page.iso)
    assert normalized.published_at is not None
    if name in DATE_ONLY:
        kyiv = ZoneInfo("Europe/Kyiv")
        day = published.astimezone(kyiv).date()
        assert normalized.published_at == datetime(day.year, day.month, day.day, tzinfo=kyiv)
        assert normalized.date_origin in ("selector", "page-text")
    else:
        assert normalized.published_at == published.astimezone(UTC)
        assert normalized.date_origin in ("selector", "page-meta")
    assert page.paragraphs[-1] in normalized.text
    assert page.paragraphs[0] in normalized.text or page.paragraphs[1] in normalized.text
    for chrome in FURNITURE:
        assert chrome not in normalized.text, chrome
