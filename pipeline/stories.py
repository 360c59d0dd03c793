"""One story across rewrites and languages: anchors, lookup keys and the two decisions.

MinHash over 3-word shingles (pipeline/similarity.py) joins copies that keep
most of their wording. Two kinds of report escape it:

- **rewrites** in the same language (a synonym-spun copy, a shortened repost,
  a Telegram summary) share many letter sequences but few exact 3-word runs;
- **language versions** (one report in Ukrainian, English and Russian) share
  almost no text at all, only what does not translate: the numbers, dates,
  and names written in another alphabet.

Both are found through *anchors*: the specific numbers of a text (19 546 and
19,546 alike), the dates it names (13 лютого, 13 февраля, February 13) and its
proper names reduced to a transliterated consonant skeleton (Лубінець,
Лубинец and Lubinets all read ``lbnc``). Anchors paired with the publication
day become lookup keys, stored beside the MinHash band keys: one indexed query
finds the few articles of the same days that share anchors, however large the
archive grows. An anchor that many articles of a day carry (the day's own
date, the ombudsman's name) is left out of that count: it would make every
report of a busy day a candidate, and their number grow with the archive.

Three more kinds of key find what anchors miss: the lead's rare terms (its
longest content lemmas, in its own language, on five-day spans) bring
retellings in other words together, the opening of its longest sentences
brings two outlets quoting one statement together, and an outlet's article
number in its address (one number for every edition of the article) brings
its editions.

The decisions are deliberately cautious (a wrong link is worse than a missing
one): a rewrite must share most of its letter 5-grams with the other text, or
be a short summary contained in it, or, within the window, share a sentence
word for word or a quotation's lemmas with another outlet's text, or the
lemmas of the lead and of
the fact sentences with a count or a date and every lead count, and never
contradict its counts (a bound, an age range or a page's dateline is no
count or date of the story); a language version needs the same
day or the next, several shared anchors of more than one kind, and no
contradicting count, or the outlet's article number.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from anyascii import anyascii

from pipeline.lexicon import LANGUAGES, lemmatize
from pipeline.text import fingerprint_text

# How many days apart two reports of one story may be published.
DAY_WINDOW = 2
# Language versions of one report come out the same day or the next: two
# returns of 16 children two days apart, in Russian and Ukrainian, were two
# returns (eval/stories, the pairs added after the rare-term change).
LANGUAGE_DAY_WINDOW = 1
# Anchors stored per article as lookup keys (most specific first).
MAX_KEYED_ANCHORS = 16
# A candidate shares keys of this weight at least: three names or dates, a
# count of hundreds and a name, a count of hundreds and one of tens. A date and
# a name (every report of the day that quotes the ombudsman) are not enough.
CANDIDATE_WEIGHT = 3.0
# An anchor that this many articles of one day carry (the day's own date, the
# ombudsman's name on a busy day) tells nothing about which story an article
# is: its key is not counted, and no more of its rows are read.
COMMON_ANCHOR_ARTICLES = 50

# Thresholds, set on eval/stories (EVALUATION.md, "Stories across rewrites and
# languages"): rewrites reach letter 5-gram Jaccard 0.4 and more; the closest
# same-topic pair of another story stayed under 0.3.
REWRITE_JACCARD = 0.40
# A summary (a Telegram post, a shortened repost) is mostly contained in the
# longer text: its share of 5-grams found there.
REWRITE_CONTAINMENT = 0.55
# Language versions: shared anchor weight over the smaller text's weight.
LANGUAGE_OVERLAP = 0.45
LANGUAGE_MIN_SHARED = 3
# Names alone (no number or date in common) link only when there are many.
LANGUAGE_MIN_NAMES_ONLY = 5
LANGUAGE_NAMES_ONLY_OVERLAP = 0.6
# A retelling in other words of the same language: some wording in common
# (same-topic reports of other stories stayed under 0.22) and the anchors.
REWRITE_RETOLD_JACCARD = 0.14
# Counts that contradict each other are looked for in the lead only: the
# background figures further down differ between two copies of one story.
LEAD_CHARS = 300

# Rare terms: retellings in one language that share few numbers or names
# still share the lead's uncommon words (немовля, спецшкола, "special
# school"). The lead's longest content lemmas stand for its rarest
# (no word-frequency list ships with the project's packages; longer words are
# rarer), and the archive's own document frequency does the rest: a term that
# COMMON_ANCHOR_ARTICLES articles of its days carry is not counted.
TERM_LEAD_CHARS = 400
MAX_TERMS = 8
TERM_WEIGHT = 0.75
# Terms are keyed on five-day spans, not days: a two-day window either side
# of a day touches at most two spans, so a lookup costs two keys a term, not five.
TERM_SPAN_DAYS = 5
# An outlet's editions in other languages share the article's number in their
# addresses (censor.net/ua/photonews/3570172/... and /ru/...): that alone makes
# a candidate, keyed without a day.
OUTLET_WEIGHT = CANDIDATE_WEIGHT
# Same-language retellings judged on lemmas (surface words differ by case and
# tense, "повернули" / "повернуто" / "повернення"): the lead's lemmas, and the
# lemmas of the sentences that carry the facts (numbers, names, quotes).
# Both must hold, within the publication window, with at least
# REWRITE_LEMMA_ANCHORS telling anchors in common (a count of ten or more, a
# date, a name), one of them a count or a date, and every count of either
# lead found in the other text.
# Names alone were not enough: every same-topic report of other events that
# came this close named the same people (Yermak, Lubinets, Melania Trump).
REWRITE_LEMMA_LEAD = 0.25
REWRITE_LEMMA_FACTS = 0.20
REWRITE_LEMMA_ANCHORS = 2
# A sentence shared word for word (a quoted statement, an official's sentence
# copied by two outlets): a run of this many plain tokens (numbers and
# lower-case content words; names, titles and short function words left out,
# so an attribution line such as "said the Verkhovna Rada Commissioner for
# Human Rights Dmytro Lubinets" stays far below it), at least this many of
# them words. An outlet's own boilerplate (its attribution formula, its
# background paragraph) repeats across its articles, so only two outlets'
# shared sentence counts.
SHARED_RUN_TOKENS = 9
# Outlets append one background paragraph (a running total and the platform it
# comes from, an official's standing quote) to different stories: a shared
# sentence counts only when it opens one of the two texts (starts within its
# first 600 characters: the lead, or the statement a retelling reports), and a
# shared quote only when the leads have some lemmas in common. On eval/stories
# no retelling was lost to either; at 500 characters two were.
SHARED_RUN_OPENING = 600
SHARED_LEAD_LEMMAS = 0.1
SHARED_RUN_WORDS = 4
# The same quoted statement translated or reordered by two outlets (the White
# House statement in two Russian versions): a quote's content lemmas, in any
# order, mostly the other's. Quotes of other statements shared under 0.4 of
# their lemmas on eval/stories, whatever the days.
QUOTE_LEMMAS = 10
QUOTE_OVERLAP = 0.5
# Sentences of that many plain tokens are keyed by their first run (the
# longest few per article, on five-day spans like the rare terms): two outlets
# quoting one statement become candidates whatever else they share. A shorter
# key matched the opening formula of any report of a return ("Україні вдалося
# повернути з тимчасово окупованої території ...").
SENTENCE_KEY_TOKENS = SHARED_RUN_TOKENS
MAX_SENTENCE_KEYS = 8
SENTENCE_WEIGHT = CANDIDATE_WEIGHT

_SHINGLE = 5

# Thousands separated by a space, a no-break space, a thin space or a comma.
# Not a number: digits inside a word (a model name, a hashtag, a code).
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:[ \u00a0\u202f,]\d{3})+|\d+)(?!\w)")
_NUMBER_SEP = re.compile(r"[ \u00a0\u202f,]")
# A clock time (18:01, 04:00) is when a page was published or updated, not a
# count: read as counts, its hours and minutes contradicted the lead of a copy
# of the same story that shows no time.
_CLOCK = re.compile(r"(?<![\d:])\d{1,2}:\d{2}(?![\d:])")
# A page's dateline (the day it came out, with the year and the time:
# "13 лютого 2026, 09:20", "20:22, 12 февраля 2026") is not the day a story
# names: read as one, it contradicted a copy published a day apart.
_DATELINE_AFTER = re.compile(r"[\s,]*(?:19|20)\d\d\b\D{0,12}?\d{1,2}:\d{2}")
_CLOCK_BEFORE = re.compile(r"\d{1,2}:\d{2}\D{0,4}$")
# An age range ("від 8 до 16 років", "aged 4 to 15") gives ages, not the count
# of children: two copies of one return gave 16 and 17 as its upper bound.
_AGE_RANGE = re.compile(
    r"(?:від|от|from|aged)\s+(\d{1,2})\s*(?:до|to|-|–)\s*(\d{1,2})(?!\d)",
    re.IGNORECASE,
)
# A count given as a bound ("понад 20", "more than 20") is not the story's
# exact count: against a copy that says 22 it is no contradiction.
_APPROXIMATE = re.compile(
    r"(?:понад|більше|більш ніж|близько|майже|приблизно|щонайменше|около|более|почти|"
    r"свыше|не менее|примерно|over|more than|nearly|almost|about|around|at least)\s+$",
    re.IGNORECASE,
)

# Counts and ages are written out as often as in digits (п'ятеро, пятеро, five;
# семирічний, семилетний, seven-year-old): the same number whatever the language.
_NUMBER_WORDS = {
    2: "two два дві двоє двох двое двух",
    3: "three три троє трьох трое трех трёх",
    4: "four чотири четверо чотирьох четыре четырех четырёх",
    5: "five п'ять п'ятеро п'ятьох пять пятеро пятерых",
    6: "six шість шестеро шістьох шесть шестерых",
    7: "seven сім семеро сімох семь семерых",
    8: "eight вісім восьмеро восьмох восемь восьмерых",
    9: "nine дев'ять дев'ятеро девять девятерых",
    10: "ten десять десятеро",
    11: "eleven одинадцять одиннадцать",
    12: "twelve дванадцять двенадцать",
    13: "thirteen тринадцять тринадцать",
    14: "fourteen чотирнадцять четырнадцать",
    15: "fifteen п'ятнадцять пятнадцать",
    16: "sixteen шістнадцять шестнадцать",
    17: "seventeen сімнадцять семнадцать",
}
_AGE_STEMS = {
    2: "дво двух",
    3: "три трех трёх",
    4: "чотири четырех четырёх",
    5: "п'яти пяти",
    6: "шести",
    7: "семи",
    8: "восьми",
    9: "дев'яти девяти",
    10: "десяти",
    11: "одинадцяти одиннадцати",
    12: "дванадцяти двенадцати",
    13: "тринадцяти тринадцати",
    14: "чотирнадцяти четырнадцати",
    15: "п'ятнадцяти пятнадцати",
    16: "шістнадцяти шестнадцати",
    17: "сімнадцяти семнадцати",
}
_WORD_NUMBERS = {w: n for n, words in _NUMBER_WORDS.items() for w in words.split()}
_AGE_NUMBERS = {w: n for n, words in _AGE_STEMS.items() for w in words.split()}
# One pass over the lowered text finds them all: a word of its own (five, п'ятеро;
# "five-year-old" too) or an age's first half (семирічний, семилетний).
_WRITTEN = re.compile(
    r"\b(?<!')(?:("
    + "|".join(sorted(_WORD_NUMBERS, key=len, reverse=True))
    + r")(?![\w'])|("
    + "|".join(sorted(_AGE_NUMBERS, key=len, reverse=True))
    + r")(?:річн|летн))"
)
_ENGLISH_MONTHS = frozenset(
    "january february march april may june july august september october november december".split()
)
_APOSTROPHES = str.maketrans({"ʼ": "'", "’": "'", "`": "'"})
_CAPITALIZED = re.compile(r"(?<![\w'ʼ’-])[A-ZА-ЯЁІЇЄҐ][\w'ʼ’-]*")

_MONTHS = {
    1: ("січ", "январ", "january", "jan"),
    2: ("лют", "феврал", "february", "feb"),
    3: ("берез", "март", "march", "mar"),
    4: ("квіт", "апрел", "april", "apr"),
    5: ("травн", "мая", "май", "may"),
    6: ("черв", "июн", "june", "jun"),
    7: ("лип", "июл", "july", "jul"),
    8: ("серп", "август", "august", "aug"),
    9: ("верес", "сентябр", "september", "sep"),
    10: ("жовт", "октябр", "october", "oct"),
    11: ("листопад", "ноябр", "november", "nov"),
    12: ("груд", "декабр", "december", "dec"),
}
# A date is looked for around each one- or two-digit number only (a scan for
# month words over the whole text cost more than the rest of the anchors).
_DAY = re.compile(r"(?<![\d.,:])(\d{1,2})(?!\d|[.,:]\d)")
_WORD_AFTER = re.compile(r"\s+([^\W\d_]{3,})")
_WORD_BEFORE = re.compile(r"([^\W\d_]{3,})\s+$")

# Names every report of the subject carries: no evidence that two are one story.
_COMMON_NAMES = (
    "Україна Україні України Украина Украине Украины Ukraine Ukrainian Ukrainians "
    "Росія Росії Россия России Russia Russian Russians РФ "
    "Київ Києві Киев Kyiv Telegram Telegram-каналі Facebook "
    "Президент Президента Президентом President Presidential "
    "Верховної Верховной Verkhovna Ради Рады Rada Офіс Офісу Офис Офиса Office "
    "Омбудсман Омбудсмана Омбудсмен Ombudsman Ombudsman's Уповноважений Commissioner "
    "UNN УНН Ukrinform Укрінформ Новини.LIVE Bring Kids Back UA"
).split()


@lru_cache(maxsize=50_000)
def skeleton(word: str) -> str | None:
    """A name as its first four consonants in Latin letters, whatever its alphabet.

    Transliteration differs by language (Лубінець / Лубинец / Lubinets, Харків
    / Харьков / Kharkiv, Єрмак / Ермак / Yermak); the vowels, soft signs and
    endings are where it differs most, so they are dropped.
    """
    latin = anyascii(word).lower()
    for digraph, letter in (
        ("shch", "s"),
        ("kh", "x"),
        ("zh", "z"),
        ("ch", "c"),
        ("sh", "s"),
        ("ts", "c"),
        ("tz", "c"),
        ("q", "k"),
        ("w", "v"),
        ("h", "g"),
    ):
        latin = latin.replace(digraph, letter)
    consonants = re.sub(r"[^b-df-gj-np-tv-xz]|j", "", latin)
    collapsed = re.sub(r"(.)\1+", r"\1", consonants)
    return collapsed[:4] if len(collapsed) >= 3 else None


_COMMON_SKELETONS = frozenset(s for s in map(skeleton, _COMMON_NAMES) if s)


@dataclass(frozen=True)
class Anchors:
    """What of a text survives translation, with a weight for how telling each is."""

    numbers: frozenset[int]
    dates: frozenset[str]  # "MM-DD"
    names: tuple[str, ...]  # skeletons, most frequent first
    lead_counts: frozenset[int] = frozenset()  # counts in the title and lead
    lead_dates: frozenset[str] = frozenset()  # dates the title and lead name
    # Small counts the title and lead give ("five children"): the story's own
    # count, weighed as a count of tens; further down they are ages and details.
    lead_small: frozenset[int] = frozenset()

    def weighted(self, lead_small: bool = True) -> dict[str, float]:
        small = self.lead_small if lead_small else frozenset()
        out: dict[str, float] = {}
        for n in self.numbers:
            out[f"n{n}"] = 1.0 if n in small else _number_weight(n)
        for d in self.dates:
            out[f"d{d}"] = 2.0
        for name in self.names:
            out[f"p{name}"] = 1.0
        return {k: v for k, v in out.items() if v > 0}


def _number_weight(n: int) -> float:
    if n < 2 or 1990 <= n <= 2035:
        return 0.0  # years are in every report
    if n < 10:
        return 0.5  # ages and small counts: telling only together
    return 2.0 if n >= 100 else 1.0


def _written_numbers(text: str) -> set[int]:
    lowered = text.lower().translate(_APOSTROPHES)
    return {
        _WORD_NUMBERS[word] if word else _AGE_NUMBERS[age]
        for word, age in _WRITTEN.findall(lowered)
    }


@lru_cache(maxsize=256)
def anchors(text: str) -> Anchors:
    """The text's anchors; remembered for the last texts (a new article is
    compared with several candidates, and a candidate with several articles)."""
    return _anchors(text)


def _anchors(text: str) -> Anchors:
    dates = set()
    lead_dates: set[str] = set()
    date_days: set[int] = set()  # where a number is the day of a date, not a count
    for match in _DAY.finditer(text):
        day = int(match.group(1))
        if not 1 <= day <= 31:
            continue
        after = _WORD_AFTER.match(text, match.end())
        before = _WORD_BEFORE.search(text, max(0, match.start() - 12), match.start())
        for word in (after and after.group(1), before and before.group(1)):
            month = _month(word) if word else None
            if month:
                dates.add(f"{month:02d}-{day:02d}")
                date_days.add(match.start())
                if match.start() < LEAD_CHARS and not _dateline(text, match, after):
                    lead_dates.add(f"{month:02d}-{day:02d}")
                break
    clock = {i for m in _CLOCK.finditer(text) for i in range(m.start(), m.end())}
    ages = {m.start(g) for m in _AGE_RANGE.finditer(text[:LEAD_CHARS]) for g in (1, 2)}
    numbers: set[int] = set()
    lead: set[int] = set()
    for match in _NUMBER.finditer(text):
        if match.start() in date_days or match.start() in clock:
            continue
        number = int(_NUMBER_SEP.sub("", match.group(1)))
        numbers.add(number)
        if (
            match.start() < LEAD_CHARS
            and match.start() not in ages
            and not _APPROXIMATE.search(text, max(0, match.start() - 12), match.start())
        ):
            lead.add(number)
    numbers |= _written_numbers(text)
    names: Counter[str] = Counter()
    for match in _CAPITALIZED.finditer(text):
        if _sentence_start(text, match.start()):
            continue
        if match.group().lower() in _ENGLISH_MONTHS:
            continue
        key = skeleton(match.group())
        if key and key not in _COMMON_SKELETONS:
            names[key] += 1
    return Anchors(
        frozenset(numbers),
        frozenset(dates),
        tuple(k for k, _ in names.most_common()),
        frozenset(n for n in lead if _number_weight(n) >= 1),
        frozenset(lead_dates),
        frozenset(
            n for n in lead | _written_numbers(text[:LEAD_CHARS]) if 0 < _number_weight(n) < 1
        ),
    )


def _dateline(text: str, day: re.Match[str], after: re.Match[str] | None) -> bool:
    """Is this date the page's own dateline: a year and a time after it, or a
    time just before it?"""
    end = after.end() if after else day.end()
    return bool(
        _DATELINE_AFTER.match(text, end)
        or _CLOCK_BEFORE.search(text, max(0, day.start() - 10), day.start())
    )


def _month(word: str) -> int | None:
    lowered = word.lower()
    for month, stems in _MONTHS.items():
        if any(lowered.startswith(stem) for stem in stems):
            return month
    return None


def _sentence_start(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in " \t\"'«„“”(—–-•🔘":
        i -= 1
    return i < 0 or text[i] in ".!?:\n"


def _key(anchor: str, day: date) -> int:
    digest = hashlib.blake2b(f"story:{anchor}:{day.isoformat()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def keyed_anchors(found: Anchors) -> list[str]:
    weighted = found.weighted()
    ranked = sorted(weighted, key=lambda k: (-weighted[k], k))
    # Names are ranked by how often the text repeats them, not alphabetically.
    names = [f"p{n}" for n in found.names]
    ranked = [k for k in ranked if not k.startswith("p")] + names
    return ranked[:MAX_KEYED_ANCHORS]


def story_keys(
    found: Anchors,
    published: datetime | None,
    terms: tuple[str, ...] = (),
    outlet: str | None = None,
    sentences: tuple[str, ...] = (),
) -> list[int]:
    """The keys an article is stored under: its anchors on its publication day,
    its rare terms and its long sentences on their five-day span, and its
    outlet's article number."""
    keys = [_key(f"o{outlet}", date.min)] if outlet else []
    if published is None:
        return keys
    day = published.date()
    keys += [_key(anchor, day) for anchor in keyed_anchors(found)]
    keys += [_key(f"l{term}", _span(day)) for term in terms]
    keys += [_key(f"s{sentence}", _span(day)) for sentence in sentences]
    return keys


