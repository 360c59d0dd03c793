"""Write RELIABILITY.md from a fresh run of the reliability tests.

Usage: python -m tests.reliability_report   (``make reliability``)

Runs the fault matrix, the outage, crash, two-writer, spool, configuration,
fuzzing and security tests with pytest (on PostgreSQL too when
DEPORTWATCH_TEST_DATABASE_URL is set), reads their results from pytest's JUnit
XML and the crash test's figures, and writes the tables. Exits with pytest's
code, so a failing test is never reported as passing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from tests.test_fault_matrix import FAULTS

REPO = Path(__file__).parent.parent
OUT = REPO / "build" / "reliability"
ARTIFACTS = REPO / "build" / "test-artifacts"
TESTS = (
    "tests/test_fault_matrix.py",
    "tests/test_archive_outage.py",
    "tests/test_crash.py",
    "tests/test_two_writers.py",
    "tests/test_spool.py",
    "tests/test_writer.py",
    "tests/test_config_errors.py",
    "tests/test_security.py",
    "tests/test_fuzz.py",
    "tests/test_encoding.py",
    "tests/test_capture.py",
)
DATABASES = ("sqlite", "postgresql")

OTHER = (
    (
        "PostgreSQL goes away mid-crawl (every connection cut, the port refusing), then returns",
        "one line and exit 1; the fetched items and the run's ending wait in the spool; the "
        "next crawl stores every page exactly once, counts right, spool emptied",
        "test_archive_outage.py::test_an_archive_outage_mid_crawl_loses_nothing_and_doubles_nothing",
        ("postgresql",),
    ),
    (
        "SQLite locked by another process for longer than the crawl waits, mid-crawl",
        "the same: spooled, then stored once by the next crawl",
        "test_archive_outage.py::test_an_archive_outage_mid_crawl_loses_nothing_and_doubles_nothing",
        ("sqlite",),
    ),
    (
        "SQLite archive locked, or read-only, when a crawl starts",
        "one line (`locked by another process…`, `read-only…`), exit 1, nothing fetched",
        "test_archive_outage.py::test_a_locked_or_read_only_sqlite_archive_is_one_clear_line_and_nothing_is_fetched",
        (),
    ),
    (
        "`kill -9` of a crawl at six seeded points (three on each database), then a second crawl",
        "the archive equals one uninterrupted crawl's (rows, texts, dates, flags, evidence, "
        "stories); no orphan rows; the killed run closed as `crashed`; every WARC capture "
        "linked, before and after the second crawl, is a complete record with its digest",
        "test_crash.py::test_a_crawl_killed_anywhere_and_run_again_leaves_the_archive_whole",
        DATABASES,
    ),
    (
        "the disk holding the evidence WARC files fills mid-crawl (a 48 KiB tmpfs)",
        "capture stops with one error on the run (`evidence capture stopped: … No space left on "
        "device`); every article is still stored; every link leads to a complete record; every "
        "WARC file passes `warcio check`",
        "test_capture.py::test_a_full_disk_stops_capture_with_one_error_and_loses_no_article",
        DATABASES,
    ),
    (
        "the service's crawl and a manual crawl of one source at once",
        "no lock error shown; each page once, in the stories one crawl makes; each article "
        "counted new in exactly one run",
        "test_two_writers.py::test_the_service_and_a_manual_crawl_of_one_source_at_once",
        DATABASES,
    ),
    (
        "a connection cut in the middle of a batch",
        "the batch goes to the spool; the next item gets a fresh connection",
        "test_writer.py::test_a_lost_connection_spools_the_batch_and_says_so",
        ("postgresql",),
    ),
    (
        "broken sources.toml (17 shapes), keywords.toml (8), arguments and settings (14)",
        "one line naming file, place and reason; exit 2; no traceback",
        "test_config_errors.py",
        (),
    ),
    (
        "hostile text: mixed scripts, RTL and zero-width marks, markup, 5,000-character tokens",
        "no exception escapes URL keys, dates, counters, Telegram parsing, extraction, "
        "normalizing or flagging; each input within 2 s (Hypothesis)",
        "test_fuzz.py",
        (),
    ),
    (
        "security: shell, evaluation, SQL building, secrets in output",
        "none: SQL constant or bound, passwords hidden, no secret in the container files",
        "test_security.py",
        (),
    ),
)


def run_tests() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", "-q", f"--junitxml={OUT / 'junit.xml'}", *TESTS]
    return subprocess.run(command, cwd=REPO, check=False).returncode


def results() -> dict[str, str]:
    """Test id (``file.py::name[param]``) -> passed | failed | skipped."""
    tree = ET.parse(OUT / "junit.xml")  # noqa: S314 -- our own pytest's report
    found = {}
    for case in tree.iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        key = f"{module}.py::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            found[key] = "failed"
        elif case.find("skipped") is not None:
            found[key] = "skipped"
        else:
            found[key] = "passed"
    return found


def verdict(found: dict[str, str], prefix: str, databases: tuple[str, ...]) -> str:
    """One result per database (or for all tests under ``prefix``)."""
    if not databases:
        outcomes = [v for k, v in found.items() if k.startswith(prefix)]
        if not outcomes:
            return "not run"
        return "failed" if "failed" in outcomes else f"passed ({outcomes.count('passed')})"
    parts = []
    for db in databases:
        matching = [v for k, v in found.items() if k.startswith(prefix) and f"[{db}" in k]
        # A test run once per case (each kill point, say) passes only if every case did.
        result = "failed" if "failed" in matching else (matching[0] if matching else "not run")
        parts.append(f"{db}: {result}")
    return ", ".join(parts)


def crash_figures() -> list[str]:
    lines = []
    for db in DATABASES:
        paths = sorted(
            ARTIFACTS.glob(f"crash-{db}-seed-*.json"),
            key=lambda path: int(path.stem.rsplit("-", 1)[1]),
        )
        if not paths:
            lines.append(f"| {db} | not run | | | | |")
            continue
        for row in (json.loads(path.read_text()) for path in paths):
            lines.append(
                f"| {db} | {row['seed']} | {row['killed after pages served']} | "
                f"{row['articles stored before the kill']} | {row['articles compared']} "
                f"({row['stories compared']} stories, {row['flag matches compared']} matches) | "
                f"{'identical' if row['identical'] else 'DIFFERENT'} |"
            )
    return lines


def render(found: dict[str, str], code: int) -> str:
    postgres = (
        "on SQLite and PostgreSQL"
        if os.environ.get("DEPORTWATCH_TEST_DATABASE_URL")
        else ("on SQLite only (DEPORTWATCH_TEST_DATABASE_URL was not set)")
    )
    lines = [
        "# Reliability",
        "",
        "Written by `make reliability` (= `.venv/bin/python -m tests.reliability_report`), "
        "which runs the tests below and fills these tables from their results; "
        "do not edit by hand.",
        "",
        f"Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {postgres}, "
        f"Python {platform.python_version()}, {platform.machine()}; "
        f"pytest exit code {code} ({'all passed' if code == 0 else 'FAILURES'}).",
        "",
        "## The fault matrix",
        "",
        "One `deportwatch crawl --all` through a loopback web that misbehaves "
        "(`tests/fault_web.py`): each fault is a source of its own, so each is recorded on "
        "its own run. The crawl runs with a 4 s download timeout, 2 retries and 0.2 s "
        "backoff. The crawl itself must finish, exit 0, and leave no article row without "
        "a title, text, hash or story "
        f"(`{verdict(found, 'test_fault_matrix.py::test_the_crawl', DATABASES)}`).",
        "",
        "| fault | the web does | deportwatch does | test | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fault in FAULTS:
        test = f"test_fault_matrix.py::test_fault[*-{fault.name}]"
        results_by_db = []
        for db in DATABASES:
            result = found.get(f"test_fault_matrix.py::test_fault[{db}-{fault.name}]", "not run")
            results_by_db.append(f"{db}: {result}")
        lines.append(
            f"| {fault.name} | {fault.injected} | {fault.expected} | `{test}` | "
            f"{', '.join(results_by_db)} |"
        )
    lines += [
        "",
        "## The archive, crashes and concurrency",
        "",
        "| fault | expected behaviour | test | result |",
        "| --- | --- | --- | --- |",
    ]
    for fault, expected, test, databases in OTHER:
        lines.append(f"| {fault} | {expected} | `{test}` | {verdict(found, test, databases)} |")
    lines += [
        "",
        "## Crash test figures",
        "",
        "A crawl of the 60-page synthetic site (`bench/synthetic_site.py`, 10% syndicated "
        "copies, 5% reports), one request at a time, is killed with SIGKILL once the site "
        "has served a seeded number of article pages, then run again to its end; the "
        "archive is compared with one uninterrupted crawl's.",
        "",
        "| database | seed | killed after pages served | articles stored before the kill | "
        "compared | archive |",
        "| --- | ---: | ---: | ---: | --- | --- |",
        *crash_figures(),
        "",
        "## How nothing is lost",
        "",
        "- A page's fetch state (ETag, the entries its feed listed) is saved only when the "
        "whole run ends well, so anything not stored is fetched again by the next crawl.",
        "- Items are written in batches (100 items or 1 s), each item in a savepoint: an item "
        "that fails leaves nothing; a batch the database refuses goes, with its items, to "
        "the spool (`DEPORTWATCH_SPOOL_DIR`), which the next crawl of each source reads "
        "back through the whole pipeline. Counts are taken only on commit.",
        "- One writer at a time per archive: SQLite's `BEGIN IMMEDIATE`, a PostgreSQL "
        "advisory lock per schema; so two crawls never deadlock, and dedup sees what the "
        "other stored.",
        "- A run left `running` by a killed process is closed as `crashed` by the next crawl "
        "(its pid and host are recorded).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    code = run_tests()
    (REPO / "RELIABILITY.md").write_text(render(results(), code), encoding="utf-8")
    print(f"RELIABILITY.md written (pytest exit code {code})")
    sys.exit(code)


if __name__ == "__main__":
    main()
