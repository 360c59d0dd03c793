"""Each source kind's parser, fed the snapshot files (no reactor, no network)."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse, Response

from deportwatch.config.sources import load_sources
from pipeline.items import ArticleItem, CounterItem, DateCandidate
from spiders.counters import CountersSpider, metric_for, parse_as_of, parse_counters, parse_number
from spiders.listing import ListingSpider
from spiders.sitemap import SitemapError, SitemapSpider, read_sitemap
from spiders.telegram import TelegramSpider, parse_channel_page, parse_views
from tests.conftest import FIXTURES, REPO, WEB
from tests.helpers import snapshot_response

SOURCES = load_sources(REPO / "sources.toml")
SNAPSHOT_TIME = datetime(2023, 10, 20, 9, 0, tzinfo=UTC)


def source(name: str):  # type: ignore[no-untyped-def]
    found = SOURCES.get(name)
    assert found is not None
    return found


def html_response(url: str, body: bytes) -> HtmlResponse:
    return HtmlResponse(url=url, body=body, encoding="utf-8", request=Request(url))


# --- sitemap -----------------------------------------------------------------------

MINRE_INDEX = "https://minre.gov.ua/wp-sitemap.xml"
MINRE_POSTS = "https://minre.gov.ua/wp-sitemap-posts-post-1.xml"
NEWS_SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>https://www.pravda.com.ua/news/2023/10/18/7424310/</loc>
<news:news><news:publication><news:name>Ukrainska Pravda</news:name><news:language>uk</news:language></news:publication>
<news:publication_date>2023-10-18T12:31:00+03:00</news:publication_date>
<news:title>Росія вивезла понад 19,5 тисячі дітей</news:title></news:news></url>
</urlset>""".encode()


def sitemap_spider() -> SitemapSpider:
    spider = SitemapSpider(source=source("minre"))
    spider.reference_time = SNAPSHOT_TIME
    return spider


def test_wordpress_sitemap_index_is_read_and_filtered_by_follow() -> None:
    kind, entries = read_sitemap((WEB / "minre.gov.ua/wp-sitemap.xml").read_bytes())
    assert kind == "sitemapindex"
    assert len(entries) == 4
    requests = list(sitemap_spider().parse_sitemap(snapshot_response(MINRE_INDEX)))
    # Only the posts sitemap: pages, categories and users are not news.
    assert [r.url for r in requests] == [MINRE_POSTS]


def test_posts_sitemap_follows_only_entries_inside_the_lookback() -> None:
    spider = sitemap_spider()
    response = snapshot_response(MINRE_POSTS)
    response.meta["start_url"] = MINRE_POSTS
    requests = list(spider.parse_sitemap(response))
    # Newest first; the June entry is older than the 30-day look-back.
    assert [r.url for r in requests] == [
        "https://minre.gov.ua/2023/10/19/vereshhuk-derzhava-dopomozhe-z-povernennyam-kozhnoyi-deportovanoyi-dytyny/",
        "https://minre.gov.ua/2023/10/10/minreintegratsiyi-ogoloshuye-konkurs-na-zamishhennya-posady/",
    ]
    # lastmod feeds the "changed since archived?" hash: a new lastmod, a new fetch.
    assert requests[0].cb_kwargs["hints"].meta_hash != requests[1].cb_kwargs["hints"].meta_hash


