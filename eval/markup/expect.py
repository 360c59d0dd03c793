"""What a clean result is for each listed page, and how far a run is from it.

``expected.tsv`` is written by hand from reading each page, before the
extraction is run on it: the title, the words the body opens and closes with,
the date (UTC, to the minute), the language, how many posts a channel page
holds, and strings that must not be stored (page chrome). A field may list
alternatives separated by `` || `` where the page itself offers two honest
answers (a lead that may or may not open the body).
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected.tsv"


@dataclass
class Expected:
    file: str
    posts: int
    title: list[str]
    starts: list[str]
    ends: list[str]
    date_utc: str
    language: str
    absent: list[str]
    reason: str


def _choices(value: str) -> list[str]:
    return [part.strip() for part in value.split("||") if part.strip()]


def load(path: Path = EXPECTED) -> dict[str, Expected]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {
        row["file"]: Expected(
            file=row["file"],
            posts=int(row["posts"]),
            title=_choices(row["title"]),
            starts=_choices(row["starts"]),
            ends=_choices(row["ends"]),
            date_utc=row["date_utc"].strip(),
            language=row["language"].strip(),
            absent=[part.strip() for part in row["absent"].split(" | ") if part.strip()],
            reason=row["reason"].strip(),
        )
        for row in rows
    }


def folded(text: str) -> str:
    """Letters and digits only, case-folded: quotes, dashes and spacing do not count."""
    kept = (
        ch if unicodedata.category(ch)[0] in "LN" else " "
        for ch in unicodedata.normalize("NFKC", text).casefold()
    )
    return " ".join("".join(kept).split())


def mismatches(expected: Expected, stored: list[tuple[str, str, str, str, str]]) -> list[str]:
    """Each way the stored items (title, text, date, language, url) differ from the expectation."""
    found = []
    if len(stored) != expected.posts:
        found.append(f"items: {len(stored)} stored, {expected.posts} expected")
    if not stored or expected.posts == 0:
        return found + _absent(expected, stored)
    title, text, date, language, _url = stored[0]
    if expected.title and title not in expected.title:
        found.append(f"title: {title!r}")
    body = folded(text)
    if expected.starts and not any(body.startswith(folded(s)) for s in expected.starts):
        found.append(f"starts: {text[:80]!r}")
    if expected.ends and not any(body.endswith(folded(e)) for e in expected.ends):
        found.append(f"ends: {text[-80:]!r}")
    if expected.date_utc and date != expected.date_utc:
        found.append(f"date: {date or '-'} (expected {expected.date_utc})")
    if expected.language and language != expected.language:
        found.append(f"language: {language} (expected {expected.language})")
    return found + _absent(expected, stored)


def _absent(expected: Expected, stored: list[tuple[str, str, str, str, str]]) -> list[str]:
    found = []
    for title, text, *_ in stored:
        for chrome in expected.absent:
            if chrome in title or chrome in text:
                found.append(f"chrome kept: {chrome!r}")
    return found
