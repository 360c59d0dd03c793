"""The flagging taxonomy (``keywords.toml``): categories, term groups, rules, exclusions,
and the report frames (``frames.toml``, named by ``keywords.toml``'s ``frames_file``).

It is data, validated when loaded; a bad file fails with one line naming the
place. The matcher (``pipeline/matcher.py``) compiles it once per process.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deportwatch.config.errors import ConfigError

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
Scope = Literal["sentence", "document"] | int


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    label: str
    why: str | None = None


class Rule(BaseModel):
    """A match: ``any`` of some terms, or terms from ``all`` groups close together.

    A term is a word (matched on its lemma and its written form), ``stem*``
    (any word starting so), or a phrase of these. ``@name`` stands for a term
    group from ``[terms]``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    category: str
    any: tuple[str, ...] = ()
    all: tuple[tuple[str, ...] | str, ...] = ()
    within: Scope = Field(default=20, description="Words apart, or 'sentence'.")
    weight: float = Field(default=1.0, gt=0)
    why: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Rule:
        if bool(self.any) == bool(self.all):
            raise ValueError('give exactly one of "any" or "all"')
        if self.all and len(self.all) < 2:
            raise ValueError('"all" needs at least two groups')
        if isinstance(self.within, int) and self.within < 1:
            raise ValueError('"within" must be a positive number of words or "sentence"')
        return self


class Exclusion(BaseModel):
    """Terms that veto matches near them: the context of another kind of story."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    terms: tuple[str, ...] = Field(min_length=1)
    within: Scope = "sentence"
    categories: tuple[str, ...] = Field(
        default=(), description="Categories it can veto; all when empty."
    )
    why: str


class Dimension(BaseModel):
    """One question asked of every match: who removes (agent), where to (direction),
    whom (people), when (period). ``ours`` terms answer it as Russia's removal of
    Ukrainians does; ``other`` terms as another story does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    categories: tuple[str, ...] = Field(min_length=1, description="Categories it judges.")
    within: Scope = Field(default="sentence", description="Where a signal is read first.")
    window: int = Field(
        default=0, ge=0, description="Words around the match read when that says nothing."
    )
    document: bool = Field(
        default=False, description="Whether the whole text's tally decides when nothing is near."
    )
    ours: tuple[str, ...] = Field(min_length=1)
    other: tuple[str, ...] = Field(min_length=1)
    background: tuple[str, ...] = Field(
        default=(), description="Phrases whose words are not read as signals ('Russia's war')."
    )
    not_after: tuple[str, ...] = Field(
        default=(), description="A signal right after one of these is not read ('returned to')."
    )
    why: str

    @model_validator(mode="after")
    def _positive_within(self) -> Dimension:
        if isinstance(self.within, int) and self.within < 1:
            raise ValueError('"within" must be a positive number of words or "sentence"')
        return self


class Requirement(BaseModel):
    """A category whose matches count only when one of some dimensions answers ``ours``:
    the rule's words alone are not the report (adoption in Ukraine is not adoption in Russia)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    any_of: tuple[str, ...] = Field(min_length=1)
    why: str


class Passing(BaseModel):
    """A long text whose every counted match stands in one sentence past its lead
    mentions a removal in passing (a clause in news about something else); its
    matches are vetoed, and kept as evidence with that reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    words: int = Field(
        ge=1, description="Words a sentence needs to count (menus, captions, fragments do not)."
    )
    sentences: int = Field(ge=2, description="Texts of at least this many sentences are read so.")
    lead: int = Field(ge=1, description="Sentences at the text's start that are its lead.")
    why: str


