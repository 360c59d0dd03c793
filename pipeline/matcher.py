"""Flagging: finds the taxonomy's terms in a text, inflections and all.

Compiled once from ``keywords.toml`` and ``frames.toml``. Text is split into
word tokens with their character offsets; each token is normalized (case, ё→е,
apostrophes) and lemmatized with simplemma in the language its script
suggests. A term matches a token by written form, by lemma, or by stem
(``депорт*``). Every term of every rule, exclusion and frame dimension sits in
one hash index keyed on its first word, so a text is scanned once, whatever
the size of the taxonomy — the same cost profile as an Aho-Corasick automaton,
over lemmas instead of characters.

A rule's match is then judged by its frame (who removes whom, where to, when):
the nearest signal of each dimension, read from the words already found in
that one scan. Vetoed matches are kept, with weight 0, as evidence of why an
article was not flagged.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any, NamedTuple

from deportwatch.config.keywords import Dimension, Scope, Taxonomy
from pipeline.lexicon import lemmatize

# Words: letters/digits joined by apostrophes (Ukrainian пам'ять, п’ять) but
# split at hyphens, so "Lvova-Belova" and "re-education" are two words each.
_WORD = re.compile(r"\w+(?:['\u2019\u02bc`]\w+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'", "`": "'", "ё": "е"})
# A sentence ends at . ! ? … (then space and a capital or digit) or a line break,
# except after the abbreviations news text is full of ("Sept. 27", "м. Київ").
_SENTENCE_END = re.compile(r"[.!?…]+[\"'»”)]*\s+(?=[\"«“(]?[A-ZА-ЯЇІЄҐ0-9])|\n+")
_ABBREVIATIONS = frozenset(
    "jan feb mar apr jun jul aug sep sept oct nov dec mr mrs ms dr st gen col lt no vs u.s "
    "etc e.g i.e м р ст вул обл р-н тис млн млрд грн ім г ул тыс".split()
)
_UK_LETTERS = frozenset("іїєґ")
_RU_LETTERS = frozenset("ыэъ")
SNIPPET_CONTEXT = 70
_CACHE_LIMIT = 500_000


def normalize_word(word: str) -> str:
    return word.casefold().translate(_APOSTROPHES)


@dataclass(frozen=True)
class Element:
    """One word of a term: written forms and lemmas, or a stem."""

    forms: frozenset[str]
    prefix: str | None = None

    def matches(self, norm: str, lemma: str) -> bool:
        if self.prefix is not None:
            return norm.startswith(self.prefix)
        return norm in self.forms or lemma in self.forms


class Payload(NamedTuple):
    # A tuple, not a dataclass: millions are hashed and made per run, and a tuple's
    # hash and constructor are C code.
    kind: str  # rule | exclude | frame
    entry: int  # which rule, exclusion or dimension
    group: int  # a rule's group; for a frame dimension one of the sides below


OURS, OTHER, BACKGROUND, NOT_AFTER = 0, 1, 2, 3
_LEAN = 2  # another story's words a text needs, and more than ours, to be read as that story
_NOT_AFTER_GAP = 3  # words between "returned" and "to Ukraine" that still make it a return
CONFIRMED, VETOED, UNKNOWN = "confirmed", "vetoed", "unknown"


@dataclass(frozen=True)
class Signal:
    """One dimension's answer for a match: ours, other or None (the text says
    nothing), the words that gave it, and where they were read."""

    dimension: str
    answer: str | None
    words: tuple[str, ...] = ()
    read: str | None = None  # sentence | "N words" | "window N" | document


@dataclass(frozen=True)
class Frame:
    verdict: str  # confirmed | vetoed | unknown
    reason: str
    signals: tuple[Signal, ...] = ()

    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"verdict": self.verdict, "reason": self.reason}
        for signal in self.signals:
            record[signal.dimension] = {
                "answer": signal.answer,
                "words": list(signal.words),
                "read": signal.read,
            }
        return record


class Occurrence(NamedTuple):
    payload: Payload
    first: int  # token indexes, inclusive
    last: int


# A word's terms: those it completes alone (deduplicated), and phrases it may begin.
_Phrase = tuple[tuple["Element", ...], Payload]
_Hits = tuple[tuple[Payload, ...], tuple[_Phrase, ...]]
_NO_HITS: _Hits = ((), ())


@dataclass(frozen=True)
class Match:
    category: str
    rule: str
    term: str
    field: str  # title | text
    start: int  # character offsets into that field
    end: int
    snippet: str
    weight: float
    frame: Frame | None = None
    sentence: int = 0  # the field's sentence the match stands in, from 0

    @property
    def counted(self) -> bool:
        return self.frame is None or self.frame.verdict != VETOED

    @property
    def details(self) -> dict[str, Any] | None:
        """The frame as stored with the match (flag_matches.details)."""
        return self.frame.record() if self.frame is not None else None


@dataclass(frozen=True)
class FlagResult:
    flagged: bool
    score: float
    categories: tuple[str, ...]
    matches: tuple[Match, ...]
    version: str


@dataclass
class _Tokens:
    text: str
    spans: list[tuple[int, int]]
    norms: list[str]
    lemmas: list[str]
    sentences: list[int]
    hits: list[_Hits]


class Matcher:
    """A compiled taxonomy; ``flag(title, text, lang)`` is safe to call from any code."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        # Per document language, a word as written -> its normal form, its lemma and
        # the terms it matches; equal strings are stored once (the word is usually
        # its own normal form), and most words match nothing (one shared empty tuple).
        self._word_cache: dict[str | None, dict[str, tuple[str, str, _Hits]]] = {}
        self._words_cached = 0
        self._by_form: dict[str, list[tuple[tuple[Element, ...], Payload]]] = defaultdict(list)
        self._by_prefix: list[tuple[str, tuple[Element, ...], Payload]] = []
        for index, rule in enumerate(taxonomy.rules):
            groups = [rule.any] if rule.any else list(rule.all)
            for group_no, group in enumerate(groups):
                for term in taxonomy.expand(group):
                    self._add(term, Payload("rule", index, group_no))
        for index, exclusion in enumerate(taxonomy.exclusions):
            for term in taxonomy.expand(exclusion.terms):
                self._add(term, Payload("exclude", index, 0))
        self._dimensions: tuple[Dimension, ...] = ()
        # A category may have several requirements; each must be met.
        self._requirements: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        if taxonomy.frames is not None:
            self._dimensions = taxonomy.frames.dimensions
            for requirement in taxonomy.frames.requirements:
                self._requirements[requirement.category].append(requirement.any_of)
            for index, dimension in enumerate(self._dimensions):
                for side, terms in (
                    (OURS, dimension.ours),
                    (OTHER, dimension.other),
                    (BACKGROUND, dimension.background),
                    (NOT_AFTER, dimension.not_after),
                ):
                    for term in terms:
                        self._add(term, Payload("frame", index, side))
        self._prefixes = tuple(sorted({p for p, _, _ in self._by_prefix}))

    # -- compiling ---------------------------------------------------------------
    def _element(self, word: str) -> Element:
        norm = normalize_word(word)
        if norm.endswith("*"):
            return Element(frozenset(), prefix=norm[:-1])
        languages = ("en",) if norm.isascii() else ("uk", "ru")
        forms = {norm} | {self._lemma(norm, lang) for lang in languages}
        return Element(frozenset(forms))

    def _add(self, term: str, payload: Payload) -> None:
        words = _WORD.findall(term.replace("*", "STAR_")) if "*" in term else _WORD.findall(term)
        words = [w.replace("STAR_", "*") for w in words]
        # a stem's star must stay attached: "forcibly transfer*" -> ["forcibly", "transfer*"]
        elements = tuple(self._element(w) for w in words)
        if not elements:
            raise ValueError(f"term {term!r} has no words")
        first = elements[0]
        if first.prefix is not None:
            self._by_prefix.append((first.prefix, elements, payload))
        else:
            for form in first.forms:
                self._by_form[form].append((elements, payload))

    def _lemma(self, norm: str, lang: str) -> str:
        # Not cached here: scanning asks through ``_word``'s cache, and
        # pipeline.lexicon remembers simplemma's answers.
        return normalize_word(lemmatize(norm, lang))

    # -- scanning ----------------------------------------------------------------
    def _token_lang(self, norm: str, doc_lang: str | None) -> str | None:
        if norm.isdigit():
            return None
        if norm.isascii():
            return "en"
        letters = set(norm)
        if letters & _UK_LETTERS:
            return "uk"
        if letters & _RU_LETTERS:
            return "ru"
        return doc_lang if doc_lang in ("uk", "ru") else "uk"

    def _word(self, word: str, doc_lang: str | None) -> tuple[str, str, _Hits]:
        """A word as written to its normal form, lemma and terms, remembered per
        document language: news text repeats its words, and this runs for every one."""
        table = self._word_cache.get(doc_lang)
        if table is None:
            table = self._word_cache[doc_lang] = {}
        known = table.get(word)
        if known is None:
            norm = normalize_word(word)
            if norm == word:
                norm = word
            lang = self._token_lang(norm, doc_lang)
            lemma = self._lemma(norm, lang) if lang else norm
            lemma = norm if lemma == norm else lemma
            known = (norm, lemma, self._hits(norm, lemma))
            if self._words_cached > _CACHE_LIMIT:
                for cached in self._word_cache.values():
                    cached.clear()
                self._words_cached = 0
            table[word] = known
            self._words_cached += 1
        return known

    def _hits(self, norm: str, lemma: str) -> _Hits:
        """The terms a word matches by form, lemma or stem; checking every stem of
        the taxonomy is the costly part, done once per word thanks to the cache."""
        candidates = list(self._by_form.get(norm, ()))
        if lemma != norm:
            candidates.extend(self._by_form.get(lemma, ()))
        if norm.startswith(self._prefixes):
            candidates.extend((e, p) for prefix, e, p in self._by_prefix if norm.startswith(prefix))
        if not candidates:
            return _NO_HITS
        singles = tuple(dict.fromkeys(p for e, p in candidates if len(e) == 1))
        phrases = tuple(dict.fromkeys((e, p) for e, p in candidates if len(e) > 1))
        return singles, phrases

    def _tokenize(self, text: str, doc_lang: str | None) -> _Tokens:
        spans: list[tuple[int, int]] = []
        norms: list[str] = []
        lemmas: list[str] = []
        sentences: list[int] = []
        hits: list[_Hits] = []
        boundaries = [
            m.end() for m in _SENTENCE_END.finditer(text) if not _is_abbreviation(text, m.start())
        ]
        sentence, next_boundary = 0, 0
        for m in _WORD.finditer(text):
            while next_boundary < len(boundaries) and m.start() >= boundaries[next_boundary]:
                sentence += 1
                next_boundary += 1
            norm, lemma, found = self._word(m.group(), doc_lang)
            spans.append(m.span())
            norms.append(norm)
            lemmas.append(lemma)
            sentences.append(sentence)
            hits.append(found)
        return _Tokens(text, spans, norms, lemmas, sentences, hits)

    def _occurrences(self, tokens: _Tokens) -> dict[Payload, list[Occurrence]]:
        """Every term found, grouped by what it stands for, each group in token order."""
        found: dict[Payload, list[Occurrence]] = defaultdict(list)
        norms, lemmas = tokens.norms, tokens.lemmas
        count = len(norms)
        for i, (singles, phrases) in enumerate(tokens.hits):
            for payload in singles:
                found[payload].append(Occurrence(payload, i, i))
            if not phrases:
                continue
            seen: set[tuple[int, Payload]] = set()
            for elements, payload in phrases:
                last = i + len(elements) - 1
                if last >= count or (last, payload) in seen:
                    continue
                if all(
                    elements[k].matches(norms[i + k], lemmas[i + k])
                    for k in range(1, len(elements))
                ):
                    seen.add((last, payload))
                    found[payload].append(Occurrence(payload, i, last))
        return found

    # -- deciding ----------------------------------------------------------------
    def flag(self, title: str, text: str, lang: str | None = None) -> FlagResult:
        # The body first: a title that says nothing of the frame is read against
        # the body's tally ("Ukrainian man deported from US" over an ICE story).
        body, body_signals, lengths = (
            self._match_field("text", text, lang, None) if text else ([], None, [])
        )
        heading = self._match_field("title", title, lang, body_signals)[0] if title else []
        if not any(m.counted for m in heading):
            body = self._unless_passing(body, lengths)
        matches = heading + body
        score = round(sum(m.weight for m in matches), 3)
        categories = tuple(sorted({m.category for m in matches if m.counted}))
        return FlagResult(
            flagged=score >= self.taxonomy.threshold,
            score=score,
            categories=categories,
            matches=tuple(matches),
            version=self.taxonomy.version,
        )

    def _unless_passing(self, body: list[Match], lengths: list[int]) -> list[Match]:
        """The body's matches, vetoed when they only mention a removal in passing.
        ``lengths``: the words of each of the body's sentences."""
        passing = self.taxonomy.passing
        counted = {m.sentence for m in body if m.counted}
        if passing is None or len(counted) != 1:
            return body
        real = [i for i, n in enumerate(lengths) if n >= passing.words]
        (only,) = counted
        if len(real) < passing.sentences or only <= real[passing.lead - 1]:
            return body
        reason = (
            f"a passing mention: sentence {only + 1} of {len(lengths)} is the only one"
            f" that reports it, past the lead of a long text"
        )
        return [
            replace(
                m,
                weight=0.0,
                frame=Frame(VETOED, reason, m.frame.signals if m.frame else ()),
            )
            if m.counted
            else m
            for m in body
        ]

    def _match_field(
        self,
        field: str,
        content: str,
        lang: str | None,
        body: Callable[[], _FieldSignals] | None,
    ) -> tuple[list[Match], Callable[[], _FieldSignals], list[int]]:
        """The field's matches, its frame signals (made when first asked for) and
        the number of words in each of its sentences."""
        tokens = self._tokenize(content, lang)
        by_payload = self._occurrences(tokens)
        made: list[_FieldSignals] = []

        def signals() -> _FieldSignals:
            if not made:
                made.append(_FieldSignals(self._dimensions, by_payload, tokens, body))
            return made[0]

        lengths = [0] * (tokens.sentences[-1] + 1 if tokens.sentences else 0)
        for sentence in tokens.sentences:
            lengths[sentence] += 1
        return list(self._field_matches(field, tokens, by_payload, signals)), signals, lengths

    def _field_matches(
        self,
        field: str,
        tokens: _Tokens,
        by_payload: dict[Payload, list[Occurrence]],
        signals: Callable[[], _FieldSignals],
    ) -> Iterable[Match]:
        done: set[tuple[int, int]] = set()  # (rule, sentence): one counted match each
        vetoed: dict[tuple[int, int], Match] = {}  # else the first vetoed one, as evidence
        for index, rule in enumerate(self.taxonomy.rules):
            anchors = by_payload.get(Payload("rule", index, 0), [])
            for anchor in anchors:
                sentence = tokens.sentences[anchor.first]
                if (index, sentence) in done:
                    continue
                parts = [anchor]
                for group in range(1, len(rule.all)):
                    near = _nearest(
                        anchor,
                        by_payload.get(Payload("rule", index, group), []),
                        rule.within,
                        tokens,
                    )
                    if near is None:
                        break
                    parts.append(near)
                else:
                    frame = self._frame(rule.category, parts, by_payload, tokens, signals())
                    match = self._match(
                        category=rule.category,
                        rule=rule.id,
                        weight=rule.weight if frame.verdict != VETOED else 0.0,
                        field=field,
                        parts=parts,
                        tokens=tokens,
                        frame=frame,
                    )
                    if frame.verdict == VETOED:
                        vetoed.setdefault((index, sentence), match)
                        continue
                    done.add((index, sentence))
                    yield match
        for key, match in vetoed.items():
            if key not in done:
                yield match

    def _frame(
        self,
        category: str,
        parts: list[Occurrence],
        by_payload: dict[Payload, list[Occurrence]],
        tokens: _Tokens,
        signals: _FieldSignals,
    ) -> Frame:
        """The match's frame: each dimension's nearest answer, and the verdict."""
        answers = tuple(
            signals.answer(number, dimension, parts[0])
            for number, dimension in enumerate(self._dimensions)
            if category in dimension.categories
        )
        excluded = self._vetoed(category, parts, by_payload, tokens)
        others = [
            f"{a.dimension} is other: {', '.join(a.words)}" for a in answers if a.answer == "other"
        ]
        if excluded is not None or others:
            return Frame(VETOED, "; ".join(([excluded] if excluded else []) + others), answers)
        ours = [a for a in answers if a.answer == "ours"]
        for required in self._requirements.get(category, ()):
            if not any(a.dimension in required for a in ours):
                needed = " or ".join(required)
                return Frame(VETOED, f"{category} counts only when {needed} is ours", answers)
        if ours:
            reason = "; ".join(f"{a.dimension} is ours: {', '.join(a.words)}" for a in ours)
            return Frame(CONFIRMED, reason, answers)
        return Frame(UNKNOWN, "no frame signal near the match; the rule alone decides", answers)

    def _vetoed(
        self,
        category: str,
        parts: list[Occurrence],
        by_payload: dict[Payload, list[Occurrence]],
        tokens: _Tokens,
    ) -> str | None:
        """The exclusion that vetoes the match, with its word, or None."""
        for index, exclusion in enumerate(self.taxonomy.exclusions):
            if exclusion.categories and category not in exclusion.categories:
                continue
            found = by_payload.get(Payload("exclude", index, 0), [])
            for part in parts:
                near = _nearest(part, found, exclusion.within, tokens)
                if near is not None:
                    return f"excluded as {exclusion.id}: {_words(tokens, near)}"
        return None

    def _match(
        self,
        *,
        category: str,
        rule: str,
        weight: float,
        field: str,
        parts: list[Occurrence],
        tokens: _Tokens,
        frame: Frame | None = None,
    ) -> Match:
        anchor = parts[0]
        start, end = tokens.spans[anchor.first][0], tokens.spans[anchor.last][1]
        ordered = sorted(parts, key=lambda p: p.first)
        term = " … ".join(
            tokens.text[tokens.spans[p.first][0] : tokens.spans[p.last][1]] for p in ordered
        )
        return Match(
            category,
            rule,
            term,
            field,
            start,
            end,
            snippet(tokens.text, start, end),
            weight,
            frame,
            tokens.sentences[anchor.first],
        )


