"""A synthetic news site for the crawl benchmarks, served on loopback.

N article pages (en / uk / ru bodies from ``bench.search_latency.articles``:
5% reports on deportations, the rest everyday news), 10% of them syndicated
near-copies of an earlier article, each wrapped in the page furniture the real
sites carry (``tests/fixtures/web``): a long navigation menu, inline styles and
scripts, Open Graph and JSON-LD metadata, related links, a footer. Pages weigh
65-80 KB, in the range of the outlets' pages. One RSS feed lists every article;
a sitemap index lists them too, 1,000 to a child sitemap, as the outlets split
their archives.

Pages are rendered when asked (from a per-page seed), so a 20,000-page site
costs no memory. The server answers conditional requests (ETag) with 304,
can add latency to every answer, and counts what it served.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.search_latency import articles

DUPLICATE_SHARE = 0.10
NAV_LINKS = 160
FOOTER_LINKS = 60
RELATED = 24
SITEMAP_SIZE = 1000  # URLs per child sitemap


def _chrome(rng: random.Random) -> tuple[str, str, str, str]:
    """The parts every page repeats: styles, scripts, menu and footer."""
    words = "news politics war economy world sport culture opinion video photo region".split()
    style = "\n".join(
        f".c{i} {{ margin: {i % 7}px; padding: {i % 5}px {i % 3}em; "
        f"color: #{i * 2731 % 0xFFFFFF:06x}; }}"
        for i in range(220)
    )
    script = "\n".join(
        f"window.__d{i} = {{id: {i}, slot: 'ad-{i}', sizes: [[300, 250], [728, 90]], "
        f"targeting: {{section: '{rng.choice(words)}', pos: {i % 9}}}}};"
        for i in range(260)
    )
    nav = "".join(
        f'<li class="menu__item"><a href="/section/{rng.choice(words)}-{i}">'
        f"{rng.choice(words).title()} {i}</a></li>"
        for i in range(NAV_LINKS)
    )
    footer = "".join(
        f'<a class="footer__link" href="/about/{i}">{rng.choice(words).title()} {i}</a>'
        for i in range(FOOTER_LINKS)
    )
    return style, script, nav, footer


def _near_copy(text: str, rng: random.Random) -> str:
    """A syndicated copy: 5% of words changed and an agency line added."""
    words = text.split()
    for at in rng.sample(range(len(words)), len(words) // 20):
        words[at] = words[at][::-1]
    return " ".join(words) + " (Reporting by the agency; edited by the desk.)"


class SyntheticSite:
    """The site's content; ``serve()`` puts it on a loopback port."""

    def __init__(self, count: int, seed: int = 7) -> None:
        self.count = count
        self.seed = seed
        rng = random.Random(seed)  # noqa: S311 -- reproducible test data
        self.items: list[dict[str, Any]] = list(articles(count, seed))
        for i, item in enumerate(self.items):
            # ASCII slugs, as the outlets transliterate theirs.
            ascii_words = [w for w in item["title"].lower().split()[:6] if w.isascii()]
            item["slug"] = "-".join([str(i + 1), item["language"], *ascii_words[:4]])
            if i and rng.random() < DUPLICATE_SHARE:
                original = self.items[rng.randrange(i)]
                item["text"] = _near_copy(original["text"], rng)
                item["language"] = original["language"]
        self.style, self.script, self.nav, self.footer = _chrome(rng)
        self.base = ""  # the server's address, once serving
        self.feed_version = 0
        self.latency = 0.0
        self.statuses: Counter[int] = Counter()
        self.article_requests = 0
        self._lock = threading.Lock()

    def path(self, i: int) -> str:
        return f"/news/{self.items[i]['slug']}"

    def page(self, i: int) -> bytes:
        item = self.items[i]
        rng = random.Random(self.seed * 1_000_003 + i)  # noqa: S311
        published = item["published_at"].isoformat()
        words = item["text"].split()
        paragraphs = "".join(
            f"<p>{escape(' '.join(words[at : at + 60]))}</p>" for at in range(0, len(words), 60)
        )
        related = "".join(
            f'<li><a href="{self.path(j)}">{escape(self.items[j]["title"])}</a></li>'
            for j in rng.sample(range(self.count), min(RELATED, self.count))
        )
        title = escape(item["title"])
        html = f"""<!doctype html>
<html lang="{item["language"]}">
<head>
<meta charset="utf-8">
<title>{title} | Synthetic News</title>
<meta name="description" content="{escape(" ".join(words[:30]))}">
<meta property="og:title" content="{title}">
<meta property="og:type" content="article">
<meta property="article:published_time" content="{published}">
<link rel="canonical" href="{self.base}{self.path(i)}">
<style>{self.style}</style>
<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "NewsArticle",
"headline": "{title}", "datePublished": "{published}", "inLanguage": "{item["language"]}"}}</script>
<script>{self.script}</script>
</head>
<body>
<header class="header"><nav class="menu"><ul>{self.nav}</ul></nav>
<form class="search"><input name="q"></form></header>
<div class="banner c1">Subscribe to our newsletter</div>
<main>
<article class="post">
<h1 class="post__title">{title}</h1>
<time class="post__date" datetime="{published}">{published[:10]}</time>
<div class="post__body">{paragraphs}</div>
<div class="post__tags"><a href="/tag/war">war</a> <a href="/tag/children">children</a></div>
</article>
<aside class="related"><h2>Read also</h2><ul>{related}</ul></aside>
</main>
<footer class="footer">{self.footer}<p>© Synthetic News</p></footer>
<script>{self.script[:4000]}</script>
</body>
</html>"""
        return html.encode()

    def feed(self) -> bytes:
        built = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=self.feed_version)
        entries = "".join(
            f"<item><title>{escape(item['title'])}</title><link>{self.base}{self.path(i)}</link>"
            f'<guid isPermaLink="false">synthetic-{i + 1}</guid>'
            f"<pubDate>{format_datetime(item['published_at'])}</pubDate>"
            f"<description>{escape(' '.join(item['text'].split()[:30]))}</description></item>"
            for i, item in reversed(list(enumerate(self.items)))
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            "<title>Synthetic News</title><link>/</link><description>benchmark</description>"
            f"<lastBuildDate>{format_datetime(built)}</lastBuildDate>{entries}</channel></rss>"
        ).encode()

    def source_feed(self, per: int, number: int) -> bytes | None:
        """The feed of source ``number`` (from 0) when the site is split into
        sources of ``per`` articles each: its slice of the articles."""
        first = number * per
        if per < 1 or number < 0 or first >= self.count:
            return None
        entries = "".join(
            f"<item><title>{escape(self.items[i]['title'])}</title>"
            f"<link>{self.base}{self.path(i)}</link>"
            f'<guid isPermaLink="false">synthetic-{i + 1}</guid>'
            f"<pubDate>{format_datetime(self.items[i]['published_at'])}</pubDate></item>"
            for i in range(first, min(first + per, self.count))
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Synthetic source {number}</title><link>/</link>"
            f"<description>benchmark</description>{entries}</channel></rss>"
        ).encode()

    def sitemap_index(self) -> bytes:
        children = "".join(
            f"<sitemap><loc>{self.base}/sitemap-{k + 1}.xml</loc></sitemap>"
            for k in range(-(-self.count // SITEMAP_SIZE))
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{children}'
            "</sitemapindex>"
        ).encode()

    def sitemap(self, number: int) -> bytes | None:
        """Child sitemap ``number`` (from 1): its articles, newest first."""
        first = (number - 1) * SITEMAP_SIZE
        if number < 1 or first >= self.count:
            return None
        urls = "".join(
            f"<url><loc>{self.base}{self.path(i)}</loc>"
            f"<lastmod>{self.items[i]['published_at'].isoformat()}</lastmod></url>"
            for i in reversed(range(first, min(first + SITEMAP_SIZE, self.count)))
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
        ).encode()

    def touch_feed(self) -> None:
        """A new build of the feed (same entries): it answers 200 again, not 304."""
        self.feed_version += 1

    def answer(self, path: str) -> tuple[bytes, str] | None:
        if path == "/feed.xml":
            return self.feed(), "application/rss+xml"
        if path == "/sitemap.xml":
            return self.sitemap_index(), "application/xml"
        if path.startswith("/sitemap-") and path.endswith(".xml"):
            number = path.removeprefix("/sitemap-").removesuffix(".xml")
            body = self.sitemap(int(number)) if number.isdigit() else None
            return (body, "application/xml") if body is not None else None
        if path.startswith("/feeds/") and path.endswith(".xml"):
            # /feeds/<per>/<number>.xml: one source's feed (bench.queue_sweep)
            parts = path.removeprefix("/feeds/").removesuffix(".xml").split("/")
            if len(parts) == 2 and all(part.isdigit() for part in parts):
                body = self.source_feed(int(parts[0]), int(parts[1]))
                return (body, "application/rss+xml") if body is not None else None
            return None
        if path.startswith("/news/"):
            number = path.removeprefix("/news/").split("-", 1)[0]
            if number.isdigit() and 1 <= int(number) <= self.count:
                return self.page(int(number) - 1), "text/html; charset=utf-8"
        return None

    def record(self, status: int, article: bool) -> None:
        with self._lock:
            self.statuses[status] += 1
            self.article_requests += article

    def reset_counts(self) -> None:
        with self._lock:
            self.statuses.clear()

    @contextmanager
    def serve(self) -> Iterator[str]:
        """The site on a free loopback port; yields its base URL."""
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if site.latency:
                    time.sleep(site.latency)
                found = site.answer(self.path.split("?", 1)[0])
                if found is None:
                    site.record(404, False)
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, kind = found
                etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'
                article = self.path.startswith("/news/")
                if self.headers.get("If-None-Match") == etag:
                    site.record(304, article)
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                site.record(200, article)
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self.base
        finally:
            server.shutdown()
            server.server_close()
