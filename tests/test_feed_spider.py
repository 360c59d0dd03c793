"""The feed spider's callbacks, fed responses built from snapshot files (no reactor)."""

from __future__ import annotations

import hashlib

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse, Response, TextResponse, XmlResponse

from deportwatch.config.sources import Source, load_sources, parse_sources
from pipeline.items import ArticleItem
from spiders.extract import FeedHints
from spiders.feed import FeedSpider, entry_hints, update_period
from tests.conftest import REPO
from tests.helpers import snapshot_response

KI_FEED = "https://kyivindependent.com/news-archive/rss/"


def spider(name: str = "kyiv-independent") -> FeedSpider:
    source = load_sources(REPO / "sources.toml").get(name)
    assert source is not None
    return FeedSpider(source=source)


def test_feed_entries_become_article_requests_with_hints() -> None:
    requests = list(spider().parse_feed(snapshot_response(KI_FEED)))
    assert [r.url for r in requests] == [
        "https://kyivindependent.com/national-resistance-center-russia-moves-deported-ukrainians-to-55-distant-regions/",
        "https://kyivindependent.com/power-restored-to-most-of-kharkiv-after-overnight-strike-on-substation/",
        "https://kyivindependent.com/ombudsman-31-children-brought-back-to-ukraine/?utm_source=rss&utm_medium=feed",
    ]
    hints = requests[0].cb_kwargs["hints"]
    title = "National Resistance Center: Russia moves deported Ukrainians to 55 distant regions"
    summary = (
        "Civilians taken from occupied areas are being settled far from Ukraine and pushed "
        "towards Russian passports, the military's National Resistance Center said."
    )
    assert hints == FeedHints(
        title=title,
        published="2023-04-07T15:37:50+00:00",
        author="The Kyiv Independent news desk",
        summary=summary,
        guid="64303a1f9d2c7e0001a4b101",
        meta_hash=hashlib.sha256(f"{title}\n{summary}".encode()).hexdigest(),
    )


def test_entry_metadata_hash_ignores_the_date() -> None:
    entry = {"title": "T", "summary": "S", "published_parsed": (2023, 4, 7, 15, 0, 0, 4, 97, 0)}
    churned = entry | {"published_parsed": (2023, 4, 8, 9, 0, 0, 5, 98, 0)}
    edited = entry | {"title": "T, updated"}
    assert entry_hints(entry).meta_hash == entry_hints(churned).meta_hash
    assert entry_hints(entry).meta_hash != entry_hints(edited).meta_hash


def test_max_items_limits_entries_followed() -> None:
    source = parse_sources(
        {
            "source": [
                {
                    "name": "ki",
                    "kind": "feed",
                    "start_urls": [KI_FEED],
                    "languages": ["en"],
                    "max_items": 2,
                }
            ]
        },
        "t",
    ).sources[0]
    assert len(list(FeedSpider(source=source).parse_feed(snapshot_response(KI_FEED)))) == 2


def test_atom_feed_with_relative_links() -> None:
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Ministry</title>
<entry><title>Children returned</title><link href="/news/returned-children/"/>
<id>tag:example,2023:1</id><updated>2023-10-19T10:00:00+03:00</updated></entry></feed>"""
    response = XmlResponse(
        url="https://minre.gov.ua/feed/atom/",
        body=atom,
        request=Request("https://minre.gov.ua/feed/atom/"),
    )
    ministry = Source(
        name="minre-feed",
        kind="feed",
        start_urls=("https://minre.gov.ua/feed/atom/",),
        languages=("uk",),
    )
    requests = list(FeedSpider(source=ministry).parse_feed(response))
    assert [r.url for r in requests] == ["https://minre.gov.ua/news/returned-children/"]
    assert requests[0].cb_kwargs["hints"].published == "2023-10-19T07:00:00+00:00"


def test_html_instead_of_feed_is_a_counted_error() -> None:
    s = spider()
    response = HtmlResponse(
        url=KI_FEED, body=b"<html><body><p>Maintenance</p></body></html>", request=Request(KI_FEED)
    )
    assert list(s.parse_feed(response)) == []
    assert s.error_count == 1
    assert s.start_failures == 1
    assert s.error_lines[0].startswith(KI_FEED + ": ")


def test_empty_feed_is_a_counted_error() -> None:
    s = spider()
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>'
    assert list(s.parse_feed(XmlResponse(url=KI_FEED, body=body, request=Request(KI_FEED)))) == []
    assert s.error_lines == [f"{KI_FEED}: feed has no entries"]


def test_garbage_bytes_are_a_counted_error() -> None:
    s = spider()
    response = TextResponse(url=KI_FEED, body=bytes(range(256)) * 4, request=Request(KI_FEED))
    assert list(s.parse_feed(response)) == []
    assert s.error_count == 1


def test_article_page_becomes_an_item() -> None:
    url = "https://kyivindependent.com/ombudsman-31-children-brought-back-to-ukraine/?utm_source=rss&utm_medium=feed"
    response = snapshot_response(url)
    hints = FeedHints(title="Feed title", published="2023-04-06T19:02:33+00:00", guid="g-1")
    [item] = list(spider().parse_article(response, hints))
    assert isinstance(item, ArticleItem)
    assert item.source == "kyiv-independent"
    assert item.url == url
    assert item.final_url == url
    assert (
        item.page_canonical_url
        == "https://kyivindependent.com/ombudsman-31-children-brought-back-to-ukraine/"
    )
    assert item.feed_guid == "g-1"
    assert item.title.startswith("Ombudsman: 31 children brought back")
    assert item.text.startswith("Thirty-one children")
    assert item.source_languages == ("en",)
    assert [c.origin for c in item.date_candidates] == ["page-meta", "feed"]


def test_page_without_content_is_a_counted_error_not_an_item() -> None:
    s = spider()
    url = "https://kyivindependent.com/empty/"
    response = HtmlResponse(url=url, body=b"<html><body></body></html>", request=Request(url))
    assert list(s.parse_article(response, FeedHints())) == []
    assert s.error_lines == [f"{url}: no title and no article text found"]


def test_binary_response_is_a_counted_error() -> None:
    s = spider()
    url = "https://kyivindependent.com/photo.jpg"
    response = Response(
        url=url, body=b"\xff\xd8", headers={"Content-Type": "image/jpeg"}, request=Request(url)
    )
    assert list(s.parse_article(response, FeedHints())) == []
    assert s.error_lines == [f"{url}: not a text page (image/jpeg)"]


@pytest.mark.parametrize(
    ("period", "frequency", "seconds"),
    [
        ("hourly", "1", 3600),
        ("hourly", "2", 1800),
        ("daily", None, 86400),
        ("Weekly", "x", 604800),
        ("sometimes", "1", None),
        (None, None, None),
    ],
)
def test_feed_update_period(period: str | None, frequency: str | None, seconds: int | None) -> None:
    channel = {"sy_updateperiod": period, "sy_updatefrequency": frequency}
    assert update_period(channel) == seconds