def _words(tokens: _Tokens, occurrence: Occurrence) -> str:
    return tokens.text[tokens.spans[occurrence.first][0] : tokens.spans[occurrence.last][1]]


def _gap(a: Occurrence, b: Occurrence) -> int:
    return max(b.first - a.last, a.first - b.last, 0)


class _FieldSignals:
    """A field's frame signals, sorted out once per field that has a match at all:
    background phrases ("Russia's war") and words right after a return verb
    ("returned to Ukraine") are not read."""

    def __init__(
        self,
        dimensions: tuple[Dimension, ...],
        by_payload: dict[Payload, list[Occurrence]],
        tokens: _Tokens,
        body: Callable[[], _FieldSignals] | None = None,
    ) -> None:
        self.tokens = tokens
        self.body = body
        self.sides: list[tuple[list[Occurrence], list[Occurrence]]] = []
        for number in range(len(dimensions)):
            background = by_payload.get(Payload("frame", number, BACKGROUND), [])
            after = by_payload.get(Payload("frame", number, NOT_AFTER), [])
            hidden = {t for b in background for t in range(b.first, b.last + 1)}
            blocked = {t for a in after for t in range(a.last + 1, a.last + 2 + _NOT_AFTER_GAP)}
            ours, other = (
                [
                    o
                    for o in by_payload.get(Payload("frame", number, side), [])
                    if o.first not in hidden and o.first not in blocked
                ]
                for side in (OURS, OTHER)
            )
            self.sides.append((ours, other))
        self._tallies: dict[int, Signal] = {}

    def answer(self, number: int, dimension: Dimension, anchor: Occurrence) -> Signal:
        ours, other = self.sides[number]
        scopes: list[tuple[Scope, str]] = [
            (
                dimension.within,
                "sentence" if dimension.within == "sentence" else f"{dimension.within} words",
            )
        ]
        if dimension.window:
            scopes.append((dimension.window, f"window {dimension.window}"))
        for scope, read in scopes:
            near_ours = _nearest(anchor, ours, scope, self.tokens)
            near_other = _nearest(anchor, other, scope, self.tokens)
            if near_ours is None and near_other is None:
                continue
            if near_ours is not None and (
                near_other is None or _gap(anchor, near_ours) <= _gap(anchor, near_other)
            ):
                return Signal(dimension.id, "ours", (_words(self.tokens, near_ours),), read)
            if near_other is not None:
                return Signal(dimension.id, "other", (_words(self.tokens, near_other),), read)
        if self.body is not None and dimension.window:
            # A title that says nothing is the headline of the lead under it.
            lead = self.body().answer_near_start(number, dimension)
            if lead.answer is not None:
                return lead
        if dimension.document:
            return (
                self.body().tally(number, dimension) if self.body else self.tally(number, dimension)
            )
        return Signal(dimension.id, None)

    def answer_near_start(self, number: int, dimension: Dimension) -> Signal:
        ours, other = self.sides[number]
        start = Occurrence(Payload("frame", number, OURS), 0, 0)
        near_ours = _nearest(start, ours, dimension.window, self.tokens)
        near_other = _nearest(start, other, dimension.window, self.tokens)
        read = f"lead {dimension.window}"
        if near_ours is not None and (near_other is None or near_ours.first <= near_other.first):
            return Signal(dimension.id, "ours", (_words(self.tokens, near_ours),), read)
        if near_other is not None:
            return Signal(dimension.id, "other", (_words(self.tokens, near_other),), read)
        return Signal(dimension.id, None)

    def tally(self, number: int, dimension: Dimension) -> Signal:
        """The whole text's answer, only when it leans to another story: a text that
        names ICE ten times and Russia twice is about ICE. One word is not a lean:
        a report may compare Russia's deportations with Soviet ones once."""
        known = self._tallies.get(number)
        if known is not None:
            return known
        ours, other = self.sides[number]
        answer = Signal(dimension.id, None)
        if len(other) >= _LEAN and len(other) > len(ours):
            words = tuple(dict.fromkeys(_words(self.tokens, o) for o in other))[:3]
            answer = Signal(dimension.id, "other", words, f"document ({len(other)} to {len(ours)})")
        self._tallies[number] = answer
        return answer


