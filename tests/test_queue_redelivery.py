"""A crawl the queue loses and gets back: a worker killed with ``kill -9``
mid-crawl, the broker restarted mid-sweep. Apart from tests/test_queue.py
because these wait on the broker (Redis delivers a task again only after its
visibility timeout): as a file of their own, they start on another test worker
while the sharing tests run.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from db.repository.runs import process_alive
from tests.brokers import (
    PAGES,
    REDELIVERY_SETTINGS,
    REDIS_PG_RABBITMQ_SQLITE,
    Broker,
    Process,
    archive,
    closed_ok,
    outlets,
    runs,
    worker,
)
from tests.conftest import LoopbackSite
from tests.helpers import cli_env, run_cli, wait_for

pytestmark = pytest.mark.e2e


@REDIS_PG_RABBITMQ_SQLITE
def test_a_crawl_killed_with_its_worker_is_finished_by_another(
    site: LoopbackSite, database_url: str, tmp_path: Path, broker: Broker, processes: list[Process]
) -> None:
    sources = outlets(site, ["slow"])
    slow_page = f"/slow/news/{PAGES[1]}/"
    site.delays[slow_page] = 30  # the crawl hangs on its second page
    env = cli_env(database_url, sources, tmp_path, broker_url=broker.url, **REDELIVERY_SETTINGS)
    first = worker(processes, env, tmp_path, "first@test")
    waiting = Process(["crawl", "slow", "--queue"], env, tmp_path / "crawl.log")
    processes.append(waiting)
    wait_for(lambda: bool(site.times(slow_page)), 30, "the crawl to reach its slow page")

    [started] = first.events("crawl.start")
    shown = run_cli(["status"], database_url, sources, tmp_path, broker_url=broker.url)
    assert f"slow: crawling on {socket.gethostname()}, pid {started['pid']}, since" in shown.stdout
    assert "queue: 0 crawls wait for a worker" in shown.stdout
    first.kill9()  # the worker and its pool; the kernel ends its crawl (PR_SET_PDEATHSIG)
    wait_for(
        lambda: not process_alive(int(str(started["pid"]))), 10, "the killed worker's crawl to end"
    )
    site.delays.pop(slow_page)
    second = worker(processes, env, tmp_path, "second@test", ready=False)
    # Meanwhile (Redis delivers the task again only after its visibility timeout),
    # the same crawl without a kill, into an archive of its own.
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    (tmp_path / "ref").mkdir()
    done = run_cli(["crawl", "slow"], reference, sources, tmp_path / "ref")
    assert done.returncode == 0, done.stdout + done.stderr
    assert waiting.process.wait(timeout=180) == 0, waiting.text()

    outcomes = [(run.outcome, run.error_text or "") for _, run in runs(database_url)]
    assert len(outcomes) == 2
    assert outcomes[0][0] == "crashed"
    assert "lost with its worker" in outcomes[0][1]
    assert outcomes[1][0] == "ok"
    wait_for(lambda: bool(second.events("crawl.end")), 10, "the second worker's crawl.end")
    assert [str(e["source"]) for e in second.events("crawl.end")] == ["slow"]
    assert not first.events("crawl.end")
    assert archive(database_url) == archive(reference)  # as if there had been no kill
    assert len(archive(reference)) == 2


@REDIS_PG_RABBITMQ_SQLITE
def test_a_broker_restart_mid_sweep_loses_no_due_crawl(
    site: LoopbackSite, database_url: str, tmp_path: Path, broker: Broker, processes: list[Process]
) -> None:
    names = [f"outlet-{i}" for i in range(3)]  # one crawled, two waiting, at the restart
    sources = outlets(site, names)
    for name in names:
        site.delays[f"/{name}/feed.xml"] = 1.0
    env = cli_env(database_url, sources, tmp_path, broker_url=broker.url, **REDELIVERY_SETTINGS)
    scheduler = Process(["schedule"], env, tmp_path / "schedule.log")
    processes.append(scheduler)
    worker(processes, env, tmp_path, "w@test", ready=False)
    wait_for(lambda: bool(scheduler.events("crawl.enqueued")), 30, "the sweep to be enqueued")
    wait_for(lambda: len(site.times(f"/{names[0]}/feed.xml")) > 0, 30, "the first crawl")

    # Redis keeps nothing on disk: the tasks still queued are gone with it, and the
    # scheduler sends them again. RabbitMQ keeps its durable queue and puts the
    # taken task back; the running crawl goes on and the task's second delivery
    # is skipped, as the source was crawled since it was sent.
    broker.restart()

    wait_for(lambda: closed_ok(database_url, names), 240, "every source crawled after the restart")
    crawled = runs(database_url)
    assert sorted(name for name, _ in crawled) == names  # once each, none lost
    assert all(run.outcome == "ok" for _, run in crawled)
    assert len(archive(database_url)) == 2 * len(names)
