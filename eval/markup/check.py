"""Run the real extraction over real pages kept outside the repository.

The pages are other people's writing and are never committed: ``pages.tsv``
says where each came from, ``pages/`` (git-ignored) holds the local copies.
For every listed page this prints what the archive would store (title, date,
language, the body's first and last 120 characters) and a warning for each
known kind of page chrome that got through.

    python -m eval.markup.check                      # the listed pages
    python -m eval.markup.check --also tests/fixtures/web   # and a snapshot directory
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a file, not with -m
    sys.path.insert(0, str(REPO))

from bs4 import BeautifulSoup  # noqa: E402
from scrapy import Request  # noqa: E402
from scrapy.http import HtmlResponse  # noqa: E402

from deportwatch.config.sources import Source, load_sources  # noqa: E402
from eval.markup import expect  # noqa: E402
from pipeline.items import ArticleItem  # noqa: E402
from pipeline.normalize import NormalizePipeline  # noqa: E402
from spiders.extract import FeedHints  # noqa: E402
from spiders.feed import FeedSpider  # noqa: E402
from spiders.telegram import TelegramSpider  # noqa: E402

HERE = Path(__file__).resolve().parent
LIST = HERE / "pages.tsv"
PAGES = HERE / "pages"
EDGE = 120

# What each warning looks for. These are the check's own patterns, kept apart
# from the extraction's, so the check does not grade the code by its own rules.
ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]+);", re.IGNORECASE)
TITLE_SEPARATORS = (" — ", " – ", " - ", " | ", " · ", " :: ")
CROSS_LINK = re.compile(
    r"^[\W_]*(читайте|дивіться|смотрите|також читайте|read also|read more|see also|also read)\b",
    re.IGNORECASE,
)
SUBSCRIBE = re.compile(
    r"subscribe|newsletter|enter your email|indicates required|підпис|розсилк|подпис|рассылк",
    re.IGNORECASE,
)
SERVICE_TEXT = re.compile(
    r"^(channel created|channel photo (updated|removed)|channel name was changed)|\bpinned «",
    re.IGNORECASE,
)
KINDS = ("entity-in-title", "site-name-in-title", "headline-repeated", "cross-link-at-end",
         "subscribe-text", "service-message-kept")  # fmt: skip


@dataclass
class Page:
    file: str
    repo: str
    path: str
    commit: str
    url: str
    language: str
    note: str


@dataclass
class Stored:
    title: str
    date: str
    language: str
    text: str
    when: str = ""  # UTC, to the minute, as the expectations give it
    warnings: list[str] = field(default_factory=list)


def listed_pages() -> list[Page]:
    with LIST.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return [Page(**{key: (value or "").strip() for key, value in row.items()}) for row in rows]


def _folded(text: str) -> str:
    kept = (ch if unicodedata.category(ch)[0] in "LN" else " " for ch in text.casefold())
    return " ".join("".join(kept).split())


def _site_names(html: str, url: str) -> set[str]:
    soup = BeautifulSoup(html, "lxml")
    names = {str(m.get("content") or "") for m in soup.select('meta[property="og:site_name"]')}
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    names |= {host, host.split(".")[0]}
    return {_folded(n) for n in names if _folded(n)}


def _service_posts(html: str) -> set[str]:
    soup = BeautifulSoup(html, "lxml")
    found = set()
    for message in soup.select("div.tgme_widget_message[data-post]"):
        if any("service" in str(c) for c in message.get_attribute_list("class")):
            found.add(f"https://t.me/{message['data-post']}")
    return found


def warnings_for(stored: Stored, html: str, url: str, *, post: bool = False) -> list[str]:
    found = []
    if ENTITY.search(stored.title):
        found.append("entity-in-title")
    names = _site_names(html, url)
    if any(
        sep in stored.title and _folded(stored.title.rpartition(sep)[2]) in names
        for sep in TITLE_SEPARATORS
    ):
        found.append("site-name-in-title")
    paragraphs = [p for p in stored.text.split("\n") if p.strip()]
    # A post's title is its own first line, and a one-paragraph body has nothing to drop.
    repeated = len(paragraphs) > 1 and _folded(paragraphs[0]) == _folded(stored.title)
    if repeated and not post:
        found.append("headline-repeated")
    if paragraphs and CROSS_LINK.match(paragraphs[-1]):
        found.append("cross-link-at-end")
    if SUBSCRIBE.search(stored.text):
        found.append("subscribe-text")
    return found


def _drop_titles(node: object) -> object:
    if isinstance(node, dict):
        return {k: _drop_titles(v) for k, v in node.items() if k not in ("headline", "name")}
    if isinstance(node, list):
        return [_drop_titles(v) for v in node]
    return node


def without_meta_titles(html: bytes) -> bytes:
    """The page as a site that declares no title in its metadata would serve it.

    og:title, twitter:title and JSON-LD headline/name go (the JSON stays
    valid, so dates and publishers are still read), and the ``<h1>`` and
    ``<title>`` fallbacks run on real markup.
    """
    soup = BeautifulSoup(html, "lxml")
    for meta in soup.select('meta[property="og:title"], meta[name="twitter:title"]'):
        meta.decompose()
    for script in soup.select('script[type="application/ld+json"]'):
        try:
            data = json.loads(script.string or "")
        except ValueError:
            continue
        script.string = json.dumps(_drop_titles(data), ensure_ascii=False)
    return str(soup).encode("utf-8")


def _stored(item: ArticleItem) -> Stored:
    NormalizePipeline().process_item(item)  # fills the stored fields in place
    when = item.published_at
    date = f"{when:%Y-%m-%d %H:%M} UTC ({item.date_origin})" if when else "-"
    minute = f"{when.astimezone(UTC):%Y-%m-%d %H:%M}" if when else ""
    return Stored(item.title, date, item.language or "-", item.text, minute)


def _configured(url: str) -> Source | None:
    """The project's own source for the page's host, so its selectors apply as in a crawl."""
    host = urlsplit(url).hostname
    for source in load_sources(REPO / "sources.toml").sources:
        hosts = {urlsplit(str(u)).hostname for u in source.start_urls}
        if source.kind != "telegram" and host in hosts:
            return source
    return None


def _source(kind: str, url: str, language: str) -> Source:
    configured = _configured(url) if kind != "telegram" else None
    if configured is not None:
        return configured
    lang = language if language in ("uk", "ru", "en") else "uk"
    url = url.split("?", maxsplit=1)[0]  # a channel's older page (?before=) is not its start URL
    return Source(name="markup-check", kind=kind, start_urls=(url,), languages=(lang,))  # type: ignore[arg-type]


def run_article(html: bytes, url: str, language: str) -> list[tuple[str, Stored]]:
    """The feed spider's own article step: the same call a crawl makes for each page."""
    spider = FeedSpider(source=_source("feed", url, language))
    response = HtmlResponse(url=url, body=html, encoding="utf-8", request=Request(url))
    return [(item.url, _stored(item)) for item in spider.parse_article(response, FeedHints())]


