"""``deportwatch flag`` and ``reflag``: the flagger on one text, and on the archive again."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from db.engine import make_sessionmaker
from db.migrate import open_archive
from deportwatch.archive.dates import parse_since
from deportwatch.archive.reflag import count_articles
from deportwatch.archive.reflag import reflag as run_reflag
from deportwatch.archive.show import match_record
from deportwatch.cli.common import Language, err, out, reported_errors
from deportwatch.config.errors import UsageError
from deportwatch.config.keywords import load_taxonomy
from deportwatch.config.settings import load_settings
from deportwatch.config.sources import load_sources
from pipeline.language import detect_language
from pipeline.matcher import FlagResult, Matcher
from pipeline.text import clean_text


def _flag_json(result: FlagResult) -> dict[str, object]:
    return {
        "flagged": result.flagged,
        "score": result.score,
        "categories": list(result.categories),
        "keywords_version": result.version,
        "matches": [match_record(m) for m in result.matches],
    }


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None


def flag(
    source: Annotated[
        str, typer.Argument(help="Text file to flag, or - for standard input.")
    ] = "-",
    title: Annotated[str, typer.Option(help="Title to flag with the text.")] = "",
    lang: Annotated[
        Language | None, typer.Option(help="The text's language (detected when omitted).")
    ] = None,
    jsonl: Annotated[
        bool,
        typer.Option("--jsonl", help='Input is JSON lines: {"id", "title", "text", "lang"?}.'),
    ] = False,
) -> None:
    """Flag a text with the current keywords and print the result as JSON.

    Use it to try a change to keywords.toml before running reflag.

    Examples: echo "Russia deported 19,000 Ukrainian children" | deportwatch flag ·
    deportwatch flag --jsonl samples.jsonl > results.jsonl
    """
    with reported_errors():
        settings = load_settings()
        matcher = Matcher(load_taxonomy(settings.keywords))
        content = _read_input(source)
        if not jsonl:
            # Cleaned as the crawl's normalize stage cleans bodies (soft hyphens,
            # zero-width characters), so offsets refer to the cleaned text.
            content = clean_text(content)
            result = matcher.flag(title, content, lang.value if lang else detect_language(content))
            out.print_json(json.dumps(_flag_json(result), ensure_ascii=False))
            return
        bad = 0
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                text = clean_text(str(record.get("text") or ""))
                line_lang = record.get("lang")
                if line_lang is not None and line_lang not in set(Language):
                    choices = ", ".join(repr(str(c)) for c in Language)
                    raise ValueError(f"'lang': {line_lang!r} is not one of {choices}")
                line_lang = line_lang or detect_language(text)
                result = matcher.flag(str(record.get("title") or ""), text, line_lang)
            except ValueError as exc:
                bad += 1
                err.print(f"error: line {number}: {exc}", highlight=False, markup=False)
                continue
            row = {"id": record.get("id"), **_flag_json(result)}
            print(json.dumps(row, ensure_ascii=False))
        if bad:
            raise typer.Exit(2)


def reflag(
    since: Annotated[
        str | None, typer.Option(help="Only articles published since: 2023-09-27 or 30d.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only this source's articles.")] = None,
) -> None:
    """Re-run flagging over the archive with the current keywords.toml.

    Reports how many articles became flagged or unflagged.

    Example: deportwatch reflag --since 2023-01-01 --source nv-en
    """
    with reported_errors():
        settings = load_settings()
        matcher = Matcher(load_taxonomy(settings.keywords))
        since_at = parse_since(since) if since else None
        if source is not None:
            config = load_sources(settings.sources)
            if config.get(source) is None:
                known = ", ".join(s.name for s in config.sources)
                raise UsageError(f"unknown source '{source}' (known: {known})")
        # A writer: a crawl storing an article while it is re-flagged is not lost.
        with open_archive(settings.database_url, writer=True) as engine:
            sessions = make_sessionmaker(engine)
            total = count_articles(sessions, since_at, source)
            with Progress(console=err, transient=True) as progress:
                task = progress.add_task("reflagging", total=total)
                counts = run_reflag(
                    sessions, matcher, since_at, source, lambda n: progress.advance(task, n)
                )
    out.print(
        f"Reflagged {counts.examined} articles with keywords {matcher.taxonomy.version}: "
        f"{counts.became_flagged} became flagged, {counts.became_unflagged} became unflagged, "
        f"{counts.still_flagged} still flagged.",
        markup=False,
    )
