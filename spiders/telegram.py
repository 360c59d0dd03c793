"""The ``telegram`` kind: a public channel's web preview, ``https://t.me/s/<channel>``.

Every post becomes an article at its permanent URL ``https://t.me/<channel>/<id>``;
no further page is fetched. The preview lists the newest posts (oldest first)
and a "load more" link to ``?before=<id>``, followed back ``max_pages`` pages or
until a page holds only posts already archived.

Post HTML is turned into text with BeautifulSoup: ``<br>`` become line breaks,
emoji (wrapped in ``<i class="emoji">``) and link texts are kept. Photos and
videos are never kept, only counted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import scrapy
from bs4 import BeautifulSoup
from bs4.element import NavigableString, Tag
from scrapy.http import Response, TextResponse

from deportwatch.config.sources import telegram_channel
from pipeline.items import ArticleItem, DateCandidate
from pipeline.urls import canonical_url
from spiders.base import SourceSpider
from spiders.evidence import capture_of

TITLE_CHARS = 140  # a post has no title: its first line, cut at a word
_SUFFIX = {"K": 1_000, "M": 1_000_000}
# Digits with at most one decimal mark: "." or "1.2.3" is not a count.
_VIEWS = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*([KM]?)\s*$", re.IGNORECASE)


@dataclass
class TelegramPost:
    channel: str
    post_id: int
    url: str  # permanent: https://t.me/<channel>/<id>
    text: str
    published: str | None  # ISO 8601 with offset, as the page gives it
    author: str | None = None  # the channel's display name
    views: int | None = None
    forwarded_from: str | None = None
    forwarded_from_url: str | None = None
    preview_url: str | None = None
    preview_title: str | None = None
    preview_description: str | None = None
    media: int = 0  # photos / videos attached (an album is one post with several)
    links: list[str] = field(default_factory=list)
    # "Channel created", "... pinned «...»", "Channel photo updated": Telegram's
    # own notices in the channel's stream, never a post of the channel's.
    service: bool = False

    @property
    def title(self) -> str:
        first = next((line for line in self.text.split("\n") if line.strip()), "")
        first = first or self.preview_title or ""
        if len(first) <= TITLE_CHARS:
            return first
        return first[:TITLE_CHARS].rsplit(" ", 1)[0] + "…"

    @property
    def links_to(self) -> str | None:
        """The report this post passes on: the forwarded original, the previewed
        article, else the first outside link; dedup joins them into one story."""
        return self.forwarded_from_url or self.preview_url or next(iter(self.links), None)

    @property
    def meta_hash(self) -> str:
        parts = (self.text, self.preview_title or "", self.preview_description or "")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def parse_views(text: str | None) -> int | None:
    """``"856"``, ``"1.2K"``, ``"1,1M"`` as an integer."""
    match = _VIEWS.match(text or "")
    if not match:
        return None
    number = float(match.group(1).replace(",", "."))
    return round(number * _SUFFIX.get(match.group(2).upper(), 1))


def _is_outside_link(href: str) -> bool:
    parts = urlsplit(href)
    return parts.scheme in ("http", "https") and parts.hostname not in ("t.me", "telegram.me")


def post_text(node: Tag) -> tuple[str, list[str]]:
    """A message body as text with its line breaks, and its outside links."""
    links: list[str] = []
    pieces: list[str] = []

    def walk(element: Tag) -> None:
        for child in element.children:
            if isinstance(child, NavigableString):
                pieces.append(str(child))
            elif isinstance(child, Tag):
                if child.name == "br":
                    pieces.append("\n")
                    continue
                walk(child)
                href = str(child.get("href") or "") if child.name == "a" else ""
                if href and _is_outside_link(href):
                    links.append(href)
                    if child.get_text(strip=True) != href:
                        pieces.append(f" ({href})")

    walk(node)
    lines = [" ".join(line.split()) for line in "".join(pieces).split("\n")]
    return "\n".join(line for line in lines if line).strip(), links


def _text_of(node: Tag | None) -> str | None:
    if node is None:
        return None
    text = " ".join(node.get_text(" ").split())
    return text or None


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes '¹' or '٣', which int() refuses."""
    return text.isascii() and text.isdigit()


