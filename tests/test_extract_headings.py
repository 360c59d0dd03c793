"""A headline shown twice on the page (banner and article block) is one title, not two."""

from __future__ import annotations

from scrapy.http import HtmlResponse

from deportwatch.config.sources import Selectors
from spiders.extract import extract_article

URL = "https://vartovyi.example/community/article/77/zvit/"
HEADLINE = "Директор агенції: рішення про виключення зі «Списку» було неочікуваним"
PARAGRAPHS = [
    "Директор державної агенції заявив, що редакція змінює стандарти роботи і сподівається "
    "повернутися до переліку вже за пів року.",
    "За його словами, агенція оновить статут і створить внутрішню комісію, яка стежитиме "
    "за дотриманням стандартів у кожній новині.",
    "Нагадаємо, перелік оновлюють двічі на рік за результатами моніторингу онлайн-медіа.",
]


def _page(head: str) -> HtmlResponse:
    """The layout of a real news site without <article>: the headline sits in a banner
    block above the columns and again in the article block, and a donation appeal
    shares the content block with the text."""
    body = (
        '<div class="menu"><a href="/">Головна</a> <a href="/news/">Новини</a></div>'
        f'<div class="banner"><div class="titleBlk"><h1>{HEADLINE}</h1></div>'
        '<div class="date">26 Квітня 2024</div></div>'
        '<div class="artBlock">'
        f'<div class="titleBlk"><h1>{HEADLINE}</h1></div>'
        '<div class="author"><a href="/authors/1/">Ірина Приклад</a></div>'
        '<div class="content">'
        + "".join(f"<p>{p}</p>" for p in PARAGRAPHS)
        + '<div class="donate"><div>ПОДОБАЄТЬСЯ НАША РОБОТА?</div>'
        '<form action="/donate"><input type="number" name="amount" value="100">'
        '<input type="submit" value="Підтримати"></form></div>'
        "</div>"
        '<div class="tags">Теги: <a href="/tag/1/">медіа</a></div>'
        "</div>"
    )
    html = f'<html lang="uk"><head>{head}</head><body>{body}</body></html>'
    return HtmlResponse(url=URL, body=html.encode(), encoding="utf-8")


def test_two_h1_with_the_same_headline_make_one_title_and_leave_the_body() -> None:
    # No og:title, no JSON-LD headline: the page's own <h1> is the title.
    response = _page('<meta property="article:published_time" content="2024-04-26T17:08:00+03:00">')
    found = extract_article(response.selector, response.url, Selectors())
    assert found.title == HEADLINE
    assert found.text.split("\n") == PARAGRAPHS


def test_declared_news_article_keeps_donation_box_and_tags_out_and_one_title() -> None:
    response = _page(
        f"<title>{HEADLINE} - Вартовий медіа.</title>"
        '<script type="application/ld+json">{"@type": "NewsArticle",'
        ' "publisher": {"@type": "Organization", "name": "Вартовий медіа"}}</script>'
    )
    found = extract_article(response.selector, response.url, Selectors())
    assert found.title == HEADLINE
    assert "ПОДОБАЄТЬСЯ" not in found.text
    assert "Теги" not in found.text
