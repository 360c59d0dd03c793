"""Write the local texts file of the story pairs from copied search answers.

The texts are other people's writing, so they are never committed; what is
committed is how to find them again (`queries.tsv`: address, language,
publication day, the content query that brings the page back from the search
tool's `pages` corpus). A session with the search tool runs each query, copies
the first result whose address equals the row's address byte for byte into
the git-ignored `answers.jsonl` (one `{"url", "query", "excerpt"}` a line, the
excerpt's JSON string copied and decoded, never retyped), and then:

    python3 eval/stories/assemble.py      # writes texts.jsonl, lists what is missing

The hand-written rewrites (`written:W<n>`) live in the git-ignored
`written.jsonl` in the texts file's own form and are copied through. Addresses
whose key is on the exclusion list are refused. Standard library only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
EXCLUDE = HERE.parents[2] / "shared" / "eval-exclude.sha256"
# The search tool prefixes an excerpt with the day it knows the page by.
DAY_MARK = re.compile(r"^ date (\d{4}-\d{2}-\d{2}) ?")


def exclusion_key(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    host = host.removeprefix("www.")
    return hashlib.sha256((host + parts.path.rstrip("/")).encode()).hexdigest()


def excluded() -> set[str]:
    if not EXCLUDE.exists():
        return set()
    lines = EXCLUDE.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def main() -> int:
    with open(HERE / "queries.tsv", encoding="utf-8", newline="") as fh:
        rows = {row["url"]: row for row in csv.DictReader(fh, delimiter="\t")}
    answers: dict[str, dict[str, str]] = {}
    source = HERE / "answers.jsonl"
    if source.exists():
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.strip():
                answer = json.loads(line)
                answers.setdefault(answer["url"], answer)  # the first copy counts
    banned = excluded()
    out = []
    for n, (url, row) in enumerate(sorted(rows.items()), start=1):
        answer = answers.get(url)
        if answer is None:
            continue
        if exclusion_key(url) in banned:
            print(f"refused (excluded): {url}", file=sys.stderr)
            continue
        excerpt = answer["excerpt"]
        mark = DAY_MARK.match(excerpt)
        if mark and row["date"] and mark.group(1) != row["date"]:
            print(f"day differs from the tool's mark: {url}", file=sys.stderr)
        text = excerpt[mark.end() :] if mark else excerpt
        day = row["date"] or (mark.group(1) if mark else "")
        out.append(
            {"id": f"s{n:03d}", "url": url, "lang": row["lang"], "date": day or None, "text": text}
        )
    written = HERE / "written.jsonl"
    if written.exists():
        lines = written.read_text(encoding="utf-8").splitlines()
        out += [json.loads(line) for line in lines if line.strip()]
    with open(HERE / "texts.jsonl", "w", encoding="utf-8") as fh:
        for item in out:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"{len(out)} texts written to texts.jsonl", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
