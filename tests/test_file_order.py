"""The suite's own order (tests/file_order.py): files start longest first by the
recorded seconds, and ``--store-durations`` records them. Run by a real pytest
in a folder of its own (pytester)."""

from __future__ import annotations

import json

import pytest

FILES = {
    "test_short": "def test_one():\n    pass\n\ndef test_two():\n    pass\n",
    "test_long": "def test_one():\n    pass\n",
    "test_new_e2e": (
        "import pytest\n\n@pytest.mark.e2e\ndef test_one():\n    pass\n\ndef test_two():\n    pass\n"
    ),
    "test_new": "def test_one():\n    pass\n",
}
INI = "[pytest]\nmarkers =\n    e2e: end to end\n"


def collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    result = pytester.runpytest_inprocess("-p", "tests.file_order", "-p", "no:cacheprovider", *args)
    return [line for line in result.outlines if "::" in line and " " not in line]


def test_files_start_longest_first_and_a_new_file_by_its_kind(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(**FILES)
    record = pytester.path / "tests" / "durations.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"test_short.py": 2.5, "test_long.py": 40.0}))

    assert collected(pytester, "--collect-only", "-q") == [
        "test_new_e2e.py::test_one",  # not recorded, runs the command: first
        "test_new_e2e.py::test_two",  # the file's tests together, in order
        "test_long.py::test_one",
        "test_short.py::test_one",
        "test_short.py::test_two",
        "test_new.py::test_one",  # not recorded, no e2e test: last
    ]


def test_an_unreadable_record_leaves_the_order_as_collected(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(**FILES)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "durations.json").write_text("{not json")

    order = collected(pytester, "--collect-only", "-q")

    assert [line.split("::")[0] for line in order] == [
        "test_new_e2e.py",
        "test_new_e2e.py",
        "test_long.py",
        "test_new.py",
        "test_short.py",
        "test_short.py",
    ]  # e2e first, then as pytest collects (by name)


def test_store_durations_records_every_file_run_and_keeps_the_others(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(**FILES)
    record = pytester.path / "tests" / "durations.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"test_gone.py": 7.0, "test_long.py": 40.0}))

    result = pytester.runpytest_inprocess(
        "-p", "tests.file_order", "-p", "no:cacheprovider", "--store-durations"
    )

    result.assert_outcomes(passed=6)
    seconds = json.loads(record.read_text())
    assert sorted(seconds) == [
        "test_gone.py",  # not run: kept
        "test_long.py",
        "test_new.py",
        "test_new_e2e.py",
        "test_short.py",
    ]
    assert seconds["test_gone.py"] == 7.0
    assert seconds["test_long.py"] < 40.0  # this run's seconds replace the old
    assert all(isinstance(s, float) and s >= 0 for s in seconds.values())
