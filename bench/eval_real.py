"""Flagging on real published text: the blind set in eval/real/ (EVALUATION.md).

eval/real/articles.tsv holds each page's address, language, label, kind and a
one-line reason (committed); eval/real/texts.jsonl holds the texts as published
(other people's writing: git-ignored, rebuilt as eval/real/README.md says).
The labels were made before any of this code ran on the texts.

The set is cut in two halves by a hash of each address: rules may be tuned
by looking at the "dev" half's errors only; the "test" half stays unseen, so
its figure is the blind one after tuning.

The set grew in batches: the first 205 rows of articles.tsv, then 77 pages
gathered later to weigh the kinds of trap that still failed. ``--batch 2``
scores the second batch alone (its first run was blind, like the first's).

Usage: python -m bench.eval_real [--keywords keywords.toml] [--half dev|test|all]
                                 [--batch 1|2|all] [--errors]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.eval_flagging import Counts, print_scores
from deportwatch.config.keywords import load_taxonomy
from pipeline.matcher import Matcher

REAL = Path(__file__).parent.parent / "eval" / "real"
# rows of articles.tsv in the first batch; later rows are the second
FIRST_BATCH = 205


def half(url: str) -> str:
    """The half a page belongs to: fixed by its address, never by its label."""
    return "dev" if hashlib.sha256(url.encode()).digest()[0] % 2 == 0 else "test"


@dataclass(frozen=True)
class Case:
    url: str
    lang: str
    label: bool
    kind: str
    batch: str
    reason: str
    title: str
    text: str


def load_cases(directory: Path = REAL) -> tuple[list[Case], list[str]]:
    """The labelled pages that have their text locally, and the addresses that lack it."""
    texts: dict[str, dict[str, str]] = {}
    texts_file = directory / "texts.jsonl"
    if texts_file.exists():
        for line in texts_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                texts[record["url"]] = record
    cases, missing = [], []
    with (directory / "articles.tsv").open(encoding="utf-8", newline="") as rows:
        for n, row in enumerate(csv.DictReader(rows, delimiter="\t", quoting=csv.QUOTE_NONE)):
            record = texts.get(row["url"])
            if record is None:
                missing.append(row["url"])
                continue
            cases.append(
                Case(
                    url=row["url"],
                    lang=row["lang"],
                    label=row["label"] == "1",
                    kind=row["kind"],
                    batch="1" if n < FIRST_BATCH else "2",
                    reason=row["reason"],
                    title=record.get("title", ""),
                    text=record["text"],
                )
            )
    return cases, missing


def evaluate(matcher: Matcher, cases: list[Case]) -> dict[str, object]:
    overall = Counts()
    by_lang: dict[str, Counts] = defaultdict(Counts)
    by_kind: dict[str, Counts] = defaultdict(Counts)
    errors = []
    for case in cases:
        flagged = matcher.flag(case.title, case.text, case.lang).flagged
        overall.add(case.label, flagged)
        by_lang[case.lang].add(case.label, flagged)
        by_kind[("+" if case.label else "-") + case.kind].add(case.label, flagged)
        if flagged != case.label:
            errors.append(case)
    return {
        "overall": overall,
        "by_lang": dict(by_lang),
        "by_kind": dict(by_kind),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keywords", type=Path, default=Path("keywords.toml"))
    parser.add_argument("--errors", action="store_true", help="list the misclassified pages")
    parser.add_argument("--half", choices=("dev", "test", "all"), default="all")
    parser.add_argument("--batch", choices=("1", "2", "all"), default="all")
    args = parser.parse_args()
    cases, missing = load_cases()
    if args.half != "all":
        cases = [c for c in cases if half(c.url) == args.half]
    if args.batch != "all":
        cases = [c for c in cases if c.batch == args.batch]
    if missing:
        print(f"{len(missing)} labelled pages have no local text (see eval/real/README.md)")
    if not cases:
        sys.exit("no texts: rebuild eval/real/texts.jsonl first")
    taxonomy = load_taxonomy(args.keywords)
    report = evaluate(Matcher(taxonomy), cases)
    print(
        f"keywords {taxonomy.version} on {len(cases)} real pages"
        f" (eval/real, half {args.half}, batch {args.batch})"
    )
    overall: Counts = report["overall"]  # type: ignore[assignment]
    print_scores(overall, report["by_lang"])  # type: ignore[arg-type]
    print("\nby kind (+ reports: found / all; - traps: wrongly flagged / all):")
    for name, c in sorted(report["by_kind"].items()):  # type: ignore[attr-defined]
        if name.startswith("+"):
            print(f"  {name:24} {c.tp:>3}/{c.tp + c.fn}")
        else:
            print(f"  {name:24} {c.fp:>3}/{c.fp + c.tn}")
    if args.errors:
        for case in report["errors"]:  # type: ignore[attr-defined]
            got = "flagged" if not case.label else "missed"
            print(f"\n{got} [{case.lang} {case.kind}] {case.url}\n  {case.reason}")


if __name__ == "__main__":
    main()