def run_channel(html: bytes, url: str, language: str) -> list[tuple[str, Stored]]:
    """The telegram spider's own page step; every post it would store."""
    spider = TelegramSpider(source=_source("telegram", url, language))
    response = HtmlResponse(url=url, body=html, encoding="utf-8", request=Request(url))
    response.meta["start_url"] = url.split("?", maxsplit=1)[0]
    items = [o for o in spider.parse_channel(response) if isinstance(o, ArticleItem)]
    return [(item.url, _stored(item)) for item in items]


def check(html: bytes, url: str, language: str) -> list[tuple[str, Stored]]:
    text = html.decode("utf-8", errors="replace")
    is_channel = urlsplit(url).hostname in ("t.me", "telegram.me")
    results = (run_channel if is_channel else run_article)(html, url, language)
    service = _service_posts(text) if is_channel else set()
    for post_url, stored in results:
        stored.warnings = warnings_for(stored, text, url, post=is_channel)
        if post_url in service or (is_channel and SERVICE_TEXT.search(stored.text)):
            stored.warnings.append("service-message-kept")
    return results


def _edge(text: str, head: bool) -> str:
    flat = " ".join(text.split())
    if len(flat) <= EDGE:
        return flat
    return flat[:EDGE] + " …" if head else "… " + flat[-EDGE:]