class Frames(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dimensions: tuple[Dimension, ...] = Field(min_length=1, alias="dimension")
    requirements: tuple[Requirement, ...] = Field(default=(), alias="require")

    def check(self, category_ids: set[str]) -> None:
        """Names must resolve: a misspelt category would silently judge nothing."""
        ids = [d.id for d in self.dimensions]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"dimension '{duplicates[0]}' is defined twice")
        for dimension in self.dimensions:
            for category in dimension.categories:
                if category not in category_ids:
                    raise ValueError(f"dimension '{dimension.id}': unknown category '{category}'")
            for term in (
                dimension.ours + dimension.other + dimension.background + dimension.not_after
            ):
                if not any(ch.isalnum() for ch in term) or term.startswith("@"):
                    raise ValueError(f"dimension '{dimension.id}': {term!r} is not a term")
        for requirement in self.requirements:
            if requirement.category not in category_ids:
                raise ValueError(f"require: unknown category '{requirement.category}'")
            for name in requirement.any_of:
                if name not in ids:
                    raise ValueError(
                        f"require '{requirement.category}': unknown dimension '{name}'"
                    )


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=32)
    threshold: float = Field(default=1.0, gt=0)
    frames_file: str | None = Field(default=None, description="The frames file, beside this one.")
    frames: Frames | None = Field(
        default=None, description="Given inline, or read from frames_file."
    )
    categories: tuple[Category, ...] = Field(min_length=1, alias="category")
    terms: dict[str, tuple[str, ...]] = {}
    rules: tuple[Rule, ...] = Field(min_length=1, alias="rule")
    exclusions: tuple[Exclusion, ...] = Field(default=(), alias="exclude")
    passing: Passing | None = None

    @model_validator(mode="after")
    def _references_resolve(self) -> Taxonomy:
        self._check_terms()
        self._check_rules()
        self._check_exclusions()
        if self.frames is not None:
            self.frames.check({c.id for c in self.categories})
        for name, group in self.terms.items():
            for ref in _refs(group):
                if ref not in self.terms:
                    raise ValueError(f"term group '{name}': unknown term group '@{ref}'")
            self.expand(group, (name,))
        return self

    def _check_terms(self) -> None:
        """A term that holds no word would match nothing (or, as a bare ``*``, anything)."""
        places: list[tuple[str, tuple[Any, ...]]] = [
            (f"term group '{name}'", group) for name, group in self.terms.items()
        ]
        places += [(f"rule '{r.id}'", r.any + r.all) for r in self.rules]
        places += [(f"exclude '{e.id}'", e.terms) for e in self.exclusions]
        for where, items in places:
            for term in _flat(items):
                if not any(ch.isalnum() for ch in term):
                    raise ValueError(f"{where}: {term!r} is not a term (no word in it)")

    def _check_rules(self) -> None:
        category_ids = {c.id for c in self.categories}
        ids = [r.id for r in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rule '{duplicates[0]}' is defined twice")
        for rule in self.rules:
            if rule.category not in category_ids:
                raise ValueError(f"rule '{rule.id}': unknown category '{rule.category}'")
            for ref in _refs(rule.any) + _refs(rule.all):
                if ref not in self.terms:
                    raise ValueError(f"rule '{rule.id}': unknown term group '@{ref}'")

    def _check_exclusions(self) -> None:
        category_ids = {c.id for c in self.categories}
        for exclusion in self.exclusions:
            for category in exclusion.categories:
                if category not in category_ids:
                    raise ValueError(f"exclude '{exclusion.id}': unknown category '{category}'")
            for ref in _refs(exclusion.terms):
                if ref not in self.terms:
                    raise ValueError(f"exclude '{exclusion.id}': unknown term group '@{ref}'")

    def expand(self, terms: tuple[str, ...] | str, _seen: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Terms with every ``@group`` replaced by the group's terms, groups in groups too."""
        items = (terms,) if isinstance(terms, str) else terms
        out: list[str] = []
        for term in items:
            if not term.startswith("@"):
                out.append(term)
                continue
            name = term[1:]
            if name in _seen:
                raise ValueError(f"term group '@{name}' contains itself")
            out.extend(self.expand(self.terms[name], (*_seen, name)))
        return tuple(dict.fromkeys(out))


def _flat(items: tuple[Any, ...]) -> list[str]:
    flat: list[str] = []
    for item in items:
        flat.extend([item] if isinstance(item, str) else item)
    return flat


def _refs(items: tuple[Any, ...]) -> list[str]:
    return [t[1:] for t in _flat(items) if t.startswith("@")]


def parse_taxonomy(data: dict[str, Any], origin: str) -> Taxonomy:
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, data, origin)) from None


def parse_frames(data: dict[str, Any], origin: str, taxonomy: Taxonomy) -> Taxonomy:
    """The taxonomy with its frames, checked against its categories."""
    try:
        frames = Frames.model_validate(data)
        frames.check({c.id for c in taxonomy.categories})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, data, origin)) from None
    except ValueError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    return taxonomy.model_copy(update={"frames": frames})


_ENTRIES = ("rule", "exclude", "category", "dimension", "require")


def _one_line(exc: ValidationError, data: dict[str, Any], origin: str) -> str:
    err = exc.errors()[0]
    loc = list(err["loc"])
    place = ""
    if len(loc) >= 2 and loc[0] in _ENTRIES and isinstance(loc[1], int):
        entries = data.get(str(loc[0]), [])
        entry = entries[loc[1]] if loc[1] < len(entries) else {}
        name = (entry.get("id") or entry.get("category")) if isinstance(entry, dict) else None
        place = f"{loc[0]} '{name}'" if name else f"{loc[0]} #{loc[1] + 1}"
        loc = loc[2:]
    field = ".".join(str(p) for p in loc)
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    where = ": ".join(p for p in (place, f"field '{field}'" if field else "") if p)
    return f"{origin}: {where + ': ' if where else ''}{message}"


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what} file ({exc})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load_taxonomy(path: Path) -> Taxonomy:
    taxonomy = parse_taxonomy(_read_toml(path, "keywords"), str(path))
    if taxonomy.frames_file is None:
        return taxonomy
    # Relative to the keywords file, so a mounted or copied pair stays a pair.
    frames_path = path.parent / taxonomy.frames_file
    return parse_frames(_read_toml(frames_path, "frames"), str(frames_path), taxonomy)
