"""Is an archived article still online? Ask its source again and keep the answer.

Each article's page is requested again, conditionally (its ETag and
Last-Modified), and the answer is recorded on the article with the time:

- ``alive``: 304, the same bytes as its capture, or a page whose article text
  is the same as the archived one;
- ``changed``: a different text. The page is captured (a WARC record) and
  stored as the article's new text, the old one kept as a version, as a
  crawl would;
- ``removed``: 404 or 410, or a redirect to the site's home page or to a page
  that is not this article (another text at another address). ``removed_at``
  keeps the first time it was found gone;
- ``unreachable``: a network error or a server error. Nothing is concluded and
  nothing is recorded: a site that is down has not removed anything.

Redirects are followed by hand, so that where they lead can be judged.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from scrapy.http import HtmlResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db.models import Article, SourceRow
from db.repository.articles import capture_fields, update_article
from deportwatch.config.errors import UsageError
from deportwatch.config.sources import Selectors, Source
from pipeline.items import ArticleItem
from pipeline.normalize import NormalizePipeline
from pipeline.urls import canonical_url
from spiders.base import conditional_headers
from spiders.extract import extract_article
from spiders.middlewares.capture import CaptureFailed, RawResponse, WarcStore, payload_digest

MAX_REDIRECTS = 5
MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    article_id: int
    url: str
    state: str  # alive | changed | removed | unreachable
    detail: str
    at: datetime


@dataclass(frozen=True)
class Answer:
    status: int
    url: str  # where the last request went (after redirects)
    headers: list[tuple[str, str]]
    sent: list[tuple[str, str]]
    body: bytes
    redirected: bool


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def select_for_verify(
    session: Session, ids: list[int], source: str | None, flagged: bool
) -> list[Article]:
    if not ids and source is None and not flagged:
        raise UsageError("say which articles: IDs, --source NAME or --flagged")
    query = select(Article).options(selectinload(Article.versions), selectinload(Article.source))
    if ids:
        query = query.where(Article.id.in_(ids))
    if source is not None:
        source_id = session.scalar(select(SourceRow.id).where(SourceRow.name == source))
        if source_id is None:
            raise UsageError(f"--source {source}: no such source in the archive")
        query = query.where(Article.source_id == source_id)
    if flagged:
        query = query.where(Article.flagged.is_(True))
    found = list(session.scalars(query.order_by(Article.id)))
    missing = sorted(set(ids) - {a.id for a in found})
    if missing:
        raise UsageError(f"no article {', '.join(map(str, missing))} in the archive")
    return found


def fetch(url: str, headers: dict[str, str], timeout: float) -> Answer:
    """GET ``url``, following up to five redirects by hand."""
    redirected = False
    for _ in range(MAX_REDIRECTS + 1):
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http(s) only, checked)
        try:
            with _opener.open(request, timeout=timeout) as response:
                body = response.read(MAX_BYTES)
                return Answer(
                    response.status,
                    url,
                    list(response.headers.items()),
                    list(request.header_items()),
                    body,
                    redirected,
                )
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if 300 <= exc.code < 400 else None
            if location:
                url, redirected = urljoin(url, location), True
                if urlsplit(url).scheme not in ("http", "https"):
                    break
                continue
            body = exc.read(MAX_BYTES) if exc.fp is not None else b""
            return Answer(
                exc.code,
                url,
                list(exc.headers.items()),
                list(request.header_items()),
                body,
                redirected,
            )
    return Answer(0, url, [], [], b"", redirected)


def _home(url: str) -> bool:
    return urlsplit(url).path in ("", "/") and not urlsplit(url).query


class Verifier:
    def __init__(
        self,
        session: Session,
        store: WarcStore | None,
        sources: dict[str, Source],
        user_agent: str,
        timeout: float,
    ) -> None:
        self.session = session
        self.store = store
        self.sources = sources
        self.user_agent = user_agent
        self.timeout = timeout
        self.normalize = NormalizePipeline()
        self.capture_error: str | None = None

    def verify(self, article: Article) -> Verdict:
        url = article.final_url or article.url
        now = datetime.now(UTC)
        if urlsplit(url).scheme not in ("http", "https"):
            return Verdict(article.id, url, "unreachable", "not an http(s) address", now)
        headers = {"User-Agent": self.user_agent, "Accept": "text/html,*/*;q=0.8"}
        headers |= conditional_headers(article.etag, article.last_modified)
        try:
            answer = fetch(url, headers, self.timeout)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            return Verdict(article.id, url, "unreachable", f"network error: {reason}", now)
        state, detail = self._judge(article, url, answer, now)
        if state != "unreachable":
            article.source_state, article.verified_at = state, now
            if state == "removed":
                article.removed_at = article.removed_at or now
            else:
                article.removed_at = None
        return Verdict(article.id, url, state, detail, now)

    def _judge(self, article: Article, url: str, answer: Answer, now: datetime) -> tuple[str, str]:
        if answer.status == 304:
            return "alive", "304 not modified"
        if answer.status in (404, 410):
            return "removed", f"HTTP {answer.status}"
        if answer.status == 0:
            return "unreachable", "too many redirects"
        if answer.status >= 500 or answer.status == 429 or answer.status != 200:
            return "unreachable", f"HTTP {answer.status}"
        moved = answer.redirected and canonical_url(answer.url) != article.canonical_url
        if moved and _home(answer.url):
            return "removed", f"redirected to the home page {answer.url}"
        if article.capture_digest and payload_digest(answer.body) == article.capture_digest:
            return "alive", "same bytes as the archived capture"
        item = self._item(article, answer, now)
        if item is None:
            return ("removed", f"redirected to {answer.url}") if moved else ("alive", "not a page")
        if item.content_hash == article.content_hash and item.title == article.title:
            return "alive", "same text" + (f" at {answer.url}" if moved else "")
        if moved:
            return "removed", f"redirected to another page {answer.url}"
        item.capture = self._capture(answer)
        update_article(article, item, item.content_hash or "")
        for name, value in capture_fields(item.capture).items():
            setattr(article, name, value)
        captured = " (captured)" if item.capture else " (not captured)"
        return "changed", "a new version" + captured

    def _item(self, article: Article, answer: Answer, now: datetime) -> ArticleItem | None:
        response = HtmlResponse(answer.url, body=answer.body, headers=dict(answer.headers))
        if not answer.body.strip():
            return None
        source = self.sources.get(article.source.name)
        selectors = source.selectors if source is not None else Selectors()
        found = extract_article(response.selector, answer.url, selectors)
        if not (found.title or found.text):
            return None
        item = ArticleItem(
            source=article.source.name,
            url=article.url,
            final_url=answer.url,
            title=found.title or article.title,
            text=found.text,
            fetched_at=now,
            page_canonical_url=response.urljoin(found.canonical_url)
            if found.canonical_url
            else None,
            feed_guid=article.feed_guid,
            feed_meta_hash=article.feed_meta_hash,
            etag=dict((k.lower(), v) for k, v in answer.headers).get("etag"),
            last_modified=dict((k.lower(), v) for k, v in answer.headers).get("last-modified"),
            author=found.author,
            summary=found.summary,
            date_candidates=found.date_candidates,
            source_languages=source.languages if source is not None else (),
            page_language=found.language,
        )
        self.normalize.process_item(item)
        # The article keeps its address: a page seen again is the same article.
        item.canonical_url = article.canonical_url
        return item

    def _capture(self, answer: Answer) -> dict[str, object] | None:
        if self.store is None or self.capture_error is not None:
            return None
        raw = RawResponse(answer.status, "HTTP/1.1", answer.headers, answer.body)
        try:
            return self.store.capture(answer.url, raw, answer.sent)
        except CaptureFailed as exc:
            self.capture_error = str(exc)
            return None


def make_store(warc_dir: Path, max_bytes: int) -> WarcStore:
    return WarcStore(warc_dir, max_bytes, f"deportwatch-verify-{socket.gethostname()}")
