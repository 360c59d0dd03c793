"""The fault matrix: one crawl through every fault the web can throw at a monitor.

Each fault is a source of its own (``/NAME/feed.xml`` on the fault web of
``tests/fault_web.py``); all of them are crawled by one ``deportwatch crawl
--all`` on SQLite and on PostgreSQL. Each fault's check says what must happen:
recorded on its own source's run in words, retried when retrying can help,
refused within the size limit, decoded correctly, never fetched when it must
not be. ``RELIABILITY.md`` is this table (``make reliability`` rewrites it).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from db.engine import make_engine, make_sessionmaker
from db.models import Article, CrawlRun, SourceRow
from tests.conftest import fresh_database
from tests.fault_web import (
    EN_BODY,
    EN_TITLE,
    UK_BODY,
    UK_TITLE,
    Answer,
    FaultHandler,
    FaultWeb,
    article_html,
    gzip_bomb,
    hang,
    oversized,
    reset_mid_body,
    rss,
    statuses_then,
    truncated,
)
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e

# The crawl's settings: short timeouts and backoff, so the matrix runs in seconds.
# The size limit is 512 KB, not the default 10 MB: the crawl must read up to the
# limit within the download timeout, and on a loaded machine it did not always
# (10 MB failed so; 2 MB failed once in a clean-clone run, when the timeout came
# first and the retry was cut at the limit: two fetches where one was expected).
# The timeout is 4 s: at 2 s, on a machine loaded five times over, a reset sent
# 0.1 s after half a body reached the crawl as a timeout.
SETTINGS = {
    "download_timeout": "4",
    "max_response_bytes": str(512 * 1024),
    "retry_times": "2",
    "retry_backoff": "0.2",
    "obey_robots": "true",
}
OK_PAGE = Answer(200, article_html(EN_TITLE, EN_BODY).encode())


@dataclass
class Outcome:
    """What the crawl did with one fault's source."""

    name: str
    run: CrawlRun
    articles: list[Article]
    web: FaultWeb

    @property
    def errors(self) -> str:
        return self.run.error_text or ""

    def fetched(self, path: str = "article") -> int:
        return self.web.count(f"/{self.name}/{path}")

    def gaps(self, path: str = "article") -> list[float]:
        times = self.web.times(f"/{self.name}/{path}")
        return [b - a for a, b in itertools.pairwise(times)]

    def stored_once(self, title: str | None, *phrases: str) -> Article:
        assert len(self.articles) == 1, [a.title for a in self.articles]
        [article] = self.articles
        assert title is None or article.title == title
        for phrase in phrases:
            assert phrase in article.text, article.text[:300]
        return article

    def failed_with(self, reason: str, fetched: int = 1) -> None:
        assert self.run.outcome == "partial", (self.run.outcome, self.errors)
        assert self.articles == []
        assert re.search(reason, self.errors), self.errors
        assert self.fetched() == fetched, self.fetched()


@dataclass(frozen=True)
class Fault:
    name: str
    injected: str  # what the web does (a column of RELIABILITY.md)
    expected: str  # what deportwatch must do
    setup: Callable[[FaultWeb, str], None]
    check: Callable[[Outcome], None]
    extra: tuple[str, ...] = field(default=())


def article(answer: Answer | Callable[[FaultHandler, int], Answer | None]):  # type: ignore[no-untyped-def]
    """A fault in the article page: the feed is fine, the page answers ``answer``."""

    def setup(web: FaultWeb, name: str) -> None:
        web.page(f"/{name}/feed.xml", Answer(200, rss(web.base, name), "application/rss+xml"))
        if isinstance(answer, Answer):
            web.page(f"/{name}/article", answer)
        else:
            web.route(f"/{name}/article", answer)

    return setup


def feed(body: bytes, content_type: str = "application/rss+xml"):  # type: ignore[no-untyped-def]
    """A fault in the feed; its entries (relative ``article``) answer a good page."""

    def setup(web: FaultWeb, name: str) -> None:
        web.page(
            f"/{name}/feed.xml",
            Answer(200, body.replace(b"BASE", web.base.encode()), content_type),
        )
        web.page(f"/{name}/article", OK_PAGE)

    return setup


