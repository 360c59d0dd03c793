"""Flagging throughput on one core: MB of article text per second.

Baseline, run in the same process over the same articles: one regular
expression per taxonomy term (stems as ``\\bstem\\w*``) over the raw text —
the approach of keyword alerting tools, without lemmas, rules or exclusions.

Usage: python -m bench.flag_throughput [--articles 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from pathlib import Path

from deportwatch.config.keywords import load_taxonomy
from pipeline.matcher import Matcher

ROOT = Path(__file__).parent.parent
LABELED = ROOT / "tests" / "fixtures" / "flagging"


def corpus(articles: int, seed: int) -> list[tuple[str, str, str]]:
    """Articles of 2-5 KB stitched from the labeled texts, in one language each."""
    by_lang: dict[str, list[str]] = {}
    for path in sorted(LABELED.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            by_lang.setdefault(case["lang"], []).append(case["text"])
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not security
    out = []
    langs = sorted(by_lang)
    for i in range(articles):
        lang = langs[i % len(langs)]
        parts: list[str] = []
        target = rng.randint(2000, 5000)
        while sum(len(p) for p in parts) < target:
            parts.append(rng.choice(by_lang[lang]))
        out.append((lang, parts[0][:80], "\n".join(parts)))
    return out


def naive_patterns(matcher: Matcher) -> list[re.Pattern[str]]:
    taxonomy = matcher.taxonomy
    terms: set[str] = set()
    for rule in taxonomy.rules:
        for group in [rule.any] if rule.any else list(rule.all):
            terms.update(taxonomy.expand(group))
    for exclusion in taxonomy.exclusions:
        terms.update(taxonomy.expand(exclusion.terms))
    patterns = []
    for term in sorted(terms):
        words = [
            re.escape(w[:-1]) + r"\w*" if w.endswith("*") else re.escape(w) + r"\b"
            for w in term.split()
        ]
        patterns.append(re.compile(r"\b" + r"\s+".join(words), re.IGNORECASE))
    return patterns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    matcher = Matcher(load_taxonomy(ROOT / "keywords.toml"))
    docs = corpus(args.articles, args.seed)
    megabytes = sum(len(text.encode()) for _, _, text in docs) / 1e6

    start = time.process_time()
    flagged = sum(matcher.flag(title, text, lang).flagged for lang, title, text in docs)
    cold = time.process_time() - start
    start = time.process_time()
    for lang, title, text in docs:
        matcher.flag(title, text, lang)
    warm = time.process_time() - start

    patterns = naive_patterns(matcher)
    start = time.process_time()
    hits = sum(1 for _, _, text in docs for p in patterns if p.search(text))
    naive = time.process_time() - start

    print(f"{len(docs)} articles, {megabytes:.2f} MB of text, {len(patterns)} terms")
    print(
        f"matcher, first pass (lemma cache cold): {megabytes / cold:6.2f} MB/s  ({flagged} flagged)"
    )
    print(f"matcher, second pass (cache warm):      {megabytes / warm:6.2f} MB/s")
    print(
        f"naive, one regex per term:              {megabytes / naive:6.2f} MB/s  ({hits} term hits)"
    )
    print(f"ratio matcher(warm) / naive: {naive / warm:.2f}x")


if __name__ == "__main__":
    main()