def lookup_keys(
    found: Anchors,
    published: datetime | None,
    terms: tuple[str, ...] = (),
    outlet: str | None = None,
    sentences: tuple[str, ...] = (),
) -> dict[int, float]:
    """The keys to look up (the same anchors on each day of the window), each
    with its anchor's weight: a shared count of hundreds says more than a name.
    A date weighs as a name does here: most reports of a day name that day."""
    keys = {_key(f"o{outlet}", date.min): OUTLET_WEIGHT} if outlet else {}
    if published is None:
        return keys
    day = published.date()
    days = [day + timedelta(days=d) for d in range(-DAY_WINDOW, DAY_WINDOW + 1)]
    weighted = found.weighted()
    keys |= {
        _key(a, d): 1.0 if a.startswith("d") else weighted[a]
        for a in keyed_anchors(found)
        for d in days
    }
    spans = {_span(days[0]), _span(days[-1])}
    keys |= {_key(f"l{term}", span): TERM_WEIGHT for term in terms for span in spans}
    keys |= {
        _key(f"s{sentence}", span): SENTENCE_WEIGHT for sentence in sentences for span in spans
    }
    return keys


def _span(day: date) -> date:
    return date.fromordinal(day.toordinal() // TERM_SPAN_DAYS * TERM_SPAN_DAYS)


_TERM = re.compile(r"[^\W\d_][\w'ʼ’-]*")
_LEMMA_WORD = re.compile(r"[^\W\d_]{3,}")
# Function words of five letters or more that the lemmatizer keeps as they are.
_STOP = frozenset(
    "about after against also although among because before being between could during "
    "every from have however into more most other over said says should since some such "
    "than that their them then there these they this those through under until were what "
    "when where which while will with would year years "
    "також тому після який яка яке які яких якого якому буде було були може можуть "
    "через щодо адже навіть тобто через своїх свого своєї більш більше однак "
    "также после который которая которое которые которых было были будет может могут "
    "через чтобы этого этой этих более однако своих своего своей".split()
)


@lru_cache(maxsize=256)
def lead_terms(text: str, language: str | None) -> tuple[str, ...]:
    """The lead's rarest content lemmas (the longest stand for the rarest),
    names left out: their skeletons are anchors already, across languages."""
    if language not in LANGUAGES:
        return ()
    lemmas: set[str] = set()
    for match in _TERM.finditer(text[:TERM_LEAD_CHARS]):
        word = match.group()
        if word[0].isupper() or len(word) < 6:
            continue
        lemma = lemmatize(word.lower(), language).lower()
        if len(lemma) >= 6 and lemma not in _STOP:
            lemmas.add(lemma)
    ranked = sorted(lemmas, key=lambda lemma: (-len(lemma), lemma))
    return tuple(f"{language}:{lemma}" for lemma in ranked[:MAX_TERMS])


# A sentence or clause: quotes, dashes, bullets and line ends bound it as
# sentence ends do (a quote is shared without the words that introduce it).
_PIECE = re.compile(r"[^.!?\n;:«»\"“”„—–•]+")
_PIECE_WORD = re.compile(r"[^\W_]+(?:['ʼ’][^\W_]+)*")
# The two countries every report names, written lower-case by some outlets
# (росія) and capitalised by others: left out like the other names (their
# adjectives, російських, are ordinary words).
_COUNTRIES = frozenset(
    "росія росії росію росією россия россии россию россией russia "
    "україна україни україні україну україною украина украины украине украину украиной "
    "ukraine".split()
)


@lru_cache(maxsize=256)
def plain_pieces(text: str, opening: int | None = None) -> tuple[tuple[str, ...], ...]:
    """Each long sentence or clause of the text as its plain tokens: numbers,
    and lower-case words of four letters or more that are not function words.
    Names and titles are left out (every report of the subject has them), the
    first word of a clause kept whatever its case. With ``opening``, only the
    pieces that start within that many characters."""
    pieces = []
    for piece in _PIECE.finditer(text):
        if opening is not None and piece.start() >= opening:
            break
        tokens = []
        for i, match in enumerate(_PIECE_WORD.finditer(piece.group())):
            word = match.group()
            if word.isdigit():
                tokens.append(word)
                continue
            lowered = word.lower().translate(_APOSTROPHES)
            if (
                (i == 0 or word[0].islower())
                and len(word) >= 4
                and lowered not in _STOP
                and lowered not in _COUNTRIES
            ):
                tokens.append(lowered)
        if len(tokens) >= SHARED_RUN_TOKENS:
            pieces.append(tuple(tokens))
    return tuple(pieces)


def _runs(pieces: tuple[tuple[str, ...], ...]) -> set[tuple[str, ...]]:
    return {
        piece[i : i + SHARED_RUN_TOKENS]
        for piece in pieces
        for i in range(len(piece) - SHARED_RUN_TOKENS + 1)
    }


def shared_sentence(a: str, b: str) -> bool:
    """Do the two texts share a run of SHARED_RUN_TOKENS plain tokens within
    one sentence, SHARED_RUN_WORDS of them words?"""
    common = (_runs(plain_pieces(a, SHARED_RUN_OPENING)) & _runs(plain_pieces(b))) | (
        _runs(plain_pieces(a)) & _runs(plain_pieces(b, SHARED_RUN_OPENING))
    )
    return any(sum(not t.isdigit() for t in run) >= SHARED_RUN_WORDS for run in common)


_QUOTE = re.compile(r"[«“\"„]([^«»“”\"„]{40,}?)[»”\"“]")


@lru_cache(maxsize=256)
def quote_lemmas(text: str, language: str) -> tuple[frozenset[str], ...]:
    """The content lemmas of each quotation of the text (between quote marks)."""
    quotes = []
    for match in _QUOTE.finditer(text):
        lemmas = {
            lemmatize(word.lower(), language).lower()
            for word in _LEMMA_WORD.findall(match.group(1))
            if len(word) >= 4
        }
        lemmas -= _STOP | _COUNTRIES
        if len(lemmas) >= QUOTE_LEMMAS:
            quotes.append(frozenset(lemmas))
    return tuple(quotes)


def shared_quote(a: str, b: str, language: str) -> bool:
    """Do the two texts quote one statement, in whatever words order?"""
    return any(
        len(left & right) >= QUOTE_LEMMAS and _jaccard(left, right) >= QUOTE_OVERLAP
        for left in quote_lemmas(a, language)
        for right in quote_lemmas(b, language)
    )


@lru_cache(maxsize=256)
def sentence_terms(text: str) -> tuple[str, ...]:
    """The first plain tokens of the text's longest sentences, as lookup keys."""
    pieces = sorted(plain_pieces(text), key=len, reverse=True)[:MAX_SENTENCE_KEYS]
    return tuple(dict.fromkeys(" ".join(p[:SENTENCE_KEY_TOKENS]) for p in pieces))


_OUTLET_NUMBER = re.compile(r"(?<!\d)\d{5,}(?!\d)")
# Editions of one outlet differ by a language or a mobile prefix of the host.
_EDITION_PREFIXES = ("www.", "m.", "amp.", "en.", "ru.", "ua.", "uk.", "rus.", "eng.")


def outlet_host(url: str | None) -> str | None:
    """The outlet of an address: its host without an edition prefix."""
    if not url:
        return None
    host = (urlsplit(url).hostname or "").lower()
    stripped = True
    while stripped:
        stripped = False
        for prefix in _EDITION_PREFIXES:
            if host.startswith(prefix) and host.count(".") > 1:
                host, stripped = host.removeprefix(prefix), True
    return host or None


def outlet_article(url: str | None) -> str | None:
    """An outlet's article number as its editions in every language share it
    (host without its edition prefix, and the longest number of five digits or
    more in the path); None for an address without one."""
    host = outlet_host(url)
    numbers = _OUTLET_NUMBER.findall(urlsplit(url).path) if url else []
    if not host or not numbers:
        return None
    return f"{host}/{max(numbers, key=len)}"


@lru_cache(maxsize=64)
def shingles(text: str) -> frozenset[str]:
    folded = fingerprint_text(text)
    return frozenset(folded[i : i + _SHINGLE] for i in range(len(folded) - _SHINGLE + 1))


_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_FACT = re.compile(r"\d|[«»“”„\"]")


@lru_cache(maxsize=64)
def lemma_sets(text: str, language: str) -> tuple[frozenset[str], frozenset[str]]:
    """The content lemmas of the lead, and of the sentences that carry the
    facts (a number, a name inside the sentence, a quote)."""

    def lemmas(part: str) -> set[str]:
        out = set()
        for word in _LEMMA_WORD.findall(part):
            lemma = lemmatize(word.lower(), language).lower()
            if lemma not in _STOP:
                out.add(lemma)
        return out

    facts: set[str] = set()
    for match in _SENTENCE.finditer(text):
        sentence = match.group()
        names = any(
            not _sentence_start(text, m.start() + match.start())
            for m in _CAPITALIZED.finditer(sentence)
        )
        if names or _FACT.search(sentence) or _written_numbers(sentence):
            facts |= lemmas(sentence)
    return frozenset(lemmas(text[:TERM_LEAD_CHARS])), frozenset(facts)


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def lemma_similarity(a: str, b: str, language: str) -> tuple[float, float]:
    """Lemma Jaccard of the two leads, and of the two texts' fact sentences."""
    lead_a, facts_a = lemma_sets(a, language)
    lead_b, facts_b = lemma_sets(b, language)
    return _jaccard(lead_a, lead_b), _jaccard(facts_a, facts_b)


@dataclass(frozen=True)
class Verdict:
    same: bool
    score: float
    why: str


def rewrite_verdict(
    a: str,
    b: str,
    published_a: datetime | None = None,
    published_b: datetime | None = None,
    language: str | None = None,
    *,
    outlets: tuple[str | None, str | None] = (None, None),
) -> Verdict:
    """Is ``b`` the same story as ``a`` retold in the same language?

    Most of the wording kept (letter 5-grams), or a summary contained in the
    other text, is a rewrite on its own. A retelling in other words is one
    only when published within the window and sharing some wording and the
    anchors a language version would need, or a sentence word for word (two
    different ``outlets``, the hosts of their addresses), or, in the text's
    ``language``, the lemmas of its lead and of its fact sentences and some
    telling anchors.
    """
    # The counts first: they settle most candidates of the same days, and cost
    # less than the letter 5-grams.
    found_a, found_b = anchors(a), anchors(b)
    if _counts_conflict(found_a, found_b):
        return Verdict(False, 0.0, "different counts")
    left, right = shingles(a), shingles(b)
    if not left or not right:
        return Verdict(False, 0.0, "empty")
    shared = len(left & right)
    jaccard = shared / len(left | right)
    containment = shared / min(len(left), len(right))
    if jaccard >= REWRITE_JACCARD:
        return Verdict(True, jaccard, "letter 5-grams")
    if containment >= REWRITE_CONTAINMENT:
        return Verdict(True, containment, "summary contained")
    if jaccard >= REWRITE_RETOLD_JACCARD and _lead_anchored(found_a, found_b, a, b, language):
        # Some wording and a language version's anchors, one of them in a lead.
        retold = language_verdict(found_a, found_b, published_a, published_b, window=DAY_WINDOW)
        if retold.same:
            return Verdict(True, jaccard, f"retold, {retold.why}")
    same_outlet = outlets[0] is not None and outlets[0] == outlets[1]
    if (
        not same_outlet
        and _within_window(published_a, published_b)
        and _leads_agree(found_a, found_b)
        and shared_sentence(a, b)
    ):
        return Verdict(True, jaccard, "a sentence word for word")
    if (
        not same_outlet
        and language in LANGUAGES
        and _within_window(published_a, published_b)
        and _leads_agree(found_a, found_b)
        and _leads_alike(a, b, language)
        and shared_quote(a, b, language)
    ):
        return Verdict(True, jaccard, "one quote")
    if language in LANGUAGES and _within_window(published_a, published_b):
        lead, facts = lemma_similarity(a, b, language)
        telling = _telling(found_a) & _telling(found_b)
        if (
            lead >= REWRITE_LEMMA_LEAD
            and facts >= REWRITE_LEMMA_FACTS
            and len(telling) >= REWRITE_LEMMA_ANCHORS
            and any(not k.startswith("p") for k in telling)
            and _leads_agree(found_a, found_b)
        ):
            return Verdict(True, jaccard, f"retold, lemmas {lead:.2f}/{facts:.2f}")
    return Verdict(False, jaccard, "too different")


def _leads_agree(a: Anchors, b: Anchors) -> bool:
    """Every count either lead gives is in the other text: on evidence as weak
    as shared lemmas, one count in common is not enough (reports written to a
    template share their words, and by chance one of their counts)."""
    return a.lead_counts <= b.numbers and b.lead_counts <= a.numbers


def _leads_alike(a: str, b: str, language: str | None) -> bool:
    """Do the two leads tell of one thing (some lemmas in common)? A sentence or
    quote in common is not enough on its own: outlets append the same background
    paragraph (a running total, the platform it comes from) to different stories."""
    if language not in LANGUAGES:
        return True
    return lemma_similarity(a, b, language)[0] >= SHARED_LEAD_LEMMAS


def _lead_anchored(
    found_a: Anchors, found_b: Anchors, a: str, b: str, language: str | None
) -> bool:
    """Does what the two texts share reach a lead: a count or date one lead gives
    found in the other text, or leads with lemmas in common? Counts and names
    shared only further down may come from one background paragraph."""
    counts_a = found_a.lead_counts | found_a.lead_small
    counts_b = found_b.lead_counts | found_b.lead_small
    if counts_a & found_b.numbers or counts_b & found_a.numbers:
        return True
    if found_a.lead_dates & found_b.dates or found_b.lead_dates & found_a.dates:
        return True
    return _leads_alike(a, b, language)


def _within_window(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and b is not None and abs((a.date() - b.date()).days) <= DAY_WINDOW


def _telling(found: Anchors) -> set[str]:
    """Anchors that point at one story: a count of ten or more, a date, a name.
    A small count, even in the lead, is not one: "five children" came back in
    many returns (two a year apart retold in the same words)."""
    return {k for k, w in found.weighted(lead_small=False).items() if w >= 1.0}


def language_verdict(
    a: Anchors,
    b: Anchors,
    published_a: datetime | None,
    published_b: datetime | None,
    *,
    outlet_a: str | None = None,
    outlet_b: str | None = None,
    window: int = LANGUAGE_DAY_WINDOW,
) -> Verdict:
    """Is ``b`` the same story as ``a`` in another language?

    One outlet's editions that give the article the same number in their
    addresses are one article translated, unless their counts disagree.
    """
    if outlet_a and outlet_a == outlet_b and not _counts_conflict(a, b):
        return Verdict(True, 1.0, "the outlet's article number")
    if published_a is None or published_b is None:
        return Verdict(False, 0.0, "undated")
    if abs((published_a.date() - published_b.date()).days) > window:
        return Verdict(False, 0.0, "days apart")
    if _counts_conflict(a, b):
        return Verdict(False, 0.0, "different counts")
    left, right = a.weighted(), b.weighted()
    shared = left.keys() & right.keys()
    if len(shared) < LANGUAGE_MIN_SHARED:
        return Verdict(False, 0.0, "few anchors")
    weight = sum(left[k] for k in shared)
    smaller = min(sum(left.values()), sum(right.values()))
    score = weight / smaller if smaller else 0.0
    if {k[0] for k in shared} == {"p"}:
        many = len(shared) >= LANGUAGE_MIN_NAMES_ONLY
        return Verdict(many and score >= LANGUAGE_NAMES_ONLY_OVERLAP, score, "names only")
    return Verdict(score >= LANGUAGE_OVERLAP, score, "anchors")


def _counts_conflict(a: Anchors, b: Anchors) -> bool:
    """Two reports whose leads' counts, or dates, share nothing report different events."""
    for left, right in ((a.lead_counts, b.lead_counts), (a.lead_dates, b.lead_dates)):
        if left and right and not (left & right):
            return True
    return False