def redirect_to(target: Callable[[FaultWeb, str], str]):  # type: ignore[no-untyped-def]
    def setup(web: FaultWeb, name: str) -> None:
        article(Answer(302, b"", headers=(("Location", target(web, name)),)))(web, name)
        web.page(f"/{name}/loop", Answer(302, b"", headers=(("Location", f"/{name}/article"),)))

    return setup


def check_recovered(out: Outcome) -> None:
    out.stored_once(EN_TITLE, "eleven children")
    assert (out.run.outcome, out.run.errors) == ("ok", 0)
    assert out.fetched() == 3
    first, second = out.gaps()
    assert first >= 0.2
    assert second >= 0.4  # the backoff doubles


def check_rate_limited(out: Outcome) -> None:
    out.stored_once(EN_TITLE)
    assert (out.run.outcome, out.run.errors) == ("ok", 0)
    assert out.fetched() == 2
    # The server's Retry-After (1 s), not our backoff (0.2 s). One run of this
    # file measured a gap just under a second, cause unknown: Twisted times the
    # wait on the wall clock, the server stamps requests on the monotonic one,
    # but no step between the two was seen on that machine.
    assert out.gaps()[0] >= 0.9


def check_decoded(out: Outcome) -> None:
    article_row = out.stored_once(UK_TITLE, "примусово вивезли групу дітей", "дев'ятнадцять")
    assert (out.run.outcome, out.run.errors) == ("ok", 0)
    assert article_row.flagged


def check_off_domain(out: Outcome) -> None:
    out.failed_with(r"not followed: .*localhost.* is outside this source's sites")
    assert "localhost" not in out.web.hosts()


def check_feed_link_off_domain(out: Outcome) -> None:
    assert out.run.outcome == "partial"
    assert out.articles == []
    assert re.search(r"not followed: .*localhost.* is outside this source's sites", out.errors)
    assert "localhost" not in out.web.hosts()


def check_feed_read(title: str = EN_TITLE, errors: int = 0):  # type: ignore[no-untyped-def]
    def check(out: Outcome) -> None:
        out.stored_once(title)
        assert out.run.errors == errors, out.errors

    return check


def check_broken_feed(out: Outcome) -> None:
    out.stored_once(EN_TITLE)
    assert out.run.outcome == "partial"
    assert re.search(
        r"feed is not well-formed XML \(no element found at line 1, column \d+\)", out.errors
    )
    assert "read 2 entries anyway" in out.errors
    assert "feed entry without a link: 'Two'" in out.errors  # the cut-off one


UK_PAGE = article_html(UK_TITLE, UK_BODY, charset=None)
RSS_BROKEN = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
    b"<item><title>One</title><link>BASE/broken-feed/article</link><guid>1</guid></item>"
    b"<item><title>Two</title><link>BASE/broken-feed/sec"
)
RSS_ENTITIES = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t&nbsp;x</title>'
    b"<item><title>Children&nbsp;returned &mdash; eleven</title>"
    b"<link>BASE/undeclared-entities/article</link><guid>1</guid></item></channel></rss>"
)
ATOM_RELATIVE = (
    b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
    b"<title>t</title><id>urn:x</id><updated>2023-09-27T07:00:00Z</updated>"
    b'<entry><title>One</title><link href="article"/><id>urn:1</id>'
    b"<updated>2023-09-27T07:00:00Z</updated></entry></feed>"
)
UNCLOSED = (
    "<html><head><title>Children returned from Russia</title><body><article><h1>Children "
    "returned from Russia<p>Ukraine has brought back eleven children who had been deported to "
    "Russia, the Ombudsman said on Wednesday<p>The children had been taken from occupied "
    "Kherson Oblast to a so-called health improvement camp in Crimea<div><p>They were "
    "never sent home by the occupying authorities, officials said"
)