def report(label: str, results: list[tuple[str, Stored]], totals: Counter[str]) -> None:
    print(f"== {label}")
    if not results:
        print("   (nothing stored)")
    for url, stored in results:
        print(f"   {url}")
        print(f"   title:    {stored.title}")
        print(f"   date:     {stored.date}   language: {stored.language}")
        print(f"   starts:   {_edge(stored.text, True)}")
        print(f"   ends:     {_edge(stored.text, False)}")
        for warning in stored.warnings:
            print(f"   WARNING:  {warning}")
        totals.update(stored.warnings)
    print()


def snapshot_pages(root: Path) -> list[tuple[Path, str]]:
    """Every page of a snapshot directory (``DIR/<host>/<path>``) with its URL."""
    pages = []
    for file in sorted(root.rglob("*")):
        if not file.is_file() or file.suffix in (".xml", ".toml", ".rss"):
            continue
        relative = file.relative_to(root).as_posix()
        head = file.read_bytes()[:2000].lower()
        if b"<html" not in head and b"<!doctype" not in head:
            continue
        path = relative.removesuffix("index.html")
        pages.append((file, "https://" + path))
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--also", type=Path, action="append", default=[],
                        help="a snapshot directory whose pages are checked too")  # fmt: skip
    parser.add_argument("--without-meta-titles", action="store_true",
                        help="drop the titles a page declares in its metadata")  # fmt: skip
    args = parser.parse_args(argv)

    totals: Counter[str] = Counter()
    missing = []
    checked = 0
    expectations = expect.load()
    clean = []
    for page in listed_pages():
        local = PAGES / page.file
        if not local.is_file():
            missing.append(page)
            continue
        html = local.read_bytes()
        if args.without_meta_titles and "t.me" not in page.url:
            html = without_meta_titles(html)
        results = check(html, page.url, page.language)
        report(f"{page.file} ({page.language}) {page.note}", results, totals)
        checked += 1
        if page.file in expectations:
            stored = [(s.title, s.text, s.when, s.language, u) for u, s in results]
            off = expect.mismatches(expectations[page.file], stored)
            for line in off:
                print(f"   EXPECTED: {line}")
            totals.update(kind.split(":")[0] for kind in off)
            if not off and not any(s.warnings for _, s in results):
                clean.append(page.file)
            print()
    for root in args.also:
        for file, url in snapshot_pages(root):
            report(f"{file.relative_to(root)}", check(file.read_bytes(), url, ""), totals)
            checked += 1

    if missing:
        print(f"{len(missing)} listed page(s) missing from {PAGES.relative_to(REPO)}/:")
        for page in missing:
            at = f", commit={page.commit}" if page.commit else ""
            print(f"   {page.file}: search tool read_file repo={page.repo}, path={page.path}{at};"
                  " save its text under that file name")  # fmt: skip
        print()
    print(f"checked {checked} page(s) on {datetime.now(UTC):%Y-%m-%d}; warnings:")
    for kind in KINDS:
        print(f"   {kind:22} {totals[kind]}")
    print(f"   {'total':22} {sum(totals[kind] for kind in KINDS)}")
    listed = [
        p.file for p in listed_pages() if p.file in expectations and (PAGES / p.file).is_file()
    ]
    print("differences from expected.tsv:")
    for kind in ("items", "title", "starts", "ends", "date", "language", "chrome kept"):
        print(f"   {kind:22} {totals[kind]}")
    print(f"clean (as expected, no warning): {len(clean)} of {len(listed)} listed page(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
