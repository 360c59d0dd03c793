"""Turning stored text into HTML: every scraped string is escaped before any markup is added.

Titles, bodies, snippets and URLs come from the sites we watch and are hostile
input. Templates autoescape; these helpers build the few fragments that need
markup (hit highlights, marked flag matches, time tags) from escaped pieces
only, and return ``Markup`` so the templates do not escape them twice.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).parent / "templates"
HIGHLIGHT = "**"  # db.search and the flag matcher put this around each hit


def highlight(snippet: str | None) -> Markup:
    """A snippet with its ``**hit**`` parts in <mark>, everything else escaped."""
    parts = str(snippet or "").split(HIGHLIGHT)
    return Markup("").join(
        Markup("<mark>{}</mark>").format(p) if i % 2 else escape(p) for i, p in enumerate(parts)
    )


def marked(text: str, spans: list[tuple[int, int]]) -> Markup:
    """``text`` with the character ranges ``spans`` in <mark> (overlaps merged)."""
    merged: list[list[int]] = []
    for start, end in sorted(s for s in spans if 0 <= s[0] < s[1] <= len(text)):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces: list[Markup] = []
    at = 0
    for start, end in merged:
        pieces.append(escape(text[at:start]))
        pieces.append(Markup("<mark>{}</mark>").format(text[start:end]))
        at = end
    pieces.append(escape(text[at:]))
    return Markup("").join(pieces)


def time_tag(value: str | datetime | None) -> Markup:
    """A <time> showing UTC; static/localtime.js rewrites it to the reader's zone.

    The UTC time stays in the tooltip, so what is cited can be checked.
    """
    if value is None:
        return Markup("—")
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    utc = moment.strftime("%Y-%m-%d %H:%M UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(moment.isoformat(), utc, utc)


def safe_href(url: str | None) -> str | None:
    """``url`` when it is http(s); a ``javascript:`` or ``data:`` URL is never a link."""
    if url and url.lower().startswith(("http://", "https://")):
        return url
    return None


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff's lines with a CSS class: added, removed, hunk or context."""
    kinds = {"+": "added", "-": "removed", "@": "hunk"}
    return [
        ("header" if line.startswith(("+++", "---")) else kinds.get(line[:1], "context"), line)
        for line in diff.splitlines()
    ]


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every {{ value }} is escaped unless it is Markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    filters: dict[str, Any] = {
        "highlight": highlight,
        "time": time_tag,
        "safe_href": safe_href,
        "diff_lines": diff_lines,
    }
    env.filters.update(filters)
    return env
