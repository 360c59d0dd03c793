"""Small builders shared by tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from scrapy.http import HtmlResponse, Request, XmlResponse

from deportwatch.replay import snapshot_path
from spiders.items import ArticleItem, DateCandidate
from tests.conftest import WEB

FETCHED = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def snapshot_response(url: str, path: Path | None = None) -> HtmlResponse | XmlResponse:
    """A response for ``url`` built from its file in tests/fixtures/web."""
    file = path or snapshot_path(WEB, url)
    assert file is not None, f"no snapshot for {url}"
    cls = XmlResponse if file.suffix == ".xml" else HtmlResponse
    return cls(url=url, body=file.read_bytes(), encoding="utf-8", request=Request(url))


def article_item(**overrides: object) -> ArticleItem:
    values: dict[str, object] = {
        "source": "kyiv-independent",
        "url": "https://kyivindependent.com/a-story/?utm_source=rss",
        "final_url": "https://kyivindependent.com/a-story/?utm_source=rss",
        "title": "  Russia deported   children ",
        "text": "Russia deported children from occupied Kherson Oblast.\n\nOfficials said so.",
        "fetched_at": FETCHED,
        "date_candidates": [DateCandidate("page-meta", "2023-04-07T18:37:00+03:00")],
        "source_languages": ("en",),
    }
    values.update(overrides)
    return ArticleItem(**values)  # type: ignore[arg-type]
