"""Which texts of the story pairs are missing from the local, git-ignored texts file.

pairs.tsv names each pair by address; the texts themselves are other people's
writing (or rewrites of it) and are never committed, so each machine keeps its
own eval/stories/texts.jsonl (one JSON object a line: url, lang, date, text).
Standard library only, so it runs before anything is installed:

    python3 eval/stories/missing.py        # exit 1 while any text is missing
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    with open(HERE / "pairs.tsv", encoding="utf-8", newline="") as fh:
        pairs = list(csv.DictReader(fh, delimiter="\t"))
    wanted = sorted({row[side] for row in pairs for side in ("a", "b")})
    have: set[str] = set()
    texts = HERE / "texts.jsonl"
    if texts.exists():
        with open(texts, encoding="utf-8") as fh:
            have = {json.loads(line)["url"] for line in fh if line.strip()}
    missing = [url for url in wanted if url not in have]
    for url in missing:
        print(url)
    print(
        f"{len(wanted) - len(missing)} of {len(wanted)} texts present, "
        f"{len(missing)} missing ({len(pairs)} pairs)",
        file=sys.stderr,
    )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