FAULTS = (
    Fault(
        "server-error-recovers",
        "503, then 502, then the page",
        "retried with growing delays (0.2 s, 0.4 s), then stored; the run is ok",
        article(statuses_then(OK_PAGE, 503, 502)),
        check_recovered,
    ),
    Fault(
        "not-found",
        "404",
        "not retried; `HTTP 404 Not Found` on the run",
        article(Answer(404, b"")),
        lambda out: out.failed_with(r"/not-found/article: HTTP 404 Not Found"),
    ),
    Fault(
        "gone",
        "410",
        "not retried; `HTTP 410 Gone` on the run",
        article(Answer(410, b"")),
        lambda out: out.failed_with(r"/gone/article: HTTP 410 Gone"),
    ),
    Fault(
        "rate-limited",
        "429 with `Retry-After: 1`, then the page",
        "waits the server's second, then stored",
        article(statuses_then(OK_PAGE, 429, headers=(("Retry-After", "1"),))),
        check_rate_limited,
    ),
    Fault(
        "hang",
        "no answer for 10 s",
        "times out after 4 s, retried twice, then `timed out` on the run",
        article(hang),
        lambda out: out.failed_with(r"/hang/article: timed out", fetched=3),
    ),
    Fault(
        "reset-mid-body",
        "half the body, then a TCP reset",
        "retried, then `connection lost before the response was complete`; no row",
        article(reset_mid_body),
        lambda out: out.failed_with(r"connection lost before the response was complete", 3),
    ),
    Fault(
        "truncated",
        "Content-Length 5,000 bytes longer than the body",
        "retried, then `connection lost before the response was complete`; no partial row",
        article(truncated),
        lambda out: out.failed_with(r"connection lost before the response was complete", 3),
    ),
    Fault(
        "redirect-loop",
        "302 to a page that redirects back",
        "`redirect loop` on the run; stops",
        redirect_to(lambda web, name: f"/{name}/loop"),
        lambda out: out.failed_with(
            r"redirect loop: \S+/redirect-loop/loop leads back to \S+/article"
        ),
    ),
    Fault(
        "redirect-off-domain",
        "302 to another host",
        "not followed (another host is never fetched); said so on the run",
        redirect_to(lambda web, name: f"{web.elsewhere}/{name}/article"),
        check_off_domain,
    ),
    Fault(
        "gzip-bomb",
        "50 MB of zeros gzipped to 50 KB",
        "refused while decompressing, at the size limit (512 KB here)",
        article(gzip_bomb),
        lambda out: out.failed_with(
            r"gzip-bomb/article: refused: over the size limit once decompressed"
        ),
    ),
    Fault(
        "oversized",
        "a 50 MB page (Content-Length given)",
        "refused before the body is read",
        article(oversized),
        lambda out: out.failed_with(r"/oversized/article: refused: over the size limit"),
    ),
    Fault(
        "oversized-undeclared",
        "a 50 MB page with no Content-Length",
        "cut off at the size limit (512 KB here)",
        article(lambda handler, n: oversized(handler, n, declared=False)),
        lambda out: out.failed_with(r"/oversized-undeclared/article: refused: over the size"),
    ),
    Fault(
        "empty",
        "200 with an empty body",
        "`empty page (HTTP 200 with no body)`; no row (the entry is fetched again next time)",
        article(Answer(200, b"")),
        lambda out: out.failed_with(r"/empty/article: empty page \(HTTP 200 with no body\)"),
    ),
    Fault(
        "not-html",
        "a PDF where the page should be",
        "`not a text page (application/pdf)`; no row",
        article(Answer(200, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf")),
        lambda out: out.failed_with(r"/not-html/article: not a text page \(application/pdf\)"),
    ),
    Fault(
        "cp1251-no-charset",
        "Ukrainian text in windows-1251, no charset anywhere",
        "stored, correctly decoded, flagged",
        article(Answer(200, UK_PAGE.encode("cp1251"), "text/html")),
        check_decoded,
    ),
    Fault(
        "koi8u-declared-utf8",
        "koi8-u text sent as `charset=utf-8`",
        "stored, correctly decoded, flagged",
        article(Answer(200, UK_PAGE.encode("koi8-u"), "text/html; charset=utf-8")),
        check_decoded,
    ),
    Fault(
        "cp1251-declared-latin1",
        "windows-1251 text sent as `charset=iso-8859-1`",
        "stored, correctly decoded, flagged",
        article(Answer(200, UK_PAGE.encode("cp1251"), "text/html; charset=iso-8859-1")),
        check_decoded,
    ),
    Fault(
        "unclosed-tags",
        "HTML whose tags are never closed",
        "stored with its whole text",
        article(Answer(200, UNCLOSED.encode())),
        # No title metadata: the feed entry's title is preferred to the page's h1.
        lambda out: out.stored_once(None, "eleven children", "never sent home") and None,
    ),
    Fault(
        "broken-feed",
        "an RSS feed cut off in the middle of an entry",
        "the complete entries are followed; `feed is not well-formed XML` on the run",
        feed(RSS_BROKEN),
        check_broken_feed,
    ),
    Fault(
        "undeclared-entities",
        "an RSS feed using `&nbsp;` and `&mdash;` (undeclared in XML)",
        "read as HTML entities; its entry is followed and stored",
        feed(RSS_ENTITIES),
        check_feed_read(),
    ),
    Fault(
        "atom-relative-links",
        'an Atom feed with relative links (`<link href="article"/>`)',
        "links resolved against the feed's URL; stored",
        feed(ATOM_RELATIVE, "application/atom+xml"),
        check_feed_read(),
    ),
    Fault(
        "robots-forbidden",
        "robots.txt forbids the article",
        "never fetched; `forbidden by robots.txt` on the run",
        article(OK_PAGE),
        lambda out: out.failed_with(r"/robots-forbidden/article: forbidden by robots.txt", 0),
    ),
    Fault(
        "feed-link-off-domain",
        "the feed links to an article on another host",
        "not followed (another host is never fetched); said so on the run",
        lambda web, name: feed(rss(web.base, name, [f"{web.elsewhere}/{name}/article"]))(web, name),
        check_feed_link_off_domain,
    ),
)


@dataclass
class Matrix:
    exit_code: int
    output: str
    outcomes: dict[str, Outcome]
    all_articles: list[Article]


def _sources(web: FaultWeb) -> str:
    return "".join(
        f'[[source]]\nname = "{f.name}"\nkind = "feed"\n'
        f'start_urls = ["{web.base}/{f.name}/feed.xml"]\nlanguages = ["uk", "en"]\n\n'
        for f in FAULTS
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def matrix(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Matrix]:
    tmp = tmp_path_factory.mktemp(f"faults-{request.param}")
    web = FaultWeb()
    for fault in FAULTS:
        fault.setup(web, fault.name)
    web.page(
        "/robots.txt",
        Answer(200, b"User-agent: *\nDisallow: /robots-forbidden/article\n", "text/plain"),
    )
    sources = tmp / "sources.toml"
    sources.write_text(_sources(web))
    with web.serve(), fresh_database(request.param, tmp) as url:
        result = run_cli(["crawl", "--all"], url, sources, tmp, **SETTINGS)
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            runs = {
                name: run
                for name, run in session.execute(
                    select(SourceRow.name, CrawlRun).join(CrawlRun.source)
                )
            }
            rows = list(session.scalars(select(Article)))
            names = dict(session.execute(select(SourceRow.id, SourceRow.name)).all())
        engine.dispose()
        outcomes = {
            f.name: Outcome(
                f.name, runs[f.name], [a for a in rows if names[a.source_id] == f.name], web
            )
            for f in FAULTS
        }
        yield Matrix(result.returncode, result.stdout + result.stderr, outcomes, rows)


def test_the_crawl_goes_through_every_fault_and_keeps_no_partial_row(matrix: Matrix) -> None:
    assert matrix.exit_code == 0, matrix.output
    assert "Traceback" not in matrix.output
    for row in matrix.all_articles:
        assert row.title.strip()
        assert row.text.strip()
        assert row.content_hash
        assert row.cluster_id is not None
    assert all(o.run.outcome in ("ok", "partial") for o in matrix.outcomes.values())


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(matrix: Matrix, fault: Fault) -> None:
    fault.check(matrix.outcomes[fault.name])