def _within(a: Occurrence, b: Occurrence, scope: Scope, tokens: _Tokens) -> bool:
    if scope == "document":
        return True
    if scope == "sentence":
        return tokens.sentences[a.first] == tokens.sentences[b.first]
    gap = max(b.first - a.last, a.first - b.last, 0)
    return gap <= scope


_LONGEST_TERM = 8  # words; bounds how far before a window a phrase may start


_first = itemgetter(1)  # an occurrence's first token, for bisect


def _nearest(
    anchor: Occurrence, candidates: list[Occurrence], scope: Scope, tokens: _Tokens
) -> Occurrence | None:
    """The candidate closest to ``anchor`` within ``scope``.

    Candidates are in token order, so only the slice that can fall in the
    window is examined (bisect), not every occurrence in the text.
    """
    if not candidates:
        return None
    if scope == "document":
        lo, hi = 0, len(candidates)
    else:
        if scope == "sentence":
            sentence = tokens.sentences[anchor.first]
            low_token = bisect_left(tokens.sentences, sentence)
            high_token = bisect_right(tokens.sentences, sentence)
        else:
            low_token = anchor.first - scope - _LONGEST_TERM
            high_token = anchor.last + scope + 1
        lo = bisect_left(candidates, low_token, key=_first)
        hi = bisect_left(candidates, high_token, key=_first)
    best: Occurrence | None = None
    for candidate in candidates[lo:hi]:
        if _within(anchor, candidate, scope, tokens) and (
            best is None or abs(candidate.first - anchor.first) < abs(best.first - anchor.first)
        ):
            best = candidate
    return best


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the full stop at ``dot`` ends an abbreviation rather than a sentence."""
    if text[dot] != ".":
        return False
    start = dot
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in ".-"):
        start -= 1
    word = text[start:dot].casefold()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def snippet(text: str, start: int, end: int, context: int = SNIPPET_CONTEXT) -> str:
    """The match with some words around it, the match itself in **bold** markers."""
    left = max(0, start - context)
    right = min(len(text), end + context)
    if left > 0:
        space = text.find(" ", left, start)
        left = space + 1 if space != -1 else left
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space != -1 else right
    before = text[left:start].replace("\n", " ").lstrip()
    after = text[end:right].replace("\n", " ").rstrip()
    return (
        ("…" if left > 0 else "")
        + f"{before}**{text[start:end]}**{after}"
        + ("…" if right < len(text) else "")
    )