def test_news_sitemap_gives_title_and_publication_date_and_gzip_is_unpacked() -> None:
    for body in (NEWS_SITEMAP, gzip.compress(NEWS_SITEMAP)):
        kind, entries = read_sitemap(body, max_size=1_000_000)
        assert kind == "urlset"
        (entry,) = entries
        assert entry.loc == "https://www.pravda.com.ua/news/2023/10/18/7424310/"
        assert entry.title == "Росія вивезла понад 19,5 тисячі дітей"
        assert entry.published == "2023-10-18T12:31:00+03:00"
        assert entry.date == datetime(2023, 10, 18, 9, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x00\x01garbage\xff", "not"),
        (b"<html><body>Not found</body></html>", "not a sitemap (root element: html)"),
        (b"\x1f\x8b\x08\x00broken", "broken gzip data"),
    ],
)
def test_a_document_that_is_not_a_sitemap_is_a_clear_error(body: bytes, message: str) -> None:
    with pytest.raises(SitemapError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_sitemap(body)
    spider = sitemap_spider()
    response = Response(MINRE_INDEX, body=body, request=Request(MINRE_INDEX))
    assert list(spider.parse_sitemap(response)) == []
    assert (spider.error_count, spider.start_failures) == (1, 1)


def test_gzip_bomb_is_refused_within_the_size_limit() -> None:
    bomb = gzip.compress(b"<urlset>" + b" " * 5_000_000 + b"</urlset>")
    with pytest.raises(SitemapError, match="unpacks to more than 1000000 bytes"):
        read_sitemap(bomb, max_size=1_000_000)


# --- listing -----------------------------------------------------------------------

KI_ARCHIVE = "https://kyivindependent.com/news-archive/"


def test_listing_page_gives_article_requests_and_the_next_page() -> None:
    spider = ListingSpider(source=source("kyiv-independent-archive"))
    requests = list(spider.parse_listing(snapshot_response(KI_ARCHIVE)))
    assert [(r.url, r.meta.get("page")) for r in requests] == [
        (
            "https://kyivindependent.com/russia-sends-ukrainian-teenagers-to-military-camps-in-crimea-report/",
            None,
        ),
        ("https://kyivindependent.com/kyiv-reopens-podil-bridge-to-traffic/", None),
        ("https://kyivindependent.com/news-archive/page/2/", 2),
    ]
    assert requests[1].cb_kwargs["hints"].title == (
        "Kyiv reopens Podil bridge to traffic after two years of repairs"
    )


def test_listing_stops_at_max_pages() -> None:
    spider = ListingSpider(source=source("ombudsman-uk"))
    page = snapshot_response("https://ombudsman.gov.ua/uk/news/")
    page.meta["page"] = 2  # ombudsman-uk reads at most 2 pages
    urls = [r.url for r in spider.parse_listing(page)]
    assert all("/news_details/" in url for url in urls)
    assert len(urls) == 2


def test_listing_whose_selector_matches_nothing_is_a_counted_error() -> None:
    spider = ListingSpider(source=source("kyiv-independent-archive"))
    page = html_response(KI_ARCHIVE, b"<html><body><div class='new-design'>x</div></body></html>")
    assert list(spider.parse_listing(page)) == []
    assert spider.error_count == 1
    assert spider.start_failures == 1
    assert "no items matched" in spider.error_lines[0]


# --- telegram ----------------------------------------------------------------------

PGO = "https://t.me/s/pgo_gov_ua"


def pgo_page(url: str = PGO) -> HtmlResponse:
    path = WEB / "t.me/s" / url.rsplit("/", 1)[1]
    return html_response(url, path.read_bytes())


def test_channel_page_posts_with_every_field() -> None:
    posts, before = parse_channel_page(pgo_page().text, "pgo_gov_ua")
    assert before == 4120
    by_id = {p.post_id: p for p in posts}
    assert sorted(by_id) == [4120, 4123, 4124, 4125, 4126]  # the album counts once

    album = by_id[4120]
    assert album.url == "https://t.me/pgo_gov_ua/4120"
    assert album.media == 3
    assert album.views == 12_400
    assert album.published == "2023-10-18T10:05:31+00:00"
    assert album.author == "Офіс Генерального прокурора"
    assert album.text.split("\n") == [
        "Повідомлено про підозру ще двом посадовцям окупаційної адміністрації Херсонщини у "
        "депортації 46 дітей до Росії.",
        "За даними слідства, у жовтні 2022 року вони організували незаконне переміщення "
        "вихованців дитячого будинку до Криму, а згодом – до Краснодарського краю.",
        "Санкція ч. 1 ст. 438 ККУ. 🇺🇦",
    ]

    forwarded = by_id[4123]
    assert forwarded.forwarded_from == "Дмитро Лубінець"
    assert forwarded.forwarded_from_url == "https://t.me/dmytro_lubinetzs/2210"
    assert forwarded.links_to == "https://t.me/dmytro_lubinetzs/2210"
    assert forwarded.text.endswith("Дякую всім, хто долучився! 🙏")

    assert by_id[4124].text == ""
    assert by_id[4124].media == 1

    linked = by_id[4125]
    assert linked.links == ["https://www.gp.gov.ua/ua/posts/news-4125"]
    assert linked.text.endswith("Детальніше (https://www.gp.gov.ua/ua/posts/news-4125)")

    preview = by_id[4126]
    assert preview.text.startswith("#депортація Окупанти вивезли")  # hashtag link: text only
    assert (
        preview.preview_title == "Окупанти вивезли до Росії ще 50 дітей із Херсонщини – омбудсман"
    )
    assert preview.preview_description == "Дітей забрали з інтернату в Олешках."
    assert preview.links_to is not None
    assert preview.links_to.startswith("https://www.ukrinform.ua/")
    assert preview.views == 9_100


def test_posts_become_items_and_photo_only_posts_are_skipped() -> None:
    spider = TelegramSpider(source=source("pgo-telegram"))
    page = pgo_page()
    page.meta["start_url"] = PGO
    out = list(spider.parse_channel(page))
    items = [o for o in out if isinstance(o, ArticleItem)]
    follow = [o for o in out if isinstance(o, Request)]
    assert [i.url for i in items] == [
        f"https://t.me/pgo_gov_ua/{n}" for n in (4120, 4123, 4125, 4126)
    ]
    assert [r.url for r in follow] == ["https://t.me/s/pgo_gov_ua?before=4120"]
    item = items[1]
    assert item.title == "В Україну повернули ще 11 дітей, яких Росія незаконно депортувала."
    assert item.feed_guid == "pgo_gov_ua/4123"
    assert item.date_candidates == [DateCandidate("page-meta", "2023-10-18T14:40:02+00:00")]
    assert item.links_to == "https://t.me/dmytro_lubinetzs/2210"
    assert item.details == {
        "channel": "pgo_gov_ua",
        "post_id": 4123,
        "views": 25_100,
        "forwarded_from": "Дмитро Лубінець",
        "forwarded_from_url": "https://t.me/dmytro_lubinetzs/2210",
    }


CHANNEL_WITH_NOTICES = "https://t.me/s/prykladnews"


def test_service_messages_are_never_stored_as_posts() -> None:
    body = (REPO / "tests/fixtures/chrome/t.me/s/prykladnews").read_bytes()
    posts, _ = parse_channel_page(body.decode(), "prykladnews")
    assert [(p.post_id, p.service) for p in posts] == [(1, True), (2, True), (3, False), (4, True)]

    spider = TelegramSpider(source=source("pgo-telegram"))
    page = html_response(CHANNEL_WITH_NOTICES, body)
    page.meta["start_url"] = CHANNEL_WITH_NOTICES
    items = [o for o in spider.parse_channel(page) if isinstance(o, ArticleItem)]
    assert [i.url for i in items] == ["https://t.me/prykladnews/3"]
    assert items[0].title == "Громаді передали два шкільні автобуси."
    assert spider.error_count == 0


def test_a_page_of_service_messages_only_is_no_error() -> None:
    notice = (
        '<div class="tgme_widget_message text_not_supported_wrap service_message js-widget_message"'
        ' data-post="prykladnews/1"><div class="tgme_widget_message_text js-message_text">'
        "Channel created</div></div>"
    )
    spider = TelegramSpider(source=source("pgo-telegram"))
    page = html_response(CHANNEL_WITH_NOTICES, f"<html><body>{notice}</body></html>".encode())
    page.meta["start_url"] = CHANNEL_WITH_NOTICES
    assert list(spider.parse_channel(page)) == []
    assert spider.error_count == 0


def test_channel_page_without_posts_is_a_counted_error() -> None:
    spider = TelegramSpider(source=source("pgo-telegram"))
    page = html_response(
        PGO, b"<html><body><div class='tgme_page'>Channel not found</div></body></html>"
    )
    page.meta["start_url"] = PGO
    assert list(spider.parse_channel(page)) == []
    assert spider.error_count == 1
    assert spider.start_failures == 1


@pytest.mark.parametrize(
    ("text", "views"),
    [("856", 856), ("1.2K", 1200), ("9,1K", 9100), ("1.1M", 1_100_000), ("", None)],
)
def test_view_counts(text: str, views: int | None) -> None:
    assert parse_views(text) == views


# --- counters ----------------------------------------------------------------------

COW = "https://childrenofwar.gov.ua/"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("19 546", 19546),
        ("19,546", 19546),
        ("19546", 19546),
        ("19\u00a0546", 19546),
        ("19\u202f546", 19546),
        ("1 234 567", 1234567),
        (" 386 ", 386),
        ("19 54", None),
        ("12 років", None),
        ("", None),
    ],
)
def test_counter_number_formats(text: str, value: int | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("label", "metric"),
    [
        ("Депортовано", "deported"),
        ("Children deported", "deported"),
        ("Повернуто", "returned"),
        ("Зникли безвісти", "missing"),
        ("Children found", "found"),
        ("Загинуло", "killed"),
        ("Поранено", "injured"),
        ("Постраждали від сексуального насильства", "sexual_violence"),
        ("Victims of sexual violence", "sexual_violence"),
        ("Шкіл зруйновано", None),
    ],
)
def test_counter_labels_in_ukrainian_and_english(label: str, metric: str | None) -> None:
    assert metric_for(label) == metric


