"""Items the archive could not take, kept on local disk until it can.

When the database refuses a batch (a server that went down, dropped
connections, a SQLite file locked for longer than the busy timeout), the
items of that batch, and those that arrive while it stays unreachable, are
appended here as JSON lines, one file per source and process:
``<spool>/<database key>/<source>/<UTC time>-<pid>.jsonl``. The next crawl of
that source reads them back first and sends them through the pipeline again
(``deportwatch/crawl/spool_drain.py``), so an article that was fetched is never
lost because the archive was away; storing is idempotent, so an item read
back twice is stored once.

Items are kept as the spider made them (the fields normalize reads, not the
ones the later stages derive): the pipeline recomputes the rest. A file is
locked (``flock``) by the process that writes it and by the crawl that reads
it back, so two crawls never read one file at once, and a file whose writer
died is free to be read (the kernel drops a dead process's locks).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url

from pipeline.items import ArticleItem, CounterItem, DateCandidate, Item

log = logging.getLogger(__name__)

FORMAT = 1
RUNS = "_runs"  # the folder of run endings (a source name never starts with "_")
# The fields a spider fills; the stages derive the others again.
_ARTICLE_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(ArticleItem)
    if f.name
    not in {
        "canonical_url",
        "published_at",
        "date_origin",
        "language",
        "content_hash",
        "archived_known",
        "archived_id",
        "minhash",
        "band_keys",
        "duplicate_of",
        "similarity",
        "flag",
    }
)
_COUNTER_FIELDS = tuple(f.name for f in dataclasses.fields(CounterItem))


# How long to wait for a connection or a lock: not part of which database it is.
_TUNING_PARAMETERS = ("timeout", "connect_timeout")


def database_key(database_url: str) -> str:
    """A folder name for one database: its backend and a hash of its URL (password
    and waiting times left out), so items wait for the archive they were meant for."""
    url = make_url(database_url).difference_update_query(_TUNING_PARAMETERS)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(Path(url.database).resolve()))
    rendered = url.render_as_string(hide_password=True)
    return f"{url.get_backend_name()}-{hashlib.sha256(rendered.encode()).hexdigest()[:12]}"


def _source_folder(name: str) -> str:
    # Source names are validated slugs; this keeps a path out of them all the same.
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


def to_record(item: Item) -> dict[str, Any]:
    """One item as a JSON-ready record."""
    if isinstance(item, ArticleItem):
        fields = {name: getattr(item, name) for name in _ARTICLE_FIELDS}
        fields["fetched_at"] = item.fetched_at.isoformat()
        fields["date_candidates"] = [[c.origin, c.value] for c in item.date_candidates]
        fields["source_languages"] = list(item.source_languages)
        return {"format": FORMAT, "type": "article", "item": fields}
    fields = {name: getattr(item, name) for name in _COUNTER_FIELDS}
    fields["fetched_at"] = item.fetched_at.isoformat()
    fields["as_of"] = item.as_of.isoformat()
    return {"format": FORMAT, "type": "reading", "item": fields}


def from_record(record: dict[str, Any]) -> Item:
    """The item a record was made from (``ValueError`` for a record it cannot be)."""
    fields = dict(record["item"])
    fetched_at = datetime.fromisoformat(fields.pop("fetched_at"))
    if fetched_at.tzinfo is None:
        raise ValueError("fetched_at without a time zone")
    fetched_at = fetched_at.astimezone(UTC)
    if record.get("type") == "article":
        candidates = [DateCandidate(o, v) for o, v in fields.pop("date_candidates")]
        languages = tuple(fields.pop("source_languages"))
        unknown = set(fields) - set(_ARTICLE_FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        return ArticleItem(
            fetched_at=fetched_at,
            date_candidates=candidates,
            source_languages=languages,
            **fields,
        )
    if record.get("type") == "reading":
        as_of = date.fromisoformat(fields.pop("as_of"))
        return CounterItem(fetched_at=fetched_at, as_of=as_of, **fields)
    raise ValueError(f"unknown record type {record.get('type')!r}")


@dataclass
class SpooledFile:
    """A spool file this process has locked to read back."""

    path: Path
    handle: IO[bytes]

    def release(self, *, delete: bool) -> None:
        try:
            if delete:
                self.path.unlink(missing_ok=True)
        finally:
            self.handle.close()  # closing drops the lock


class Spool:
    """The spool of one database: where items wait while that archive is away."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.directory = root / database_key(database_url)
        self._files: dict[str, tuple[Path, IO[bytes]]] = {}
        self.kept: dict[str, int] = {}  # items this process has put in the spool, per source

    def keep(self, items: list[Item]) -> None:
        """Append ``items`` to this process's files, on disk before it returns."""
        self._append([(item.source, to_record(item)) for item in items])
        for item in items:
            self.kept[item.source] = self.kept.get(item.source, 0) + 1

    def keep_run(self, record: dict[str, Any]) -> None:
        """Keep how a run ended, when the archive could not take it
        (``apply_runs`` writes it later)."""
        self._append([(RUNS, {"format": FORMAT, "type": "run", "run": record})])

    def _append(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        touched: dict[Path, IO[bytes]] = {}
        for folder, record in records:
            path, handle = self._file(folder)
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
            handle.write(line.encode() + b"\n")
            touched[path] = handle
        for handle in touched.values():
            handle.flush()
            os.fsync(handle.fileno())

    def _file(self, source: str) -> tuple[Path, IO[bytes]]:
        if source not in self._files:
            folder = self.directory / _source_folder(source)
            folder.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = folder / f"{stamp}-{os.getpid()}.jsonl"
            handle = path.open("ab")
            # Held while this process may still append: no crawl reads a file
            # that is still being written.
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._files[source] = (path, handle)
        return self._files[source]

    def close(self) -> None:
        for _, handle in self._files.values():
            handle.close()
        self._files.clear()

    def claim(self, source: str) -> list[SpooledFile]:
        """The files of ``source`` that no other process holds, locked for reading.

        Files this process writes itself are left alone: they hold what this
        crawl could not store, for the next one.
        """
        folder = self.directory / _source_folder(source)
        own = {path for path, _ in self._files.values()}
        claimed = []
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
            if path in own:
                continue
            handle = path.open("rb")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()  # being written, or read by another crawl
                continue
            if not path.exists():  # read back and deleted while we waited
                handle.close()
                continue
            claimed.append(SpooledFile(path, handle))
        return claimed

    def pending(self) -> dict[str, int]:
        """Items waiting per source (lines in the files), for messages and status."""
        counts: dict[str, int] = {}
        if not self.directory.is_dir():
            return counts
        for path in self.directory.glob("*/*.jsonl"):
            try:
                with path.open("rb") as handle:
                    lines = sum(1 for line in handle if line.strip())
            except OSError:
                continue
            if lines and path.parent.name != RUNS:
                counts[path.parent.name] = counts.get(path.parent.name, 0) + lines
        return counts


def read_records(spooled: SpooledFile) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Each line's record, or why it cannot be read (a line cut short when a
    process died mid-write, a record of an unknown format)."""
    spooled.handle.seek(0)
    for number, raw in enumerate(spooled.handle, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            if not isinstance(record, dict) or record.get("format") != FORMAT:
                raise ValueError("not a spool record of this version")
        except ValueError as exc:
            yield number, f"line {number} unreadable ({exc})"
            continue
        yield number, record


def read_items(spooled: SpooledFile) -> Iterator[tuple[int, Item | str]]:
    """Each line's item, or why it cannot be read."""
    for number, record in read_records(spooled):
        if isinstance(record, str):
            yield number, record
            continue
        try:
            yield number, from_record(record)
        except (ValueError, KeyError, TypeError) as exc:
            yield number, f"line {number} unreadable ({type(exc).__name__}: {exc})"
