"""Near-duplicate signatures: MinHash over word shingles, and LSH band keys.

Syndicated copies differ in boilerplate ("Read the original article on The
New Voice of Ukraine"), headlines and small edits; their bodies still share
most three-word sequences. A MinHash signature estimates that overlap
(Jaccard similarity); its LSH band keys, stored in an indexed table, let one
query find the few archived articles worth comparing, however large the
archive grows.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from datasketch import MinHash

from pipeline.text import fingerprint_text

# 21 bands of 3 rows: a pair at Jaccard 0.7 (a syndicated copy with 5% of words
# changed) shares a band key with probability 0.9998, a same-topic pair at 0.05
# with 0.003 (measured in bench/dedup_ingest.py; 16x4 missed 3% of copies).
BANDS = 21
ROWS = 3
NUM_PERM = BANDS * ROWS
SHINGLE = 3
MIN_WORDS = 25  # shorter texts (posts, captions) have too few shingles to compare
_WORDS = re.compile(r"\w+")
_SEED = 1
# Named, not left to the library's default: datasketch 2.0 changed its default
# scheme, which changes every signature, and archived band keys would then
# never match a new article's.
_SCHEME = "affine32"
# The permutations follow from the seed; drawn once here rather than for every
# article (a fresh RandomState per MinHash was 1.3% of a crawl's time).
_PERMUTATIONS = MinHash(num_perm=NUM_PERM, seed=_SEED, scheme=_SCHEME).permutations


def shingles(text: str) -> set[bytes]:
    words = _WORDS.findall(fingerprint_text(text))
    return {" ".join(words[i : i + SHINGLE]).encode() for i in range(len(words) - SHINGLE + 1)}


def signature(text: str) -> bytes | None:
    """The MinHash of the text's 3-word shingles (4 bytes a value); None for short texts."""
    if len(_WORDS.findall(text)) < MIN_WORDS:
        return None
    minhash = MinHash(num_perm=NUM_PERM, seed=_SEED, scheme=_SCHEME, permutations=_PERMUTATIONS)
    minhash.update_batch(sorted(shingles(text)))
    return bytes(minhash.hashvalues.astype("<u4").tobytes())


def band_keys(sig: bytes) -> list[int]:
    """One signed 64-bit key per band (PostgreSQL's bigint), band number included."""
    keys = []
    for band in range(BANDS):
        chunk = sig[band * ROWS * 4 : (band + 1) * ROWS * 4]
        digest = hashlib.blake2b(bytes([band]) + chunk, digest_size=8).digest()
        keys.append(int.from_bytes(digest, "big", signed=True))
    return keys


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures."""
    left = np.frombuffer(a, dtype="<u4")
    right = np.frombuffer(b, dtype="<u4")
    return float(np.count_nonzero(left == right)) / NUM_PERM