def parse_post(message: Tag, channel: str) -> TelegramPost | None:
    """One ``div.tgme_widget_message``; None when it is not a readable post."""
    data_post = str(message.get("data-post") or "")
    name, _, number = data_post.rpartition("/")
    if not _is_number(number):
        return None
    body = message.select_one("div.tgme_widget_message_text")
    text, links = post_text(body) if body is not None else ("", [])
    time = message.select_one("a.tgme_widget_message_date time[datetime]")
    forwarded = message.select_one(".tgme_widget_message_forwarded_from_name")
    preview = message.select_one("a.tgme_widget_message_link_preview")
    media = message.select("a.tgme_widget_message_photo_wrap, a.tgme_widget_message_video_player")
    return TelegramPost(
        channel=name or channel,
        post_id=int(number),
        url=f"https://t.me/{name or channel}/{number}",
        text=text,
        published=str(time["datetime"]) if time is not None else None,
        author=_text_of(message.select_one(".tgme_widget_message_owner_name")),
        views=parse_views(_text_of(message.select_one(".tgme_widget_message_views"))),
        forwarded_from=_text_of(forwarded),
        forwarded_from_url=str(forwarded.get("href") or "") or None if forwarded else None,
        preview_url=str(preview.get("href") or "") or None if preview is not None else None,
        preview_title=_text_of(preview.select_one(".link_preview_title")) if preview else None,
        preview_description=(
            _text_of(preview.select_one(".link_preview_description")) if preview else None
        ),
        media=len(media),
        links=links,
        service=is_service_message(message),
    )


def is_service_message(message: Tag) -> bool:
    """Telegram marks its notices ``service_message`` on the message's own element."""
    return any("service" in str(name) for name in message.get_attribute_list("class"))


def parse_channel_page(html: str, channel: str) -> tuple[list[TelegramPost], int | None]:
    """The posts on a preview page (each once, albums included) and the id
    before which older posts are listed, if the page links to them."""
    soup = BeautifulSoup(html, "lxml")
    posts: dict[int, TelegramPost] = {}
    for message in soup.select("div.tgme_widget_message[data-post]"):
        post = parse_post(message, channel)
        if post is not None:
            posts.setdefault(post.post_id, post)
    more = soup.select_one("a.tme_messages_more[data-before]")
    before = str(more["data-before"]) if more is not None else ""
    ordered = sorted(posts.values(), key=lambda p: p.post_id)
    return ordered, int(before) if _is_number(before) else None


class TelegramSpider(SourceSpider):
    kind = "telegram"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.source.start_urls:
            yield self.start_request(url, self.parse_channel, page=1)

    def parse_channel(self, response: Response) -> Iterator[ArticleItem | scrapy.Request]:
        page = int(response.meta.get("page", 1))
        channel = telegram_channel(response.meta.get("start_url", "")) or ""
        if not isinstance(response, TextResponse):
            self.document_failed(response, "channel page is not text", start=page == 1)
            return
        posts, before = parse_channel_page(response.text, channel)
        if not posts:
            message = "no posts found (channel private, renamed, or markup changed)"
            self.document_failed(response, message, start=page == 1)
            return
        known = self.known([canonical_url(post.url) for post in posts])
        seen_before = 0  # archived, or never archived: photos only, service notices
        for post in posts:
            entry = known.get(canonical_url(post.url))
            if post.service:
                self.stat("deportwatch/posts/service")
                seen_before += 1
                continue
            if not post.text and not post.preview_title:
                self.stat("deportwatch/posts/media_only")
                seen_before += 1
                continue
            if entry is not None:
                seen_before += 1
                if entry.feed_meta_hash == post.meta_hash:
                    self.skipped.append(canonical_url(post.url))
                    self.stat("deportwatch/articles/unchanged")
                    continue
            item = self.item(post)  # new, or edited since it was archived
            item.capture = capture_of(response)  # the channel page it was read from
            yield item
        if seen_before == len(posts):
            return  # nothing new here: everything older is archived too
        if before is not None and page < self.source.max_pages:
            yield self.next_page(response, f"?before={before}", self.parse_channel)

    def item(self, post: TelegramPost) -> ArticleItem:
        details: dict[str, object] = {"channel": post.channel, "post_id": post.post_id}
        if post.views is not None:
            details["views"] = post.views
        if post.forwarded_from:
            details["forwarded_from"] = post.forwarded_from
            details["forwarded_from_url"] = post.forwarded_from_url
        if post.preview_url or post.preview_title:
            details["link_preview"] = {
                "url": post.preview_url,
                "title": post.preview_title,
                "description": post.preview_description,
            }
        if post.media:
            details["media"] = post.media
        return ArticleItem(
            source=self.source.name,
            url=post.url,
            final_url=post.url,
            title=post.title,
            text=post.text or post.preview_description or "",
            fetched_at=datetime.now(UTC),
            feed_guid=f"{post.channel}/{post.post_id}",
            feed_meta_hash=post.meta_hash,
            links_to=post.links_to,
            author=post.author,
            summary=post.preview_description,
            date_candidates=[DateCandidate("page-meta", post.published)] if post.published else [],
            source_languages=self.source.languages,
            details=details,
        )
