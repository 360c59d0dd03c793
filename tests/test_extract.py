"""Extraction from the offline snapshots: every field, and no page chrome in the body."""

from __future__ import annotations

import pytest
from scrapy.http import HtmlResponse

from deportwatch.config.sources import Selectors, load_sources
from pipeline.items import DateCandidate
from spiders.extract import FeedHints, extract_article
from tests.conftest import REPO
from tests.helpers import snapshot_response

KI = "https://kyivindependent.com/"
KI_NRC = KI + "national-resistance-center-russia-moves-deported-ukrainians-to-55-distant-regions/"
NV_CAMPS = (
    "https://english.nv.ua/nation/"
    "russia-took-nearly-10-000-ukrainian-children-to-health-camps-this-autumn-50379522.html"
)
NV_GRAIN = "https://english.nv.ua/business/ukraine-s-grain-exports-rose-in-december-ministry-says-50379610.html"
CHROME = [
    "News Feed",
    "Enter your email to subscribe",
    "Editors' Picks",
    "Finland pledges",
    "MORE NEWS",
    "Skip to content",
    "This audio is created with AI assistance",
    "Dozens of states denounce",  # the "read also" bookmark card
    "About us",
]


def nv_selectors() -> Selectors:
    source = load_sources(REPO / "sources.toml").get("nv-en")
    assert source is not None
    return source.selectors


def test_kyiv_independent_article() -> None:
    response = snapshot_response(KI_NRC)
    found = extract_article(response.selector, response.url, Selectors())
    assert found.title == (
        "National Resistance Center: Russia moves deported Ukrainians to 55 distant regions"
    )
    assert found.author == "The Kyiv Independent news desk"
    assert found.date_candidates == [DateCandidate("page-meta", "2023-04-07T15:37:50.000Z")]
    assert found.canonical_url == KI_NRC
    assert found.language == "en"
    assert found.body_from == "trafilatura"
    assert found.text.startswith("Russia is sending Ukrainians deported from occupied territories")
    assert found.text.endswith("Only 327 of them have been brought home so far.")
    assert found.text.count("\n") == 4  # five paragraphs
    for chrome in CHROME:
        assert chrome not in found.text


@pytest.mark.parametrize(
    ("slug", "origin", "value"),
    [
        # JSON-LD has no date: article:published_time is used
        (
            "power-restored-to-most-of-kharkiv-after-overnight-strike-on-substation",
            "page-meta",
            "2023-04-07T12:10:04.000Z",
        ),
        # no article:published_time: JSON-LD's datePublished is used
        ("ombudsman-31-children-brought-back-to-ukraine", "page-meta", "2023-04-06T19:02:33.000Z"),
    ],
)
def test_dates_from_either_kind_of_metadata(slug: str, origin: str, value: str) -> None:
    response = snapshot_response(KI + slug + "/")
    found = extract_article(response.selector, response.url, Selectors())
    assert found.date_candidates[0] == DateCandidate(origin, value)


def test_nv_article_with_selectors() -> None:
    response = snapshot_response(NV_CAMPS)
    hints = FeedHints(title="feed title", published="2023-12-28T12:12:00+00:00")
    found = extract_article(response.selector, response.url, nv_selectors(), hints)
    assert (
        found.title
        == "Russia took nearly 10,000 Ukrainian children to 'health camps' this autumn, NRC says"
    )
    assert found.body_from == "selector"
    assert [c.origin for c in found.date_candidates] == ["selector", "page-meta", "feed"]
    assert found.date_candidates[0].value == "28 December 2023, 14:12"
    paragraphs = found.text.split("\n")
    assert len(paragraphs) == 7
    assert paragraphs[0].startswith("Almost 10,000 children from Ukraine's occupied territories")
    assert "Реклама" not in found.text
    assert "Read also" not in found.text
    for noise in (
        "Video: the week at the front",
        "Have a tip?",
        "Also in the news",
        "Support independent",
    ):
        assert noise not in found.text
    assert found.summary is None  # no description meta on NV pages, none in the hints


def test_nv_page_without_metadata_falls_back_to_selector_and_feed() -> None:
    response = snapshot_response(NV_GRAIN)
    hints = FeedHints(published="2023-12-28T09:05:00+00:00", author="NV")
    found = extract_article(response.selector, response.url, nv_selectors(), hints)
    assert [c.origin for c in found.date_candidates] == ["selector", "feed"]
    assert found.author == "NV"
    assert found.text.startswith("Ukraine exported 4.1 million tonnes of grain")


def test_broken_selector_falls_back_to_trafilatura() -> None:
    response = snapshot_response(NV_GRAIN)
    broken = Selectors(body="div.no-such-body p", title="h1.no-such-title")
    found = extract_article(response.selector, response.url, broken)
    assert found.body_from == "trafilatura"
    assert "Ukraine exported 4.1 million tonnes of grain" in found.text
    assert found.title == "Ukraine's grain exports rose in December, ministry says"


def test_page_without_any_date_gets_htmldate_guess() -> None:
    html = (
        "<html><body><article><h1>Report</h1><p>Published 2023-05-14.</p>"
        "<p>" + "Officials reported the removal of children to Russia. " * 5 + "</p>"
        "</article></body></html>"
    )
    response = HtmlResponse(
        url="https://example.org/2023/05/14/report/", body=html.encode(), encoding="utf-8"
    )
    found = extract_article(response.selector, response.url, Selectors())
    assert found.date_candidates == [DateCandidate("page-text", "2023-05-14")]
