"""Precision and recall of joining stories across rewrites and languages (eval/stories/).

Each labelled pair is decided as the dedup stage decides it: the MinHash
signature first (a copy), then, in one language, the rewrite test, and across
languages the language-version test. A pair counts as found only when the
lookup keys would also bring the two together (a shared MinHash band, or
shared anchor keys of the weight a candidate needs), as they must at ingest.

Two figures are printed. The headline is over the pairs whose two texts
both carry a publication day: at ingest every article has one (its page's,
else the time it was fetched), so these pairs are judged as the archive would
judge them. The second is over all scorable pairs, undated texts scored as
they come (an undated text has no lookup keys, so it is never a candidate):
what the set's rebuilt excerpts give, lower than what a crawl would.

--same-day puts every pair on one day, undated texts included: how far the
texts alone (without the publication window) keep same-topic stories apart.
--data names another folder holding pairs.tsv and texts.jsonl.

Usage: python -m bench.eval_stories [--minhash-only] [--same-day] [--errors] [--data DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.eval_flagging import Counts
from pipeline.similarity import band_keys, signature, similarity
from pipeline.stories import (
    CANDIDATE_WEIGHT,
    anchors,
    language_verdict,
    lead_terms,
    lookup_keys,
    outlet_article,
    outlet_host,
    rewrite_verdict,
    sentence_terms,
    shingles,
    story_keys,
)

HERE = Path(__file__).resolve().parent.parent / "eval" / "stories"
MINHASH_THRESHOLD = 0.5


@dataclass
class Text:
    url: str
    lang: str
    published: datetime | None
    text: str


@dataclass
class PairCounts(Counts):
    """Counts over pairs, keeping a line for every wrong decision."""

    errors: list[str] = field(default_factory=list)

    def note(self, label: bool, found: bool, note: str) -> None:
        self.add(label, found)
        if label and not found:
            self.errors.append(f"missed: {note}")
        elif found and not label:
            self.errors.append(f"false link: {note}")

    def line(self, name: str) -> str:
        return (
            f"{name:<28} pairs {self.tp + self.fn:>3} found {self.tp:>3}  "
            f"non-pairs {self.fp + self.tn:>3} linked {self.fp:>3}  "
            f"precision {self.precision:.3f} recall {self.recall:.3f}"
        )


def load(folder: Path = HERE) -> tuple[dict[str, Text], list[dict[str, str]]]:
    texts = {}
    with open(folder / "texts.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            day = row.get("date")
            published = datetime.fromisoformat(day).replace(tzinfo=UTC) if day else None
            texts[row["url"]] = Text(row["url"], row["lang"], published, row["text"])
    with open(folder / "pairs.tsv", encoding="utf-8", newline="") as fh:
        pairs = list(csv.DictReader(fh, delimiter="\t"))
    return texts, pairs


def jaccard5(a: str, b: str) -> float:
    left, right = shingles(a), shingles(b)
    return len(left & right) / len(left | right) if left and right else 0.0


def decide(a: Text, b: Text, minhash_only: bool) -> tuple[bool, str]:
    sig_a, sig_b = signature(a.text), signature(b.text)
    bands = bool(sig_a and sig_b and set(band_keys(sig_a)) & set(band_keys(sig_b)))
    if bands and sig_a and sig_b and similarity(sig_a, sig_b) >= MINHASH_THRESHOLD:
        return True, "minhash"
    if minhash_only:
        return False, "minhash below threshold"
    anchors_a, anchors_b = anchors(a.text), anchors(b.text)
    outlet_a, outlet_b = outlet_article(a.url), outlet_article(b.url)
    terms_a, terms_b = lead_terms(a.text, a.lang), lead_terms(b.text, b.lang)
    sentences_a, sentences_b = sentence_terms(a.text), sentence_terms(b.text)
    stored = set(story_keys(anchors_b, b.published, terms_b, outlet_b, sentences_b))
    looked_up = lookup_keys(anchors_a, a.published, terms_a, outlet_a, sentences_a)
    shared = sum(w for key, w in looked_up.items() if key in stored)
    keyed = shared >= CANDIDATE_WEIGHT
    if not (bands or keyed):
        return False, "never a candidate"
    if a.lang == b.lang:
        verdict = rewrite_verdict(
            a.text,
            b.text,
            a.published,
            b.published,
            a.lang,
            outlets=(outlet_host(a.url), outlet_host(b.url)),
        )
    else:
        verdict = language_verdict(
            anchors_a, anchors_b, a.published, b.published, outlet_a=outlet_a, outlet_b=outlet_b
        )
    return verdict.same, f"{verdict.why} {verdict.score:.2f}"


def report(counts: dict[str, PairCounts]) -> None:
    for name, c in counts.items():
        print(c.line(name))
    # Precision counts the false links among the non-pairs a decision could make:
    # rewrites are judged in one language, language versions across two.
    for kind, nonpairs in (
        ("rewrite", "non-pair, same language"),
        ("language", "non-pair, across languages"),
    ):
        found, wrong = counts[kind].tp, counts[nonpairs].fp
        precision = found / (found + wrong) if found + wrong else 1.0
        total = found + counts[kind].fn
        recall = found / total if total else 1.0
        print(
            f"{kind + 's':<28} precision {precision:.3f} recall {recall:.3f} "
            f"({found}/{total}, {wrong} false)"
        )


def score(
    texts: dict[str, Text], pairs: list[dict[str, str]], minhash_only: bool
) -> tuple[dict[str, PairCounts], float]:
    """Counts per kind over the given pairs, and the highest letter 5-gram
    Jaccard of a same-language non-pair among them."""
    counts = {
        "rewrite": PairCounts(),
        "rewrite, 5-gram J >= 0.5": PairCounts(),
        "language": PairCounts(),
        "non-pair, same language": PairCounts(),
        "non-pair, across languages": PairCounts(),
    }
    top_nonpair = 0.0
    for row in pairs:
        a, b = texts[row["a"]], texts[row["b"]]
        label = row["label"] == "1"
        found, why = decide(a, b, minhash_only)
        j5 = jaccard5(a.text, b.text)
        note = f"{row['a']} | {row['b']} ({why}; J5 {j5:.2f}): {row['reason']}"
        if row["kind"] == "rewrite":
            counts["rewrite"].note(label, found, note)
            if j5 >= 0.5:
                counts["rewrite, 5-gram J >= 0.5"].note(label, found, note)
        elif row["kind"] == "language":
            counts["language"].note(label, found, note)
        else:
            side = "same language" if a.lang == b.lang else "across languages"
            counts[f"non-pair, {side}"].note(label, found, note)
            if a.lang == b.lang:
                top_nonpair = max(top_nonpair, j5)
    return counts, top_nonpair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minhash-only", action="store_true", help="the stage before issue 23")
    parser.add_argument("--same-day", action="store_true", help="ignore the publication days")
    parser.add_argument("--errors", action="store_true", help="list every wrong decision")
    parser.add_argument("--data", type=Path, default=HERE, help="folder of pairs.tsv, texts.jsonl")
    args = parser.parse_args()
    texts, pairs = load(args.data)
    # A pair counts only when both texts are on this machine (texts.jsonl is
    # rebuilt locally and may lack pages the search tool no longer returns).
    scorable = [row for row in pairs if row["a"] in texts and row["b"] in texts]
    dated = [
        row
        for row in scorable
        if texts[row["a"]].published is not None and texts[row["b"]].published is not None
    ]
    if args.same_day:
        one_day = datetime(2025, 1, 1, tzinfo=UTC)
        for text in texts.values():
            text.published = one_day
    for title, chosen in (
        ("pairs with both days (headline: every crawled article has a day)", dated),
        ("all pairs (an undated text is never a candidate)", scorable),
    ):
        counts, top_nonpair = score(texts, chosen, args.minhash_only)
        print(f"== {title}: {len(chosen)} pairs")
        report(counts)
        print(f"highest 5-gram Jaccard of a same-language non-pair: {top_nonpair:.2f}")
        if args.errors:
            for c in counts.values():
                for error in c.errors:
                    print(error)
        print()
    print(f"pairs scored: {len(scorable)} of {len(pairs)} (the others lack a text)")


if __name__ == "__main__":
    main()
