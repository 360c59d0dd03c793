"""An article page to title, body, author and date candidates.

Preference, most stable first: the source's own CSS selectors (when given and
matching), the page's structured metadata, the feed entry, and last generic
extraction (trafilatura for the body, htmldate for a date).
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field

import htmldate
import trafilatura
from lxml import html as lxml_html
from parsel import Selector

from deportwatch.config.sources import Selectors
from pipeline.items import DateCandidate
from spiders.clean import (
    drop_cross_links,
    drop_repeated_headline,
    strip_site_name,
    unescape_entities,
)
from spiders.metadata import read_metadata


@dataclass
class FeedHints:
    """What the feed said about an entry, used where the page says nothing better."""

    title: str | None = None
    published: str | None = None
    author: str | None = None
    summary: str | None = None
    guid: str | None = None
    meta_hash: str | None = None  # title and summary, for "is this entry unchanged?"


@dataclass
class Extracted:
    title: str | None
    text: str
    author: str | None
    summary: str | None
    canonical_url: str | None
    language: str | None
    date_candidates: list[DateCandidate] = field(default_factory=list)
    body_from: str = "none"  # selector | trafilatura | none


def _selector_text(sel: Selector, css: str | None) -> str | None:
    if not css:
        return None
    text = " ".join(" ".join(sel.css(css).xpath("string()").getall()).split())
    return text or None


def _headings(sel: Selector) -> list[str]:
    """Each ``<h1>``'s text on its own.

    Pages often show the headline twice (a banner above the columns and the
    article block itself); joined, the two would make a title that matches
    nothing, so the body's repeated headline would stay too.
    """
    texts = (" ".join(node.xpath("string()").get("").split()) for node in sel.css("h1"))
    return [text for text in texts if text]


def _selector_body(sel: Selector, selectors: Selectors) -> str | None:
    if not selectors.body:
        return None
    paragraphs = []
    for node in sel.css(selectors.body):
        text = " ".join(node.xpath("string()").get("").split())
        if text and text not in selectors.drop_paragraphs:
            paragraphs.append(text)
    return "\n".join(paragraphs) or None


# A caption is a line or two; a longer block with "caption" in its class is not one.
_CAPTION_CHARS = 300
_CAPTIONS = '//figcaption | //*[contains(@class, "caption")]'
# A paragraph or block right after an image-only block whose text is all italics.
_AFTER_IMAGE = (
    "//*[self::p or self::div][preceding-sibling::*[1][.//img and normalize-space(string()) = '']]"
)


def _squeezed(texts: list[str]) -> str:
    return "".join("".join(texts).split())


def _drop_captions(sel: Selector) -> None:
    """Image captions out of the page before the body is read.

    Without its image a caption is a stray line in the text ("Screenshot of
    the site", a chart's legend), and a photo's caption names who is in it.
    Two forms: an element the page marks as a caption (``<figcaption>``, a
    class holding "caption"), and a short paragraph that is all italics right
    after a block holding only an image.
    """
    for node in sel.xpath(_CAPTIONS):
        if len(node.xpath("normalize-space(string())").get("")) <= _CAPTION_CHARS:
            node.drop()
    for node in sel.xpath(_AFTER_IMAGE):
        text = _squeezed(node.xpath(".//text()").getall())
        italic = _squeezed(node.xpath(".//em//text() | .//i//text()").getall())
        if text and text == italic and len(text) <= _CAPTION_CHARS:
            node.drop()


def _article_only(sel: Selector) -> lxml_html.HtmlElement | None:
    """The page cut down to its ``<article>``, when the page marks its article clearly.

    A page that declares an article in JSON-LD and holds it in an
    ``<article>`` element has said where the text is: newsletter boxes, "most
    read" lists and forms around that element are not the article's, even
    where trafilatura would take them for its last paragraphs. The element
    chosen is the one holding the ``<h1>``, else the page's only top-level
    ``<article>``, if it holds paragraphs; cards of other stories are
    ``<article>``s too.
    """
    tops = sel.xpath("//article[not(ancestor::article)]")
    with_h1 = [a for a in tops if a.xpath(".//h1")]
    with_text = [a for a in tops if a.xpath(".//p | .//br")]
    chosen = (
        with_h1[0]
        if len(with_h1) == 1
        else with_text[0]
        if len(tops) == 1 == len(with_text)
        else None
    )
    if chosen is None:
        return None
    page = lxml_html.Element("html")
    for head in sel.xpath("/html/head"):
        page.append(deepcopy(head.root))
    body = lxml_html.Element("body")
    body.append(deepcopy(chosen.root))
    page.append(body)
    return page


def _trafilatura(tree: lxml_html.HtmlElement, url: str) -> str | None:
    return trafilatura.extract(
        tree,
        url=url,
        favor_precision=True,
        include_comments=False,
        include_tables=True,
        include_images=False,  # never keep photos: pages show children's faces
        deduplicate=False,
    )


def extract_article(
    sel: Selector, url: str, selectors: Selectors, feed: FeedHints | None = None
) -> Extracted:
    """Extract one article from its page's parsed tree.

    The tree is modified (``drop`` selectors remove page furniture) so the
    structured metadata is read first, and the same tree is handed to
    trafilatura instead of parsing the page a second time.
    """
    feed = feed or FeedHints()
    meta = read_metadata(sel)
    candidates: list[DateCandidate] = []
    selector_date = _selector_text(sel, selectors.date)
    if selector_date:
        candidates.append(DateCandidate("selector", selector_date))
    if meta.published:
        candidates.append(DateCandidate("page-meta", meta.published))
    if feed.published:
        candidates.append(DateCandidate("feed", feed.published))

    headings = _headings(sel)
    raw_title = (
        _selector_text(sel, selectors.title)
        or meta.title
        or feed.title
        or next(iter(headings), None)
        or _selector_text(sel, "title")
    )
    title = None
    if raw_title:
        title = strip_site_name(unescape_entities(raw_title), meta.site_names, url) or None
    author = _selector_text(sel, selectors.author) or meta.author or feed.author

    if not candidates:
        # Only when nothing declares a date: htmldate reads the page's text and URL.
        found = htmldate.find_date(sel.root, url=url, original_date=True, extensive_search=True)
        if found:
            candidates.append(DateCandidate("page-text", found))

    for css in selectors.drop:
        sel.css(css).drop()
    _drop_captions(sel)

    body_from = "selector"
    text = _selector_body(sel, selectors)
    if text is None:
        body_from = "trafilatura"
        article = _article_only(sel) if meta.declares_article else None
        text = (_trafilatura(article, url) if article is not None else None) or _trafilatura(
            sel.root, url
        )
    if not text:
        body_from, text = "none", ""
    headlines = [h for h in (title, raw_title, *headings) if h]
    text = drop_cross_links(drop_repeated_headline(text, headlines))
    return Extracted(
        title=title,
        text=text,
        author=author,
        summary=meta.description or feed.summary,
        canonical_url=meta.canonical_url,
        language=meta.language,
        date_candidates=candidates,
        body_from=body_from,
    )
