"""The order the suite's files start in: the longest first, by each file's seconds
in an earlier whole run (``tests/durations.json`` under the rootdir, written by
``pytest --store-durations``). A plugin (``pytest_plugins`` in conftest).

``make test`` runs pytest-xdist with ``--dist loadfile --no-loadscope-reorder``:
each file goes whole to one worker, in this order, and a worker that runs out
takes the next file. Longest first is longest-processing-time scheduling: the
long files (most of their time is spent waiting on crawls, brokers and
timeouts) start at once beside each other, and the run ends on short files, not
on one worker's long file while the others are idle. In the order pytest
collects (by name), the queue and service tests came last and the run ended
about 40 s after the other workers were done.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

RECORD = Path("tests") / "durations.json"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations",
        action="store_true",
        default=False,
        help=f"record each test file's seconds in {RECORD} (the order of later runs)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # The controller records: it sees every worker's reports (a worker has workerinput).
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(FileTimes(config.rootpath / RECORD), "file-times")


class FileTimes:
    """Adds up each file's seconds (its tests' setup, call and teardown) and merges
    them into the record: files this run did not run keep their seconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = report.nodeid.split("::")[0]
        self.seconds[name] = self.seconds.get(name, 0.0) + report.duration

    def pytest_sessionfinish(self) -> None:
        seconds = recorded(self.path) | {name: round(s, 1) for name, s in self.seconds.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(dict(sorted(seconds.items())), indent=1) + "\n")


def recorded(path: Path) -> dict[str, float]:
    """Each file's recorded seconds; none where the record is missing or unreadable."""
    try:
        seconds = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(seconds, dict):
        return {}
    return {str(name): float(s) for name, s in seconds.items() if isinstance(s, int | float)}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first, each file's tests together and in their order. A
    file not in the record goes first if it runs the command end to end (a test
    marked e2e), last otherwise."""
    seconds = recorded(config.rootpath / RECORD)
    e2e = {item.path for item in items if item.get_closest_marker("e2e")}

    def weight(item: pytest.Item) -> float:
        name = item.nodeid.split("::")[0]
        if name in seconds:
            return seconds[name]
        return math.inf if item.path in e2e else 0.0

    items.sort(key=lambda item: -weight(item))  # stable: a file's tests stay in order
