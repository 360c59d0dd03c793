"""Text clean-up shared by normalization and hashing."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

# Invisible characters that pages sprinkle into text (soft hyphen, zero-width
# space/joiners, word joiner, BOM); they break matching and hashing.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{2,}")
# Apostrophes and quotes folded to ASCII in one table: one pass over the text.
_FOLD = str.maketrans(
    {"\u2019": "'", "\u02bc": "'", "\u2018": "'", "`": "'"}
    | dict.fromkeys("\u201c\u201d\u201e\u00ab\u00bb\u2033", '"')
)


def clean_text(text: str) -> str:
    """NFC, no invisible characters, single spaces, one line per paragraph."""
    # Invisible characters go first: one between a letter and its combining
    # accent would stop NFC composing them, and cleaning twice would differ.
    text = unicodedata.normalize("NFC", text.translate(_INVISIBLE))
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\r", "\n").split("\n"))
    return _BLANK_LINES.sub("\n", "\n".join(line for line in lines if line))


def clean_line(text: str | None) -> str | None:
    """A single-line field (title, author): cleaned, ``None`` when empty."""
    if text is None:
        return None
    cleaned = " ".join(clean_text(text).split())
    return cleaned or None


@lru_cache(maxsize=16)
def fingerprint_text(text: str) -> str:
    """The text as compared for identity: case, quotes, apostrophes and spacing folded.

    Remembered for the last few texts: normalize (the content hash) and dedup
    (the shingles) fold the same body one after the other.
    """
    folded = clean_text(text).translate(_FOLD).casefold()
    return " ".join(folded.split())


def content_hash(text: str) -> str:
    return hashlib.sha256(fingerprint_text(text).encode("utf-8")).hexdigest()
