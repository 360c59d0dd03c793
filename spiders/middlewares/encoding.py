"""Pages whose declared charset is wrong: read them in the encoding they are in.

Ukrainian and Russian sites still serve windows-1251 or koi8-u/koi8-r now and
then, sometimes declaring nothing, sometimes declaring a charset the bytes are
not in (``utf-8``, or ``iso-8859-1`` from a server default). Scrapy believes
the declaration, and the archive would keep mojibake ("Ðîñ³ÿ") or replacement
characters for good.

The check is cheap where nothing is wrong: a page that is ASCII, or that
decodes as the UTF-8 it declares, is left as it is. Otherwise (it declares a
single-byte charset, or its bytes are not valid in the one it declares)
charset_normalizer, already installed with trafilatura, measures which of the
encodings these sites use reads as coherent text, and the page is read in that
one when it differs. charset_normalizer is a well-kept library for exactly
this; the rule of when to ask it is ours, because only we know which
encodings our sources use.
"""

from __future__ import annotations

import codecs
import logging
from typing import Any

import charset_normalizer
from scrapy import Request
from scrapy.http import HtmlResponse, Response

log = logging.getLogger(__name__)

# The encodings the watched sites have been seen to use, and the Western
# defaults a misconfigured server declares instead.
CANDIDATES = ("utf_8", "cp1251", "koi8_u", "koi8_r", "cp1252")


def _name(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return encoding.lower()


def _mostly_utf8(body: bytes) -> bool:
    """Valid UTF-8, or UTF-8 with a stray broken byte or two (common, and no reason
    to read the whole page in another encoding): text in a single-byte encoding
    fails on nearly every non-ASCII byte instead."""
    broken = body.decode("utf-8", errors="replace").count("\ufffd")
    if not broken:
        return True
    non_ascii = sum(1 for byte in body if byte > 0x7F)
    return broken * 20 < non_ascii


def actual_encoding(body: bytes, declared: str) -> str | None:
    """The encoding ``body`` is really in, when it is not ``declared``; else None."""
    if body.isascii():
        return None
    declared_name = _name(declared)
    if declared_name == "utf-8" and _mostly_utf8(body):
        return None
    best = charset_normalizer.from_bytes(body, cp_isolation=list(CANDIDATES)).best()
    if best is None:
        return None
    found = _name(best.encoding)
    if found == declared_name or (found == "cp1252" and declared_name == "iso8859-1"):
        return None
    return found


class CharsetRepairMiddleware:
    """Downloader middleware: an HTML page read in the encoding its bytes are in."""

    def process_response(
        self, request: Request, response: Response, spider: Any = None
    ) -> Response:
        if not isinstance(response, HtmlResponse):
            return response
        found = actual_encoding(response.body, response.encoding)
        if found is None:
            return response
        log.info("%s: declared %s, read as %s", response.url, response.encoding, found)
        return response.replace(encoding=found)
