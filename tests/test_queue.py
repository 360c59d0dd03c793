"""Crawl workers sharing a real Celery queue: two ``deportwatch worker`` processes
splitting a sweep, two schedulers enqueueing each due source once. On a real
redis-server or rabbitmq-server, the archive on SQLite and PostgreSQL
(tests/brokers.py starts the brokers and processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.brokers import (
    QUEUE_SETTINGS,
    REDIS_SQLITE_RABBITMQ_PG,
    Broker,
    Process,
    RabbitMQHost,
    Redis,
    archive,
    closed_ok,
    outlets,
    runs,
    worker,
)
from tests.conftest import LoopbackSite
from tests.helpers import cli_env, run_cli, wait_for

pytestmark = pytest.mark.e2e


@REDIS_SQLITE_RABBITMQ_PG
def test_two_workers_share_a_sweep_and_crawl_each_source_once(
    site: LoopbackSite, database_url: str, tmp_path: Path, broker: Broker, processes: list[Process]
) -> None:
    names = [f"outlet-{i}" for i in range(4)]
    sources = outlets(site, names)
    env = cli_env(database_url, sources, tmp_path, broker_url=broker.url, **QUEUE_SETTINGS)
    workers = [worker(processes, env, tmp_path, f"w{i}@test") for i in (1, 2)]

    result = run_cli(
        ["crawl", "--all", "--queue"],
        database_url,
        sources,
        tmp_path,
        broker_url=broker.url,
        **QUEUE_SETTINGS,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 crawls go on the queue" in result.stderr
    for name in names:  # the usual summary, one line a source
        assert any(
            line.split("│")[1:2] == [f" {name} "] and " ok " in line
            for line in result.stdout.splitlines()
        ), result.stdout
    crawled = runs(database_url)
    assert sorted(name for name, _ in crawled) == names  # each source once
    assert all(run.outcome == "ok" and run.finished_at is not None for _, run in crawled)
    # A crawl's row is closed by its crawl process, a moment before its worker logs it.
    wait_for(
        lambda: sum(len(w.events("crawl.end")) for w in workers) == len(names),
        30,
        "each crawl's crawl.end",
    )
    by_worker = [{str(e["source"]) for e in w.events("crawl.end")} for w in workers]
    assert by_worker[0] | by_worker[1] == set(names)
    assert not by_worker[0] & by_worker[1]
    assert by_worker[0], "the second worker took every crawl"
    assert by_worker[1], "the first worker took every crawl"
    assert len(archive(database_url)) == 2 * len(names)  # every page stored once

    # The container's health check: one line, and its exit code.
    def check() -> tuple[int, str]:
        done = run_cli(
            ["worker", "--check", "--name", "w1@test"],
            database_url,
            sources,
            tmp_path,
            broker_url=broker.url,
            **QUEUE_SETTINGS,
        )
        return done.returncode, done.stdout

    assert check() == (0, "worker w1@test answers\n")
    workers[0].stop()
    assert check() == (1, "worker w1@test does not answer\n")

    # Crawls of 45 s fit in RabbitMQ's default consumer_timeout (30 min); the
    # default crawl timeout (30 min, +10 s to stop) does not, and a worker on
    # RabbitMQ says so when it starts. Redis has no such limit.
    assert not workers[1].events("worker.consumer_timeout")
    defaults = cli_env(database_url, sources, tmp_path, broker_url=broker.url)
    cautions = worker(processes, defaults, tmp_path, "w3@test").events("worker.consumer_timeout")
    if isinstance(broker, RabbitMQHost):
        assert [c["level"] for c in cautions] == ["warning"]
        assert "may hold its task 1810 s" in str(cautions[0]["note"])
        assert "consumer_timeout = 1870000" in str(cautions[0]["note"])
    else:
        assert cautions == []


def test_two_schedulers_enqueue_each_due_source_once(
    site: LoopbackSite, database_url: str, tmp_path: Path, redis: Redis, processes: list[Process]
) -> None:
    names = [f"outlet-{i}" for i in range(3)]
    sources = outlets(site, names)
    env = cli_env(database_url, sources, tmp_path, broker_url=redis.url, **QUEUE_SETTINGS)
    schedulers = [Process(["schedule"], env, tmp_path / f"schedule-{i}.log") for i in (1, 2)]
    processes.extend(schedulers)
    worker(processes, env, tmp_path, "w@test", ready=False)

    wait_for(lambda: closed_ok(database_url, names), 180, "every source to be crawled")
    # Several more looks for due sources, by both schedulers.
    [leader] = [s for s in schedulers if s.events("schedule.leading")]
    [follower] = [s for s in schedulers if s is not leader]
    assert follower.events("schedule.standby")
    # The leader stops; the other takes over and looks for due sources at once.
    leader.stop()
    wait_for(lambda: bool(follower.events("schedule.leading")), 30, "the other to lead")
    follower.stop()

    assert sorted(name for name, _ in runs(database_url)) == names
    enqueued = [n for s in schedulers for e in s.events("crawl.enqueued") for n in e["sources"]]  # type: ignore[attr-defined]
    assert sorted(enqueued) == names  # each due source once, by the leader
