"""What every spider shares: its source, error bookkeeping, article pages."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import DontCloseSpider
from scrapy.http import Response, TextResponse
from sqlalchemy.orm import Session, sessionmaker
from twisted.python.failure import Failure

from db.engine import make_engine, make_sessionmaker
from db.models import FetchState
from db.repository.runs import KnownEntry, fetch_state, known_entries
from deportwatch.config.sources import Source
from pipeline.items import ArticleItem
from pipeline.urls import canonical_url
from spiders.evidence import capture_of
from spiders.extract import FeedHints, extract_article
from spiders.failures import describe_failure

MAX_ERROR_LINES = 20  # the run keeps the first few messages; the count keeps them all
PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def on_sites(url: str, domains: list[str]) -> bool:
    """Whether ``url``'s host is one of ``domains`` or under one (any port)."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == d or host.endswith(f".{d}") for d in domains)


def off_site(url: str, domains: list[str]) -> str:
    """Why a URL on another host is not fetched, in words."""
    host = urlsplit(url).hostname or url
    return f"not followed: {host} is outside this source's sites ({', '.join(domains)})"


@dataclass
class PendingFetchState:
    """What a start URL answered; saved only if the whole crawl ends well, so a
    failed article is retried next time instead of hidden behind a 304."""

    etag: str | None
    last_modified: str | None
    body_hash: str
    entry_urls: list[str]
    update_seconds: int | None = None  # the feed's own sy:updatePeriod, if it declares one


