"""The sources file: which sites to watch, as data validated when it is loaded.

A source is data, a kind is code: adding an outlet that has a feed is an entry
in ``sources.toml``; only a new *kind* of source needs a new spider class.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from apscheduler.triggers.cron import CronTrigger
from cssselect import SelectorError
from parsel.csstranslator import HTMLTranslator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from deportwatch.config.errors import ConfigError

SourceKind = Literal["feed", "sitemap", "listing", "telegram", "counters"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
_INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url


HttpUrl = Annotated[str, AfterValidator(_check_url)]
_TELEGRAM_PREVIEW = re.compile(r"^https://t\.me/s/([A-Za-z][A-Za-z0-9_]{3,31})/?$")


def check_interval(value: str) -> str:
    if not _INTERVAL.match(value):
        raise ValueError(f'{value!r} is not an interval like "45s", "30m", "2h" or "1d"')
    return value


def interval_delta(text: str) -> timedelta:
    """ "30m", "2h", "14d" as a timedelta (the text is validated beforehand)."""
    match = _INTERVAL.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an interval")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def telegram_channel(url: str) -> str | None:
    """The channel name of a ``https://t.me/s/<channel>`` preview URL."""
    match = _TELEGRAM_PREVIEW.match(url)
    return match.group(1) if match else None


class Schedule(BaseModel):
    """How often a source is crawled: a fixed interval or a crontab line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every: str | None = Field(default=None, description='Interval such as "30m", "2h", "1d".')
    cron: str | None = Field(default=None, description='Crontab line such as "*/30 * * * *".')

    @field_validator("every")
    @classmethod
    def _valid_interval(cls, value: str | None) -> str | None:
        return None if value is None else check_interval(value)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronTrigger.from_crontab(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a crontab line: {exc}") from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError('give exactly one of "every" or "cron"')
        return self

    @property
    def interval(self) -> timedelta | None:
        return None if self.every is None else interval_delta(self.every)

    def describe(self) -> str:
        return f"every {self.every}" if self.every else f"cron {self.cron}"


def check_css(value: Any) -> Any:
    """A CSS selector parsel can use; a typo fails when the file is loaded, not
    at the first page of a crawl."""
    for css in (value,) if isinstance(value, str) else value or ():
        try:
            HTMLTranslator().css_to_xpath(css)
        except SelectorError as exc:
            raise ValueError(f"{css!r} is not a CSS selector ({exc})") from None
    return value


class Selectors(BaseModel):
    """Per-source CSS selectors; each one, when it matches, overrides generic extraction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("title", "body", "date", "author", "drop")
    @classmethod
    def _valid_css(cls, value: Any) -> Any:
        return check_css(value)

    title: str | None = None
    body: str | None = Field(default=None, description="Elements whose text is the body.")
    date: str | None = None
    author: str | None = None
    drop: tuple[str, ...] = Field(default=(), description="Elements removed before extraction.")
    drop_paragraphs: tuple[str, ...] = Field(
        default=(), description="Body paragraphs dropped when their whole text is one of these."
    )


class Listing(BaseModel):
    """How to read a listing page (``listing`` kind): CSS for item links and the next page.

    Both name elements whose ``href`` is taken; ``link[rel=next]`` works for the
    next page as well as an ``a``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("items", "next")
    @classmethod
    def _valid_css(cls, value: Any) -> Any:
        return check_css(value)

    items: str = Field(description="Links to the articles listed on a page.")
    next: str | None = Field(default=None, description="The link to the next (older) page.")


class Source(BaseModel):
    """One watched source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    kind: SourceKind
    start_urls: tuple[HttpUrl, ...] = Field(min_length=1)
    languages: tuple[Literal["uk", "ru", "en"], ...] = Field(min_length=1)
    title: str | None = Field(default=None, description="Human-readable name of the outlet.")
    schedule: Schedule | None = None
    enabled: bool = True
    allowed_domains: tuple[str, ...] = Field(
        default=(), description="Hosts the crawl may fetch; default: the start URLs' hosts."
    )
    selectors: Selectors = Selectors()
    max_items: int = Field(default=200, ge=1, description="Most entries followed per crawl.")
    max_pages: int = Field(
        default=3, ge=1, le=100, description="listing/telegram: most pages read back per crawl."
    )
    lookback: str = Field(
        default="14d", description="sitemap: only entries newer than this are followed."
    )
    follow: tuple[str, ...] = Field(
        default=(),
        description="sitemap: regexes; a sitemap index's children are read only if one matches.",
    )
    listing: Listing | None = None
    timeout: str | None = Field(
        default=None, description="Longest a crawl may run (default: the crawl_timeout setting)."
    )
    notes: str | None = None

    @field_validator("lookback")
    @classmethod
    def _valid_lookback(cls, value: str) -> str:
        return check_interval(value)

    @field_validator("timeout")
    @classmethod
    def _valid_timeout(cls, value: str | None) -> str | None:
        return None if value is None else check_interval(value)

    @field_validator("follow")
    @classmethod
    def _valid_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _kind_needs(self) -> Source:
        if self.kind == "listing" and self.listing is None:
            raise ValueError('a "listing" source needs [source.listing] with "items"')
        if self.kind == "telegram":
            for url in self.start_urls:
                if telegram_channel(url) is None:
                    raise ValueError(f"{url!r} is not a channel preview like https://t.me/s/<name>")
        return self

    @property
    def lookback_delta(self) -> timedelta:
        return interval_delta(self.lookback)

    @property
    def domains(self) -> tuple[str, ...]:
        """The hosts this source may fetch from (with and without ``www.``)."""
        hosts = list(self.allowed_domains) or [
            urlsplit(url).hostname or "" for url in self.start_urls
        ]
        out: list[str] = []
        for host in hosts:
            bare = host.lower().removeprefix("www.")
            if bare and bare not in out:
                out.append(bare)
        return tuple(out)


class SourcesFile(BaseModel):
    """The whole sources file."""

    sources: tuple[Source, ...]

    def get(self, name: str) -> Source | None:
        return next((s for s in self.sources if s.name == name), None)

    @property
    def enabled(self) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.enabled)


def _describe_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(entry)"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "literal_error":
        message = f"{message}, got {err.get('input')!r}"
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    return f"field '{field}': {message}"


def parse_sources(data: dict[str, Any], origin: str) -> SourcesFile:
    """Validate the parsed TOML; errors name the file, the source and the field."""
    unknown = sorted(set(data) - {"source"})
    if unknown:
        raise ConfigError(f"{origin}: unknown top-level key '{unknown[0]}' (expected [[source]])")
    entries = data.get("source", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{origin}: 'source' must be an array of tables ([[source]])")
    sources: list[Source] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        label = f"source '{entry['name']}'" if isinstance(entry.get("name"), str) else ""
        label = label or f"source #{index}"
        try:
            source = Source.model_validate(entry)
        except ValidationError as exc:
            raise ConfigError(f"{origin}: {label}: {_describe_error(exc)}") from None
        if source.name in seen:
            raise ConfigError(f"{origin}: {label}: field 'name': duplicate source name")
        seen.add(source.name)
        sources.append(source)
    return SourcesFile(sources=tuple(sources))


def read_sources(path: Path) -> tuple[bytes, SourcesFile]:
    """The file's bytes and its validated content, or a one-line ConfigError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: sources file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read sources file ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return raw, parse_sources(data, str(path))


def load_sources(path: Path) -> SourcesFile:
    """Read and validate a sources file, or raise a one-line ConfigError."""
    return read_sources(path)[1]
