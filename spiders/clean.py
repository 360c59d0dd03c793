"""What an article page wraps around its title and body, taken off again.

Real pages escape titles twice, end them with the site's name, repeat the
headline as the body's first paragraph and close the body with a link to
another story. Each of these would be archived, searched and flagged as if the
article said it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import urlsplit

# Only references closed by ";": html.unescape alone would also read legacy
# forms such as "&copy" inside literal text ("AT&copy" is not "AT©").
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# A page escaping an already escaped title gives "&amp;quot;": two rounds undo that.
_UNESCAPE_ROUNDS = 3
# Between a title and the site's name: spaced dashes, bars, middle dots, double colons.
_SEPARATORS = ("—", "–", "-", "|", "·", "::", "/")
# Paragraphs pointing at another story ("Read also: ..."). Matched at a
# paragraph's start, case-insensitive; Ukrainian, Russian and English.
CROSS_LINK_PREFIXES = (
    "читайте також",
    "також читайте",
    "читайте більше",
    "дивіться також",
    "читайте матеріал",
    "читайте также",
    "читайте тоже",
    "читайте материал",
    "смотрите также",
    "read also",
    "also read",
    "see also",
    "read more:",
)
# A marker before the words ("👉", ">>>", "▶") is still a cross-link.
_CROSS_LINK = re.compile(
    r"^[\W_]*(?:" + "|".join(re.escape(p) for p in CROSS_LINK_PREFIXES) + r")(?=$|[\s:.,;—–-])",
    re.IGNORECASE,
)
# A cross-link inside the body is dropped only when it is a bare link line:
# the prefix, then a short title with no second sentence.
_LINK_LINE_CHARS = 200
_SENTENCE_BREAK = re.compile(r"[.!?…]\s+\S")


def unescape_entities(text: str) -> str:
    """``&quot;`` (and ``&amp;quot;``) as the characters they stand for; ``AT&T`` as it is."""
    for _ in range(_UNESCAPE_ROUNDS):
        unescaped = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
        if unescaped == text:
            break
        text = unescaped
    return text


def _folded(text: str) -> str:
    """Case, punctuation and spacing folded: what a reader would call the same words."""
    kept = (
        ch if unicodedata.category(ch)[0] in "LN" else " "
        for ch in unicodedata.normalize("NFKC", text).casefold()
    )
    return " ".join("".join(kept).split())


def _host_names(url: str) -> list[str]:
    host = (urlsplit(url).hostname or "").lower()
    for prefix in ("www.", "m."):
        host = host.removeprefix(prefix)
    if not host:
        return []
    # "zaxid.net" and "zaxid": a site names itself by its domain or its first label.
    return [host, host.split(".")[0]]


def strip_site_name(title: str, site_names: tuple[str, ...] | list[str], url: str) -> str:
    """The title without a leading or trailing site name after a separator.

    Only a name the page declares (``og:site_name``, the JSON-LD publisher) or
    the host's own name is removed, so a title that merely ends in a dash
    clause keeps it.
    """
    names = {_folded(name) for name in [*site_names, *_host_names(url)] if _folded(name)}
    # "&nbsp;—" before a site name is common typography: any space is a space here.
    title = " ".join(title.split())
    for separator in _SEPARATORS:
        spaced = f" {separator} "
        head, found, tail = title.rpartition(spaced)
        if found and head.strip() and _folded(tail) in names:
            return strip_site_name(head.strip(), site_names, url)
        head, found, tail = title.partition(spaced)
        if found and tail.strip() and _folded(head) in names:
            return strip_site_name(tail.strip(), site_names, url)
    return title


# An article element often opens with its own header: a rubric, a date and
# time, then the headline. Lines that short above the headline go with it.
_HEADER_LINES = 3
_HEADER_CHARS = 60


def drop_repeated_headline(text: str, titles: list[str]) -> str:
    """The body without the headline repeated at its top, nor the header lines above it."""
    wanted = {folded for folded in (_folded(title) for title in titles if title) if folded}
    lines = text.split("\n")
    for index, line in enumerate(lines[:_HEADER_LINES]):
        rest = "\n".join(lines[index + 1 :]).lstrip("\n")
        if _folded(line) in wanted and rest.strip():
            return rest
        if len(line.strip()) > _HEADER_CHARS:
            break
    return text


def is_cross_link(paragraph: str) -> bool:
    return _CROSS_LINK.match(paragraph) is not None


def _is_link_line(paragraph: str) -> bool:
    match = _CROSS_LINK.match(paragraph)
    if match is None:
        return False
    rest = paragraph[match.end() :].strip(" :—–-")
    return len(rest) <= _LINK_LINE_CHARS and not _SENTENCE_BREAK.search(rest)


def drop_cross_links(text: str) -> str:
    """The body without "read also" paragraphs at its end, nor bare link lines inside it."""
    lines = text.split("\n")
    while lines and (not lines[-1].strip() or is_cross_link(lines[-1])):
        lines.pop()
    return "\n".join(line for line in lines if not _is_link_line(line))