def test_counters_page_both_snapshots() -> None:
    latest = (WEB / "childrenofwar.gov.ua/index.html").read_text(encoding="utf-8")
    earlier = (FIXTURES / "history/2023-04-14/childrenofwar.gov.ua/index.html").read_text(
        encoding="utf-8"
    )
    assert {c.metric: c.value for c in parse_counters(latest)} == {
        "deported": 19546,
        "returned": 386,
        "killed": 510,
        "injured": 1148,
        "missing": 1233,
        "found": 17790,
        "sexual_violence": 14,
    }
    assert {c.metric: c.value for c in parse_counters(earlier)} == {
        "deported": 19384,
        "returned": 361,
        "killed": 468,
        "injured": 947,
        "missing": 404,
        "found": 11296,
        "sexual_violence": 13,
    }
    assert parse_as_of(latest) == date(2023, 10, 18)
    assert parse_as_of(earlier) == date(2023, 4, 14)


def test_other_labelled_totals_count_only_inside_the_counters_block() -> None:
    page = """<html><body>
    <div class="stats">
      <div class="c"><b>19 546</b><span>Депортовано</span></div>
      <div class="c"><b>3 798</b><span>Зруйновано шкіл</span></div>
    </div>
    <div class="cards"><div class="card"><p>PLACEHOLDER</p><span>12</span> років</div></div>
    <footer><span>2023</span> Діти війни</footer>
    </body></html>"""
    counters = {c.metric: (c.label, c.value) for c in parse_counters(page)}
    assert counters == {
        "deported": ("Депортовано", 19546),
        "зруйновано_шкіл": ("Зруйновано шкіл", 3798),
    }


def test_counters_spider_items_and_no_personal_data() -> None:
    spider = CountersSpider(source=source("children-of-war"))
    items = list(spider.parse_counters(snapshot_response(COW)))
    assert all(isinstance(i, CounterItem) for i in items)
    assert {(i.metric, i.value, i.as_of) for i in items} >= {
        ("deported", 19546, date(2023, 10, 18))
    }
    assert "PLACEHOLDER" not in repr(items)  # names on the page never reach an item


def test_counters_page_without_numbers_is_a_counted_error() -> None:
    spider = CountersSpider(source=source("children-of-war"))
    page = html_response(COW, "<html><body><p>Технічні роботи</p></body></html>".encode())
    assert list(spider.parse_counters(page)) == []
    assert spider.error_count == 1
    assert spider.start_failures == 1
