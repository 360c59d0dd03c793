"""The ``counters`` kind: running totals on a figures page (the Children of War portal).

The portal's markup is not known, so the parser is tolerant: any element whose
whole text is one number (``19 546``, ``19,546``, ``19546``, with ordinary,
non-breaking or thin spaces) is a candidate, and its label is the nearest
surrounding text. A candidate whose label names a known metric (in Ukrainian
or English) is a reading; other labelled numbers are kept only when they sit in
the same block as known ones, which keeps out ages, dates and phone numbers.

Privacy: the same page shows missing children's names and photos. Nothing
but a number and its label is ever read into an item.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import scrapy
from bs4 import BeautifulSoup, Tag
from scrapy.http import Response, TextResponse

from pipeline.dates import KYIV, parse_date
from pipeline.items import CounterItem
from spiders.base import SourceSpider

# Digits grouped by spaces (incl. U+00A0 no-break, U+202F narrow no-break), commas
# or dots, or plain digits. A year-like 4-digit number alone is still a number:
# the label decides.
_NUMBER = re.compile(r"^\s*(\d{1,3}(?:[ \u00a0\u202f,.]\d{3})+|\d+)\s*$")
_LABEL_LEVELS = 3  # how far up the tree a number's label is looked for
MAX_LABEL_CHARS = 120

# Label stems to metric ids, checked in order (the first that matches wins):
# "sexual violence" before anything else, "missing" before "found".
METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sexual_violence", ("сексуальн", "sexual")),
    ("deported", ("депорт", "примусово переміщ", "deport", "forcibly displaced")),
    ("returned", ("поверн", "return", "brought back")),
    ("missing", ("зник", "missing")),
    ("found", ("знайд", "розшукан", "found")),
    ("killed", ("загину", "загибл", "вбит", "killed", "died")),
    ("injured", ("поранен", "травмован", "injur", "wounded")),
)
_AS_OF = re.compile(
    r"(?:станом на|дані на|оновлено|as of|as at|updated(?: on)?)[:\s]+"
    r"(\d{1,2}\.\d{1,2}\.\d{4}|\d{1,2}\s+\w+\s+\d{4}|\w+\s+\d{1,2},?\s+\d{4})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Counter:
    metric: str
    label: str
    value: int


def parse_number(text: str) -> int | None:
    """``19 546`` / ``19,546`` / ``19.546`` / ``19546`` (any space kind) as 19546."""
    match = _NUMBER.match(text)
    if match is None:
        return None
    return int(re.sub(r"\D", "", match.group(1)))


def metric_for(label: str) -> str | None:
    folded = label.lower().replace("’", "'").replace("ʼ", "'")
    for metric, stems in METRICS:
        if any(stem in folded for stem in stems):
            return metric
    return None


def _slug(label: str) -> str:
    return re.sub(r"\W+", "_", label.lower()).strip("_")[:64]


def _label(number: Tag) -> tuple[str, Tag] | None:
    """The text around a number (its label) and the element that holds both."""
    holder = number
    for _ in range(_LABEL_LEVELS):
        parent = holder.parent
        if not isinstance(parent, Tag):
            return None
        holder = parent
        own = number.get_text(" ", strip=True)
        text = " ".join(holder.get_text(" ", strip=True).replace(own, " ", 1).split())
        if re.search(r"[^\W\d_]", text):
            return (text, holder) if len(text) <= MAX_LABEL_CHARS else None
    return None


def parse_counters(html: str) -> list[Counter]:
    """The labelled totals on a page, each metric once (the first shown)."""
    soup = BeautifulSoup(html, "lxml")
    for hidden in soup(["script", "style", "noscript", "template"]):
        hidden.decompose()
    found: list[tuple[Counter, Tag | None]] = []
    unknown: list[tuple[Counter, Tag | None]] = []
    for node in soup.find_all(True):
        if node.find(True) is not None:
            continue  # only leaf elements: a number is the whole of its element
        value = parse_number(node.get_text())
        if value is None:
            continue
        labelled = _label(node)
        if labelled is None:
            continue
        label, holder = labelled
        metric = metric_for(label)
        block = holder.parent if isinstance(holder.parent, Tag) else None
        target = found if metric else unknown
        target.append((Counter(metric or _slug(label), label, value), block))
    blocks = {id(block) for _, block in found if block is not None}
    result: dict[str, Counter] = {}
    # Unlabelled-metric numbers count only beside known ones (the counters block).
    others = [counter for counter, block in unknown if id(block) in blocks]
    for counter in [counter for counter, _ in found] + others:
        result.setdefault(counter.metric, counter)
    return list(result.values())


def parse_as_of(html: str) -> date | None:
    """The page's own "as of" date (``станом на 14.04.2023``, ``As of April 14, 2023``)."""
    text = " ".join(BeautifulSoup(html, "lxml").get_text(" ").split())
    for match in _AS_OF.finditer(text):
        parsed = parse_date(match.group(1))
        if parsed is not None:
            return parsed.astimezone(KYIV).date()
    return None


class CountersSpider(SourceSpider):
    kind = "counters"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.source.start_urls:
            # Always fetched: an unchanged page still confirms the figures on a new day.
            yield scrapy.Request(url, callback=self.parse_counters, errback=self.on_start_error)

    def parse_counters(self, response: Response) -> Iterator[CounterItem]:
        if not isinstance(response, TextResponse):
            self.document_failed(response, "figures page is not text")
            return
        counters = parse_counters(response.text)
        if not counters:
            self.document_failed(response, "no labelled totals found (markup changed?)")
            return
        fetched = datetime.now(UTC)
        as_of = parse_as_of(response.text) or fetched.astimezone(KYIV).date()
        for counter in counters:
            yield CounterItem(
                source=self.source.name,
                metric=counter.metric,
                label=counter.label,
                value=counter.value,
                as_of=as_of,
                fetched_at=fetched,
                url=response.url,
            )
