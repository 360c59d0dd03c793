"""simplemma's uk / ru / en word lists, held as compact tries shared by the process.

Language detection and the flagger's lemmas both read simplemma's
dictionaries. Loaded the default way they are Python dicts of about 245 MB
for these three languages and take over a second of CPU to decode at every
start; simplemma's MARISA-trie backend keeps the same entries in about 15 MB,
cached on disk after the first build (a few seconds, once per machine), so a
crawl starts in milliseconds and stays small. Lookups are slightly slower,
which the flagger's own lemma cache absorbs.

``python -m pipeline.lexicon`` builds the cache ahead of time (the container
image does this as its service user).
"""

from __future__ import annotations

import simplemma
from simplemma import (
    LanguageDetector,
    Lemmatizer,
    MostCommonTokenSampler,
    RelaxedMostCommonTokenSampler,
)
from simplemma.strategies import DefaultStrategy, LemmatizationStrategy
from simplemma.strategies.dictionaries import TrieDictionaryFactory

LANGUAGES = ("uk", "ru", "en")

_MEMO_LIMIT = 300_000  # remembered (token, language) answers


class RememberingStrategy(LemmatizationStrategy):
    """simplemma's default strategy with its answers remembered.

    Language detection asks for each of an article's 100 most common words in
    all three languages; they are mostly the same words from one article to
    the next ("the", "і", "на"), and a word unknown to a dictionary is the
    costly case (simplemma tries its affix rules before giving up). The
    flagger's lemmas come through here too.

    Kept small, as one table per language: a word's string is shared by the
    three tables, and a lemma equal to its word is the word's own string. A
    (word, language) pair as the key and a lemma string of its own took about
    twice the memory (90 MB of remembered words after 20,000 articles).
    """

    def __init__(self, inner: LemmatizationStrategy) -> None:
        self._inner = inner
        self._memo: dict[str, dict[str, str | None]] = {}
        self._size = 0

    def forget(self) -> None:
        for table in self._memo.values():
            table.clear()
        self._size = 0

    def get_lemma(self, token: str, lang: str) -> str | None:
        table = self._memo.get(lang)
        if table is None:
            table = self._memo[lang] = {}
        try:
            return table[token]
        except KeyError:
            pass
        if self._size >= _MEMO_LIMIT:
            self.forget()
        lemma = self._inner.get_lemma(token, lang)
        table[token] = token if lemma == token else lemma
        self._size += 1
        return lemma


# The tries are cached in the user's cache directory (XDG_CACHE_HOME is
# honoured), in a folder named for the installed simplemma version.
_STRATEGY = RememberingStrategy(
    DefaultStrategy(dictionary_factory=TrieDictionaryFactory(cache_max_size=8))
)
# Without the Lemmatizer's own cache: the strategy remembers its answers.
_LEMMATIZER = Lemmatizer(lemmatization_strategy=_STRATEGY, cache_max_size=0)
# The samplers simplemma.langdetect uses: the most common tokens, then a
# relaxed sample when the first gives a tie.
_DETECTORS = tuple(
    LanguageDetector(LANGUAGES, sampler, _STRATEGY)
    for sampler in (MostCommonTokenSampler(), RelaxedMostCommonTokenSampler())
)


def lemmatize(token: str, lang: str) -> str:
    return str(_LEMMATIZER.lemmatize(token, lang))


def language_scores(text: str) -> list[tuple[str, float]]:
    """Shares of the text's words recognised in each language, best first and
    ``unk`` (the rest) last, as ``simplemma.langdetect`` computes them."""
    scores: list[tuple[str, float]] = []
    for detector in _DETECTORS:
        shares = detector.proportion_in_each_language(text)
        scores = sorted(shares.items(), key=lambda pair: (pair[0] == "unk", -pair[1]))
        if len(scores) == 1 or scores[0][1] != scores[1][1]:
            break
    return scores


def warm() -> None:
    """Load (building and caching where needed) every language's trie."""
    for lang in LANGUAGES:
        lemmatize("a", lang)


if __name__ == "__main__":
    warm()
    print(f"simplemma {simplemma.__version__}: {', '.join(LANGUAGES)} tries ready")