class SourceSpider(scrapy.Spider):
    """A spider for one configured source; subclasses implement one *kind*.

    Built by ``from_crawler`` it reads the archive (fetch state of its start
    URLs, which entries are known); built directly, as in unit tests, it
    simply fetches everything.
    """

    kind: ClassVar[str]
    archive: sessionmaker[Session] | None = None
    recheck_window = timedelta(hours=48)
    recheck_spacing = timedelta(0)  # built by from_crawler: the crawl's setting
    # When replaying a snapshot, the time it was taken: look-backs are measured
    # from it, so an offline crawl sees the web as it was then.
    reference_time: datetime | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        engine = make_engine(crawler.settings["DEPORTWATCH_DATABASE_URL"])
        spider.archive = make_sessionmaker(engine)
        spider.recheck_window = timedelta(
            hours=crawler.settings.getfloat("DEPORTWATCH_RECHECK_HOURS", 48)
        )
        spider.recheck_spacing = timedelta(
            minutes=crawler.settings.getfloat("DEPORTWATCH_RECHECK_MINUTES", 15)
        )
        reference = crawler.settings.get("DEPORTWATCH_REFERENCE_TIME")
        spider.reference_time = datetime.fromisoformat(reference) if reference else None
        crawler.signals.connect(lambda **_: engine.dispose(), signals.spider_closed, weak=False)
        crawler.signals.connect(spider._release_backlog, signals.spider_idle)
        spider.request_batch = crawler.settings.getint("DEPORTWATCH_REQUEST_BATCH", 200)
        return spider

    def stat(self, key: str, count: int = 1) -> None:
        crawler = getattr(self, "crawler", None)
        if crawler is not None and crawler.stats is not None:
            crawler.stats.inc_value(key, count)

    def __init__(self, source: Source, run_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(name=source.name, **kwargs)
        self.source = source
        self.allowed_domains = list(source.domains)
        self.error_count = 0
        self.error_lines: list[str] = []
        self.start_failures = 0
        self.run_id = run_id
        self.pending_states: dict[str, PendingFetchState] = {}
        self.skipped: list[str] = []  # canonical URLs listed again, not fetched again
        self.not_modified: list[str] = []  # canonical URLs asked again that answered 304
        self._states: dict[str, FetchState | None] = {}
        # Article pages not yet handed to Scrapy (see ``article_requests``).
        self.backlog: list[tuple[str, FeedHints, KnownEntry | None]] = []
        self.request_batch = 0  # only a crawl hands them out in batches

    def start_request(self, url: str, callback: Any, **meta: Any) -> scrapy.Request:
        """A request for a start document (feed, sitemap, listing page): conditional
        on what it answered last time, its failure counted as a start failure."""
        state = self._state(url)
        headers = conditional_headers(state.etag, state.last_modified) if state else {}
        return scrapy.Request(
            url,
            headers=headers,
            callback=callback,
            errback=self.on_start_error,
            meta={"handle_httpstatus_list": [304], "start_url": url, **meta},
        )

    def _state(self, url: str) -> FetchState | None:
        """A start URL's fetch state, read once per crawl (it is only written at the end)."""
        if self.archive is None:
            return None
        if url not in self._states:
            with self.archive() as session:
                self._states[url] = fetch_state(session, url)
        return self._states[url]

    def unchanged(self, response: Response) -> bool:
        """304, or the same bytes as last time (for servers without validators).

        When it changed, the new validators are kept pending; they are saved
        with the entries it listed if the whole crawl ends well.
        """
        url = response.meta.get("start_url", response.url)
        state = self._state(url)
        body_hash = hashlib.sha256(response.body).hexdigest()
        if response.status == 304 or (state is not None and state.body_hash == body_hash):
            # Everything it lists was handled by the last crawl that ended well.
            listed = json.loads(state.entry_urls or "[]") if state is not None else []
            self.skipped.extend(listed)
            self.stat("deportwatch/articles/unchanged", len(listed))
            self.stat("deportwatch/feeds/unchanged")
            return True
        self.pending_states[url] = PendingFetchState(
            etag=header_value(response, "ETag"),
            last_modified=header_value(response, "Last-Modified"),
            body_hash=body_hash,
            entry_urls=[],
        )
        return False

    def listed(self, response: Response, urls: list[str]) -> PendingFetchState | None:
        """Remember which entries a changed start document listed (see ``unchanged``);
        returns that document's pending state, if it has one."""
        pending = self.pending_states.get(response.meta.get("start_url", response.url))
        if pending is not None:
            pending.entry_urls.extend(canonical_url(url) for url in urls)
        return pending

    def document_failed(self, response: Response, message: str, *, start: bool = True) -> None:
        """A feed, sitemap, listing or channel page that could not be read. A start
        document counts as a start failure: when all of them fail, the run failed."""
        self.start_failures += int(start)
        self.record_error(response.url, message)

    def next_page(self, response: Response, href: str, callback: Any) -> scrapy.Request:
        """The request for the next (older) page of a paginated start document."""
        return scrapy.Request(
            response.urljoin(href),
            callback=callback,
            errback=self.on_page_error,
            meta={
                "page": int(response.meta.get("page", 1)) + 1,
                "start_url": response.meta.get("start_url"),
            },
        )

    def now(self) -> datetime:
        """The crawl's clock for look-backs (the snapshot's time when replaying)."""
        return self.reference_time or datetime.now(UTC)

    def known(self, urls: list[str]) -> dict[str, KnownEntry]:
        """Which of these canonical URLs the archive already holds."""
        if self.archive is None:
            return {}
        with self.archive() as session:
            return known_entries(session, urls)

    def select_new(
        self, links: list[tuple[str, FeedHints]], known: dict[str, KnownEntry] | None = None
    ) -> list[tuple[str, FeedHints, KnownEntry | None]]:
        """Drop entries already archived whose listed metadata (``hints.meta_hash``)
        did not change, unless they are recent enough that an edit is still likely
        (those are re-checked with their validators, so an unedited page answers 304)."""
        links = [(link, hints) for link, hints in links if self.on_site(link)]
        keys = [canonical_url(link) for link, _ in links]
        known = self.known(keys) if known is None else known
        now = datetime.now(UTC)
        wanted: list[tuple[str, FeedHints, KnownEntry | None]] = []
        for key, (link, hints) in zip(keys, links, strict=True):
            entry = known.get(key)
            if entry and entry.feed_meta_hash == hints.meta_hash and not self.due(entry, now):
                self.skipped.append(key)
                continue
            wanted.append((link, hints, entry))
        if len(wanted) < len(links):
            self.stat("deportwatch/articles/unchanged", len(links) - len(wanted))
        return wanted

    def on_site(self, url: str) -> bool:
        """Whether ``url`` is on one of the source's sites; a link elsewhere is not
        followed, and the run says so (the source may need another domain)."""
        if not self.allowed_domains or on_sites(url, self.allowed_domains):
            return True
        self.record_error(url, off_site(url, self.allowed_domains))
        return False

    def due(self, entry: KnownEntry, now: datetime) -> bool:
        """Whether an archived, unchanged entry is asked for again now.

        Edits come early, so an article is re-checked while it is younger than
        the re-check window (48 h), but not on every crawl: only once a quarter
        of its age, and at least ``recheck_spacing`` (15 min), has passed since
        it was last asked. A crawl every half hour thus asks a new article
        again at 30 min, 1 h, 2 h, 2.5 h … rather than 96 times in two days.
        """
        age = now - entry.first_seen_at
        if age >= self.recheck_window:
            return False
        if entry.checked_at is None:
            return True
        return now - entry.checked_at >= max(self.recheck_spacing, age / 4)

    def record_error(self, url: str, message: str) -> None:
        """Count an error against this crawl; the first few are kept verbatim."""
        self.error_count += 1
        if len(self.error_lines) < MAX_ERROR_LINES:
            self.error_lines.append(f"{url}: {message}")
        self.logger.warning("%s: %s", url, message)

    def on_start_error(self, failure: Failure) -> None:
        """A start URL (feed, listing) could not be fetched."""
        self.start_failures += 1
        self.record_error(_failed_url(failure), describe_failure(failure))

    def on_page_error(self, failure: Failure) -> None:
        self.record_error(_failed_url(failure), describe_failure(failure))

    def article_requests(
        self, entries: list[tuple[str, FeedHints, KnownEntry | None]]
    ) -> Iterator[scrapy.Request]:
        """Requests for these article pages: in a crawl, the first ``request_batch``
        now and the rest as the crawl runs dry, so a feed or sitemap of 20,000
        entries does not become 20,000 requests held in memory at once."""
        if not self.request_batch:
            for url, hints, known in entries:
                yield self.article_request(url, hints, known)
            return
        self.backlog.extend(entries)
        yield from self._next_batch()

    def _next_batch(self) -> Iterator[scrapy.Request]:
        # From the end of the list, each batch in its own order: Scrapy takes the
        # last request given first, so pages are fetched in the order they were
        # before batches existed (a feed's oldest entry first, an original before
        # the copies that syndicate it).
        batch = self.backlog[-self.request_batch :]
        del self.backlog[-self.request_batch :]
        for entry in batch:
            yield self.article_request(*entry)

    def _release_backlog(self) -> None:
        """spider_idle: the next batch, and the crawl goes on while any is left."""
        if not self.backlog:
            return
        engine = self.crawler.engine
        assert engine is not None
        for request in self._next_batch():
            engine.crawl(request)
        raise DontCloseSpider

    def article_request(
        self, url: str, hints: FeedHints, known: KnownEntry | None = None
    ) -> scrapy.Request:
        """A request for an article page; a known one is asked only if it changed."""
        headers = conditional_headers(known.etag, known.last_modified) if known else {}
        return scrapy.Request(
            url,
            headers=headers,
            callback=self.parse_article,
            errback=self.on_page_error,
            cb_kwargs={"hints": hints},
            meta={"handle_httpstatus_list": [304]} if headers else {},
        )

    def parse_article(self, response: Response, hints: FeedHints) -> Iterator[ArticleItem]:
        if response.status == 304:  # unchanged since it was archived: seen, not fetched
            key = canonical_url(response.url)
            self.skipped.append(key)
            self.not_modified.append(key)
            self.stat("deportwatch/articles/unchanged")
            return
        content_type = header_value(response, "Content-Type") or ""
        mime = content_type.split(";")[0].strip().lower()
        # Scrapy guesses a text response from a body that looks like text (a PDF
        # often does); a declared type that is not a page is believed first.
        if not isinstance(response, TextResponse) or (mime and mime not in PAGE_TYPES):
            self.record_error(response.url, f"not a text page ({content_type or 'no type'})")
            return
        if not response.body.strip():
            self.record_error(response.url, f"empty page (HTTP {response.status} with no body)")
            return
        found = extract_article(response.selector, response.url, self.source.selectors, hints)
        title = found.title or hints.title
        if not title and not found.text:
            self.record_error(response.url, "no title and no article text found")
            return
        if not found.text:
            # Stored all the same (the report exists), but loudly: extraction broke.
            self.record_error(response.url, "no article text found (extraction failed)")
        yield ArticleItem(
            source=self.source.name,
            url=response.request.meta.get("redirect_urls", [response.url])[0]
            if response.request
            else response.url,
            final_url=response.url,
            title=title or "",
            text=found.text,
            fetched_at=datetime.now(UTC),
            page_canonical_url=response.urljoin(found.canonical_url)
            if found.canonical_url
            else None,
            feed_guid=hints.guid,
            feed_meta_hash=hints.meta_hash,
            etag=header_value(response, "ETag"),
            last_modified=header_value(response, "Last-Modified"),
            author=found.author,
            summary=found.summary,
            date_candidates=found.date_candidates,
            source_languages=self.source.languages,
            page_language=found.language,
            capture=capture_of(response),
        )


def conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    """The validators a server gave, sent back so an unchanged resource answers 304."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def header_value(response: Response, name: str) -> str | None:
    return (response.headers.get(name) or b"").decode("latin-1") or None


def _failed_url(failure: Failure) -> str:
    request = getattr(failure, "request", None)
    return str(request.url) if request is not None else "(unknown URL)"
