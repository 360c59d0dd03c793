"""Extraction from the offline snapshots: every field, and no page chrome in the body."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.http import HtmlResponse
from sqlalchemy import select

from db.engine import make_engine, make_sessionmaker
from db.models import Article
from deportwatch.config.sources import Selectors, load_sources
from pipeline.items import DateCandidate
from spiders.extract import FeedHints, extract_article
from spiders.middlewares.replay import snapshot_path
from tests.conftest import REPO
from tests.helpers import run_cli, snapshot_response

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


# --- page chrome around the article (synthetic pages in tests/fixtures/chrome) -----

CHROME_WEB = REPO / "tests" / "fixtures" / "chrome"
MINER = "https://novyny.example/news/1001.html"
CENTRE = "https://novyny.example/news/1002.html"


def chrome_page(url: str) -> HtmlResponse:
    response = snapshot_response(url, snapshot_path(CHROME_WEB, url))
    assert isinstance(response, HtmlResponse)
    return response


def page(head: str, body: str, url: str = "https://novyny.example/news/1.html") -> HtmlResponse:
    html = f"<html><head>{head}</head><body>{body}</body></html>"
    return HtmlResponse(url=url, body=html.encode(), encoding="utf-8")


def test_article_declared_in_json_ld_keeps_nothing_from_outside_its_element() -> None:
    response = chrome_page(MINER)
    found = extract_article(response.selector, response.url, Selectors())
    # Short enough that trafilatura alone took the box after the article for its end.
    assert found.text.endswith("Обвиняемому грозит до шести лет лишения свободы.")
    for chrome in ("Enter your email", "indicates required", "Главное за день", "Популярное"):
        assert chrome not in found.text
    assert found.date_candidates == [DateCandidate("page-meta", "2024-05-20T10:15:00+03:00")]


def test_title_is_unescaped_once_per_escaping_and_loses_the_site_name() -> None:
    response = chrome_page(MINER)
    found = extract_article(response.selector, response.url, Selectors())
    assert found.title == 'Дело "минера" метро направлено в суд'


def test_body_loses_the_repeated_headline() -> None:
    response = chrome_page(MINER)
    found = extract_article(response.selector, response.url, Selectors())
    assert found.text.split("\n") == [
        "Мужчина в марте сообщил о взрывчатке на трех станциях метро. Взрывчатку не нашли.",
        "Обвиняемому грозит до шести лет лишения свободы.",
    ]


def test_literal_ampersands_stay_and_a_host_name_suffix_goes() -> None:
    response = chrome_page(CENTRE)
    found = extract_article(response.selector, response.url, Selectors())
    assert found.title == ("AT&T и R&D-центр: в области открыли новый центр помощи переселенцам")
    # A bare "read also" link line inside the body goes, and so does the trailing
    # "Читайте материал «…»"; the paragraphs around them stay.
    assert "Читайте также" not in found.text
    assert "Читайте материал" not in found.text
    assert found.text.startswith("В областном центре начал работу")
    assert found.text.endswith("в том числе телекоммуникационные компании.")
    assert found.text.count("\n") == 2


@pytest.mark.parametrize(
    ("og_title", "title"),
    [
        ("Звіт &amp;amp; висновки | Приклад", "Звіт & висновки"),
        ("AT&amp;T &amp;copy and &amp;not; - Приклад", "AT&T &copy and ¬"),
        ("Приклад — Суд виніс вирок", "Суд виніс вирок"),  # a leading site name
        ("Армія - NRC", "Армія - NRC"),  # a dash clause that is no site name stays
        ("Суд виніс вирок — Видавець Тест", "Суд виніс вирок"),  # the JSON-LD publisher
        ("Приклад", "Приклад"),  # a title that is only the site name stays
        ("Суд виніс вирок&nbsp;— Приклад", "Суд виніс вирок"),  # typographic no-break space
        ("Суд виніс вирок —&nbsp;ПРИКЛАД", "Суд виніс вирок"),
    ],
    ids=[
        "double-escaped",
        "literal-ampersands",
        "leading-name",
        "not-a-name",
        "publisher",
        "only",
        "nbsp-before-dash",
        "nbsp-after-dash",
    ],
)
def test_title_clean_up(og_title: str, title: str) -> None:
    head = (
        f'<meta property="og:title" content="{og_title}">'
        '<meta property="og:site_name" content="Приклад">'
        '<script type="application/ld+json">{"@type": "NewsArticle",'
        ' "publisher": {"@type": "Organization", "name": "Видавець Тест"}}</script>'
    )
    response = page(head, "<article><p>Текст новини, досить довгий для вилучення.</p></article>")
    assert extract_article(response.selector, response.url, Selectors()).title == title


def test_cross_link_inside_a_real_paragraph_is_kept() -> None:
    paragraphs = [
        "Перший абзац новини про відкриття нового центру допомоги в області.",
        "Read also the full statement by the council. It lists every measure and its cost.",
        "Останній абзац новини з подробицями про роботу центру та графік прийому.",
        "Читайте також: Інша новина про інший центр",
        "Read more: Yet another story",
    ]
    body = "<article>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</article>"
    response = page('<script type="application/ld+json">{"@type": "NewsArticle"}</script>', body)
    found = extract_article(response.selector, response.url, Selectors())
    assert found.text.split("\n") == paragraphs[:3]


def test_cross_links_behind_a_marker_go_too() -> None:
    paragraphs = [
        "Перший абзац новини про відкриття нового центру допомоги в області.",
        "&gt;&gt; Читайте також: Інша новина про інший центр",
        "Останній абзац новини з подробицями про роботу центру та графік прийому.",
        "👉 Читайте матеріал «Інша історія про інший центр»",
    ]
    body = "<article>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</article>"
    response = page('<script type="application/ld+json">{"@type": "NewsArticle"}</script>', body)
    found = extract_article(response.selector, response.url, Selectors())
    assert found.text.split("\n") == [paragraphs[0], paragraphs[2]]


@pytest.mark.parametrize(
    "header",
    ["<div class='date'>3 грудня 2026, 12:30</div>", "<div class='rubric'>Новини</div>", ""],
    ids=["date-above", "rubric-above", "headline-only"],
)
def test_an_article_header_above_the_repeated_headline_goes_with_it(header: str) -> None:
    headline = "Суд виніс вирок у справі про незаконне переміщення людей"
    paragraphs = [
        "Перший абзац новини про рішення суду, досить довгий для того, щоб бути справжнім абзацом.",
        "Другий абзац новини з подробицями про розгляд справи та наступні кроки сторін.",
    ]
    body = f"<article>{header}<h1>{headline}</h1>" + "".join(f"<p>{p}</p>" for p in paragraphs)
    response = page(
        f'<meta property="og:title" content="{headline}">'
        '<script type="application/ld+json">{"@type": "NewsArticle"}</script>',
        body + "</article>",
    )
    found = extract_article(response.selector, response.url, Selectors())
    assert found.text.split("\n") == paragraphs


def test_a_line_like_the_headline_after_a_real_paragraph_stays() -> None:
    headline = "Суд виніс вирок"
    paragraphs = [
        "Перший абзац новини про рішення суду, досить довгий для того, щоб бути справжнім абзацом тексту.",
        "Суд виніс вирок",
        "Останній абзац новини з подробицями про розгляд справи та наступні кроки сторін.",
    ]
    body = "<article>" + "".join(f"<p>{p}</p>" for p in paragraphs) + "</article>"
    response = page(
        f'<meta property="og:title" content="{headline}">'
        '<script type="application/ld+json">{"@type": "NewsArticle"}</script>',
        body,
    )
    found = extract_article(response.selector, response.url, Selectors())
    assert found.text.split("\n") == paragraphs


def test_image_captions_are_not_body_text() -> None:
    # Two caption forms a real report page uses: a labelled caption block after
    # the image, and a paragraph that is only italics right after an image.
    # A caption names who is in a photo, which is also why it is not kept.
    paragraphs = [
        "Перший абзац звіту про дотримання стандартів у новинах за місяць.",
        "Другий абзац звіту з подробицями про кожне видання та його показники.",
        "Третій абзац звіту, де курсивом виділено <em>лише одне слово</em> у реченні.",
    ]
    body = (
        "<article><div class='content'>"
        f"<p>{paragraphs[0]}</p>"
        "<div class='pic'><img src='/a.jpg' alt=''></div>"
        "<div class='pic'><em><span class='pic-label img_caption'>Підпис до схеми</span></em></div>"
        f"<p>{paragraphs[1]}</p>"
        "<div class='pic'><a href='/b.jpg'><img src='/b.jpg' alt=''></a></div>"
        "<p style='text-align: center;'><em><span>Знімок екрана з сайту</span></em></p>"
        f"<p>{paragraphs[2]}</p>"
        "<figure><img src='/c.jpg' alt=''><figcaption>Підпис під фото</figcaption></figure>"
        "</div></article>"
    )
    response = page('<script type="application/ld+json">{"@type": "NewsArticle"}</script>', body)
    found = extract_article(response.selector, response.url, Selectors())
    assert found.text.split("\n") == [
        paragraphs[0],
        paragraphs[1],
        paragraphs[2].replace("<em>", "").replace("</em>", ""),
    ]


def test_a_long_block_whose_class_names_a_caption_stays() -> None:
    # Only a line or two is a caption; a theme may name a whole text block so.
    long = "Довгий абзац у блоці з таким класом, що розповідає про події дня докладно. " * 6
    lines = ["Перший абзац новини про відкриття нового центру допомоги в області.", long.strip()]
    body = f"<article><p>{lines[0]}</p><div class='caption-text'><p>{lines[1]}</p></div></article>"
    response = page('<script type="application/ld+json">{"@type": "NewsArticle"}</script>', body)
    found = extract_article(response.selector, response.url, Selectors())
    assert found.text.split("\n") == lines


def test_an_italic_paragraph_that_follows_no_image_stays() -> None:
    lines = [
        "Перший абзац новини про відкриття нового центру допомоги в області.",
        "Повідомлення пресслужби обласної адміністрації, наведене повністю.",
        "Останній абзац новини з подробицями про роботу центру та графік прийому.",
    ]
    body = f"<article><p>{lines[0]}</p><p><em>{lines[1]}</em></p><p>{lines[2]}</p></article>"
    response = page('<script type="application/ld+json">{"@type": "NewsArticle"}</script>', body)
    found = extract_article(response.selector, response.url, Selectors())
    assert found.text.split("\n") == lines


@pytest.mark.e2e
def test_replayed_crawl_stores_clean_titles_and_bodies(database_url: str, tmp_path: Path) -> None:
    """The real command over the synthetic pages: what lands in the archive is clean."""
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[source]]\nname = "novyny"\nkind = "feed"\n'
        'start_urls = ["https://novyny.example/rss.xml"]\nlanguages = ["ru"]\n\n'
        '[[source]]\nname = "prykladnews"\nkind = "telegram"\n'
        'start_urls = ["https://t.me/s/prykladnews"]\nlanguages = ["uk"]\n'
    )
    done = run_cli(["crawl", "--all", "--replay", str(CHROME_WEB)], database_url, sources, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        rows = {a.url: a for a in session.scalars(select(Article))}
    engine.dispose()
    assert sorted(rows) == [MINER, CENTRE, "https://t.me/prykladnews/3"]
    miner = rows[MINER]
    assert miner.title == 'Дело "минера" метро направлено в суд'
    assert miner.text.startswith("Мужчина в марте сообщил")
    assert miner.text.endswith("Обвиняемому грозит до шести лет лишения свободы.")
    assert "subscribe" not in miner.text
    assert "Читайте материал" not in rows[CENTRE].text
    assert rows[CENTRE].title.startswith("AT&T и R&D-центр: ")
    assert not rows[CENTRE].title.endswith("novyny.example")


def test_article_of_line_breaks_with_a_signup_box_beside_it() -> None:
    ld = '<script type="application/ld+json">{"@type": "NewsArticle"}</script>'
    body = (
        '<div class="wrap"><article><h1>Суд виніс вирок</h1><div class="txt">'
        "Суд виніс вирок у справі про підпал складу в березні.<br><br>"
        "Засудженому призначили п'ять років позбавлення волі.</div></article>"
        '<div class="box"><p>Головне за день — найважливіші новини щоранку в одному листі.</p>'
        "<p>Enter your email to subscribe</p><form><input type='email'></form>"
        "<p>* indicates required</p></div></div>"
    )
    response = page(ld, body)
    found = extract_article(response.selector, response.url, Selectors())
    assert found.text.endswith("Засудженому призначили п'ять років позбавлення волі.")
    assert "subscribe" not in found.text
