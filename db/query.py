"""The search syntax users type, parsed into terms both databases can run.

    deported children            both words (AND)
    "health improvement camp"    an exact phrase
    Kherson OR Херсон            either
    -Crimea                      not containing
    депорт*                      a prefix

Written by hand because the query is never handed to FTS5 or ``to_tsquery``
as typed: each term is reduced to the word characters the indexes hold, then
rendered by ``db.search`` for the database in use. So no input, however
malformed, reaches the database as syntax; a query that cannot be read gets a
one-line error naming the problem.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from deportwatch.config.errors import UsageError

# Letters and digits: the characters both indexes (FTS5 unicode61, PostgreSQL's
# default parser) keep in a token; anything else separates tokens.
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r'\s*(?:(-?)"([^"]*)("?)|(\S+))')
MAX_TERMS = 32


class QueryError(UsageError):
    """A search query that cannot be read (exit code 2)."""


@dataclass(frozen=True)
class Term:
    """A word or a phrase (several words in a row); ``prefix``: the last word is a prefix."""

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class Query:
    """All ``groups`` must match (each group: any of its terms); no ``excluded`` term may."""

    groups: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...] = ()

    @property
    def words(self) -> list[str]:
        """Every searched word, for highlighting."""
        return [w for group in self.groups for term in group for w in term.words]


def _term(text: str, prefix: bool, original: str) -> Term:
    words = tuple(w.lower() for w in _WORD.findall(text))
    if not words:
        raise QueryError(f"search: {original!r} has no letters or digits to search for")
    return Term(words, prefix)


def _tokens(text: str) -> Iterator[tuple[bool, Term] | None]:
    """Each term as (excluded, term); None for an OR."""
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only trailing spaces are left
            return
        position = match.end()
        negated, phrase, _closed, bare = match.groups()
        if bare == "OR":
            yield None
        elif bare is None:
            yield bool(negated), _term(phrase, False, f'"{phrase}"')
        elif _WORD.search(bare):  # a lone dash or other punctuation is skipped
            excluded = bare.startswith("-")
            word = bare[1:] if excluded else bare
            yield excluded, _term(word.rstrip("*"), word.endswith("*"), bare)


def parse_query(text: str) -> Query:
    """Parse the user's query; a QueryError says what is wrong with it."""
    text = unicodedata.normalize("NFC", text).strip()
    if text.count('"') % 2:
        raise QueryError('search: a phrase is not closed (an odd number of ")')
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    pending_or = False
    for token in _tokens(text):
        if token is None:
            if not groups or pending_or:
                raise QueryError("search: OR needs a term on each side")
            pending_or = True
            continue
        negated, term = token
        if negated and pending_or:
            raise QueryError("search: OR cannot join an excluded term")
        if negated:
            excluded.append(term)
        elif pending_or:
            groups[-1].append(term)
        else:
            groups.append([term])
        pending_or = False
    if pending_or:
        raise QueryError("search: OR needs a term on each side")
    if not groups:
        raise QueryError("search: the query needs at least one word to find (not only -words)")
    if sum(len(g) for g in groups) + len(excluded) > MAX_TERMS:
        raise QueryError(f"search: at most {MAX_TERMS} terms in one query")
    return Query(tuple(tuple(g) for g in groups), tuple(excluded))


def fts5_expression(query: Query) -> str:
    """The query in SQLite FTS5 syntax; every word is quoted, so none is an operator."""

    def term(t: Term) -> str:
        return '"' + " ".join(t.words) + '"' + ("*" if t.prefix else "")

    def group(g: tuple[Term, ...]) -> str:
        return term(g[0]) if len(g) == 1 else "(" + " OR ".join(map(term, g)) + ")"

    expression = " AND ".join(group(g) for g in query.groups)
    if query.excluded:
        expression = f"({expression}) NOT ({' OR '.join(map(term, query.excluded))})"
    return expression


def tsquery_expression(query: Query) -> str:
    """The query in PostgreSQL ``to_tsquery`` syntax, each word a quoted lexeme."""

    def term(t: Term) -> str:
        lexemes = [f"'{w}'" for w in t.words]
        if t.prefix:
            lexemes[-1] += ":*"
        return lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")"

    def group(g: tuple[Term, ...]) -> str:
        return term(g[0]) if len(g) == 1 else "(" + " | ".join(map(term, g)) + ")"

    expression = " & ".join(group(g) for g in query.groups)
    for t in query.excluded:
        expression += f" & !{term(t)}"
    return expression
