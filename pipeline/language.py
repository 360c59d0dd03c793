"""Which language an article is written in, from its own text."""

from __future__ import annotations

from pipeline.lexicon import language_scores

MIN_SHARE = 0.3  # below this share of recognised words the guess is noise
SAMPLE_CHARS = 4000  # the start of a body is enough and keeps detection cheap


def detect_language(text: str, fallback: str | None = None) -> str | None:
    """uk, ru or en as detected by simplemma; ``fallback`` when the text is too thin.

    Ukrainian and Russian share most of their script, so the decision comes from
    word lists (simplemma's lemmatizer dictionaries), not from the alphabet.
    """
    sample = text[:SAMPLE_CHARS]
    if len(sample.split()) < 3:
        return fallback
    scores = language_scores(sample)
    best, share = scores[0]
    if best == "unk" or share < MIN_SHARE:
        return fallback
    return str(best)
