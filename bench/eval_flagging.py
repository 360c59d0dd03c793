"""Precision, recall and F1 of flagging on the labeled sets in tests/fixtures/flagging/.

eval.jsonl (91 texts) was written together with keywords.toml; heldout.jsonl
(29 texts) was written afterwards without looking at the rules, and evaluated
once before one rule was added (see EVALUATION.md for both figures);
frames.jsonl (57 texts) holds traps of the kinds real war news flagged wrongly
(US and Russian immigration deportations, memorials, prisoner exchanges,
adoption in Ukraine, other occupation news) and reports whose frame is only implied.

Usage: python -m bench.eval_flagging [--keywords keywords.toml] [--errors]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from deportwatch.config.keywords import load_taxonomy
from pipeline.matcher import Matcher

LABELED = Path(__file__).parent.parent / "tests" / "fixtures" / "flagging"
EVAL_SETS = (LABELED / "eval.jsonl", LABELED / "heldout.jsonl", LABELED / "frames.jsonl")


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, expected: bool, got: bool) -> None:
        if expected and got:
            self.tp += 1
        elif got:
            self.fp += 1
        elif expected:
            self.fn += 1
        else:
            self.tn += 1


def evaluate(matcher: Matcher, paths: tuple[Path, ...] = EVAL_SETS) -> dict[str, object]:
    overall = Counts()
    by_lang: dict[str, Counts] = defaultdict(Counts)
    by_category: dict[str, Counts] = defaultdict(Counts)
    errors = []
    lines = [line for path in paths for line in path.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        case = json.loads(line)
        result = matcher.flag(case["title"], case["text"], case["lang"])
        overall.add(case["label"], result.flagged)
        by_lang[case["lang"]].add(case["label"], result.flagged)
        for category in case["categories"]:
            by_category[category].add(True, result.flagged and category in result.categories)
        if case["label"] != result.flagged:
            errors.append((case["id"], case["note"], result.categories, case["text"]))
    return {
        "overall": overall,
        "by_lang": dict(by_lang),
        "by_category": dict(by_category),
        "errors": errors,
    }


def print_scores(overall: Counts, by_lang: dict[str, Counts]) -> None:
    """Precision, recall and F1 overall and per language, one row each."""
    print(f"{'':14} {'n':>4} {'precision':>9} {'recall':>7} {'F1':>6}")
    for name, c in [("overall", overall), *sorted(by_lang.items())]:
        n = c.tp + c.fp + c.fn + c.tn
        print(f"{name:14} {n:>4} {c.precision:>9.3f} {c.recall:>7.3f} {c.f1:>6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keywords", type=Path, default=Path("keywords.toml"))
    parser.add_argument("--errors", action="store_true", help="list the misclassified texts")
    args = parser.parse_args()
    taxonomy = load_taxonomy(args.keywords)
    report = evaluate(Matcher(taxonomy))
    overall: Counts = report["overall"]  # type: ignore[assignment]
    print(f"keywords {taxonomy.version} on {', '.join(p.name for p in EVAL_SETS)}")
    print_scores(overall, report["by_lang"])  # type: ignore[arg-type]
    print("\ncategory found on its positives (recall):")
    for name, c in sorted(report["by_category"].items()):  # type: ignore[attr-defined]
        print(f"  {name:22} {c.tp:>3}/{c.tp + c.fn:<3} {c.recall:.3f}")
    if args.errors:
        for case_id, note, categories, text in report["errors"]:  # type: ignore[attr-defined]
            print(f"\n{case_id} ({note}) got {categories}: {text}")


if __name__ == "__main__":
    main()
