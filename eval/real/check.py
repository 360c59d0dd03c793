#!/usr/bin/env python3
"""Consistency check for the blind real-text evaluation set (stdlib only).

Reads eval/real/articles.tsv and eval/real/texts.jsonl (next to this script) and
reports rows without text, texts without a row, duplicate urls, excluded
addresses (see /work/shared/eval-exclude.sha256) and counts per lang/label/kind.
Exit status 1 on any problem.
"""

import collections
import csv
import hashlib
import json
import os
import sys
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
TSV = os.path.join(HERE, "articles.tsv")
JSONL = os.path.join(HERE, "texts.jsonl")
EXCLUDE = "/work/shared/eval-exclude.sha256"

LANGS = {"en", "uk", "ru"}
POS_KINDS = {
    "deportation",
    "abduction",
    "camps",
    "adoption-citizenship",
    "return",
    "filtration",
    "accountability",
    "figures",
}
NEG_KINDS = {
    "migrants-russia",
    "us-eu-deport",
    "historical",
    "pow-bodies",
    "adoption-ukraine",
    "occupied-other",
    "evacuation-ukraine",
    "camps-other",
    "war-news",
    "other",
}


def address_key(url: str) -> str:
    parts = urlsplit(url if "//" in url else "//" + url)
    host = (parts.hostname or "").lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host + parts.path.rstrip("/")


def load_hashes(path):
    hashes = set()
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if line and not line.startswith("#"):
                hashes.add(line.lower())
    return hashes


def excluded(url, hashes):
    return hashlib.sha256(address_key(url).encode()).hexdigest() in hashes


def main():
    problems = []
    rows = []
    with open(TSV, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header != ["url", "lang", "label", "kind", "reason"]:
            problems.append(f"bad header: {header}")
        for n, rec in enumerate(reader, start=2):
            if not rec:
                continue
            if len(rec) != 5:
                problems.append(f"articles.tsv line {n}: {len(rec)} fields")
                continue
            url, lang, label, kind, reason = rec
            rows.append((url, lang, label, kind, reason))
            if lang not in LANGS:
                problems.append(f"line {n}: bad lang {lang!r}")
            if label not in ("0", "1"):
                problems.append(f"line {n}: bad label {label!r}")
            elif label == "1" and kind not in POS_KINDS:
                problems.append(f"line {n}: kind {kind!r} not a positive kind")
            elif label == "0" and kind not in NEG_KINDS:
                problems.append(f"line {n}: kind {kind!r} not a negative kind")
            if not reason.strip():
                problems.append(f"line {n}: empty reason")

    texts = {}
    text_order = []
    if os.path.exists(JSONL):
        with open(JSONL, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    problems.append(f"texts.jsonl line {n}: bad json ({e})")
                    continue
                url = obj.get("url")
                if url in texts:
                    problems.append(f"texts.jsonl: duplicate url {url}")
                texts[url] = obj
                text_order.append(url)
                if not (obj.get("text") or "").strip():
                    problems.append(f"texts.jsonl line {n}: empty text for {url}")
    else:
        problems.append("texts.jsonl missing (rebuild it, see README.md)")

    urls = [r[0] for r in rows]
    seen, seen_keys = set(), {}
    for u in urls:
        if u in seen:
            problems.append(f"articles.tsv: duplicate url {u}")
        seen.add(u)
        k = address_key(u)
        if k in seen_keys and seen_keys[k] != u:
            problems.append(f"articles.tsv: same address twice: {seen_keys[k]} / {u}")
        seen_keys[k] = u

    missing = [u for u in urls if u not in texts]
    orphans = [u for u in text_order if u not in seen]
    for u in missing:
        problems.append(f"row without text: {u}")
    for u in orphans:
        problems.append(f"text without row: {u}")
    for u in urls:
        if u in texts and texts[u].get("lang") not in (None, next(r[1] for r in rows if r[0] == u)):
            problems.append(f"lang differs between files: {u}")
    if not missing and not orphans and [u for u in text_order] != urls:
        print("note: texts.jsonl order differs from articles.tsv")

    hashes = load_hashes(EXCLUDE)
    if hashes is None:
        problems.append(f"{EXCLUDE} not found: exclusion not checked")
    else:
        for u in urls:
            if excluded(u, hashes):
                problems.append(f"EXCLUDED address present: {u}")

    total = len(rows)
    print(f"articles: {total}   texts: {len(texts)}")
    by_lang = collections.Counter(r[1] for r in rows)
    by_label = collections.Counter(r[2] for r in rows)
    by_lang_label = collections.Counter((r[1], r[2]) for r in rows)
    print("per language:", dict(sorted(by_lang.items())))
    print(
        "per label:   ",
        dict(sorted(by_label.items())),
        f"(positives {by_label['1'] / total:.0%})" if total else "",
    )
    print("lang x label:", {f"{a}/{b}": c for (a, b), c in sorted(by_lang_label.items())})
    for lab, name in (("1", "positive kinds"), ("0", "negative (trap) kinds")):
        c = collections.Counter(r[3] for r in rows if r[2] == lab)
        print(f"{name}:", dict(sorted(c.items())))
    c = collections.Counter((r[3], r[1]) for r in rows)
    print("kind x lang:", {f"{k}/{lang}": n for (k, lang), n in sorted(c.items())})

    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems:
            print("  -", p)
        return 1
    print("\nOK: no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
