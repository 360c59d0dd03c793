"""The background service: schedules, child crawls, timeouts, signals, reloads, --once."""

from __future__ import annotations

import itertools
import json
import multiprocessing.forkserver
import signal
import subprocess
import sys
import threading
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import Article, CrawlRun, SourceRow
from db.repository.runs import ensure_source, process_alive, start_run
from deportwatch.config.settings import Settings
from deportwatch.config.sources import Source, parse_sources
from scheduler import Service, make_trigger, next_due
from service.child import ChildCrawl
from service.launch import StartMode
from tests.conftest import REPO, WEB, LoopbackSite, WebhookReceiver
from tests.helpers import DEPORTWATCH, cli_env, feed, run_cli, wait_for

KI = WEB / "kyivindependent.com"
NRC = "national-resistance-center-russia-moves-deported-ukrainians-to-55-distant-regions"
KHARKIV = "power-restored-to-most-of-kharkiv-after-overnight-strike-on-substation"
NRC_TITLE = "NRC: deported Ukrainians moved to distant regions"


NRC_SLUG = "national-resistance-center-russia-moves-deported-ukrainians-to-55-distant-regions"


def write_outlet(site: LoopbackSite, prefix: str) -> str:
    """An outlet at /<prefix>/: its feed lists a flag-worthy page and an unrelated one."""
    for slug in (NRC, KHARKIV):
        site.write(f"/{prefix}/news/{slug}/", (KI / slug / "index.html").read_bytes())
    entries = [
        (f"/{prefix}/news/{NRC}/", NRC_TITLE, "Fri, 07 Apr 2023 15:37:50 GMT"),
        (f"/{prefix}/news/{KHARKIV}/", "Kharkiv power", "Fri, 07 Apr 2023 12:10:04 GMT"),
    ]
    site.write(f"/{prefix}/feed.xml", feed(site.base, entries))
    return f"{site.base}/{prefix}/feed.xml"


def entry(name: str, url: str, schedule: str, extra: str = "") -> str:
    return (
        f'[[source]]\nname = "{name}"\nkind = "feed"\nstart_urls = ["{url}"]\n'
        f'languages = ["en"]\nschedule = {{ {schedule} }}\n{extra}\n'
    )


def finished_runs(database_url: str) -> list[tuple[str, CrawlRun]]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        rows = session.execute(
            select(SourceRow.name, CrawlRun)
            .join(CrawlRun.source)
            .where(CrawlRun.outcome != "running")
            .order_by(CrawlRun.id)
        ).all()
    engine.dispose()
    return [(name, run) for name, run in rows]


def of(runs: list[tuple[str, CrawlRun]], source: str) -> list[CrawlRun]:
    return [run for name, run in runs if name == source]


class ServiceProcess:
    """``deportwatch schedule`` in a subprocess, its JSON log lines collected as they come."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [DEPORTWATCH, "schedule"],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        self.lines.extend(iter(self.process.stdout.readline, ""))

    def close(self) -> str:
        """Close the pipes; returns what the service wrote on stderr."""
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        errors = self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        return errors

    def events(self, name: str | None = None) -> list[dict[str, object]]:
        records = [json.loads(line) for line in list(self.lines)]
        return [r for r in records if name is None or r["event"] == name]


@pytest.mark.e2e
def test_the_service_crawls_on_schedule_survives_faults_reloads_and_stops_cleanly(
    site: LoopbackSite, database_url: str, tmp_path: Path
) -> None:
    good, slow = write_outlet(site, "good"), write_outlet(site, "slow")
    hung = write_outlet(site, "hung")
    site.delays["/slow/feed.xml"] = 3
    site.delays["/hung/feed.xml"] = 600
    sources = tmp_path / "sources.toml"
    config = (
        entry("good", good, 'every = "2s"')
        + entry("slow", slow, 'every = "1s"')
        + entry("broken", f"{site.base}/missing/feed.xml", 'every = "2s"')
        + entry("hung", hung, 'every = "1h"', 'timeout = "12s"')
    )
    sources.write_text(config)
    env = cli_env(
        database_url,
        sources,
        tmp_path,
        max_concurrent_crawls="3",
        shutdown_grace="2",
        schedule_jitter="0",
    )
    service = ServiceProcess(env, tmp_path)
    try:
        # The service migrates the archive before it schedules anything.
        wait_for(lambda: bool(service.events("service.start")), 60, "the service to start")
        wait_for(
            lambda: (
                len(of(runs := finished_runs(database_url), "good")) >= 2
                and len(of(runs, "slow")) >= 2
                and len(of(runs, "broken")) >= 1
                and len(of(runs, "hung")) >= 1
            ),
            timeout=180,
            what="every source to be crawled",
        )
        # A broken file on SIGHUP: logged, and the running configuration goes on.
        sources.write_text('[[source]]\nname = "late"\nkind = "nonsense"\n')
        service.process.send_signal(signal.SIGHUP)
        wait_for(lambda: bool(service.events("config.error")), 30, "the config error")
        before = len(of(finished_runs(database_url), "good"))
        wait_for(
            lambda: len(of(finished_runs(database_url), "good")) > before,
            timeout=90,
            what="crawls to go on after a broken reload",
        )
        # A valid file on SIGHUP: a new source is crawled.
        late = write_outlet(site, "late")
        sources.write_text(config + entry("late", late, 'every = "1h"'))
        service.process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: len(of(finished_runs(database_url), "late")) == 1,
            timeout=90,
            what="the source added by a reload to be crawled",
        )
    finally:
        stop_asked = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        code = service.process.wait(timeout=60)
        stopped_in = time.monotonic() - stop_asked
        service.reader.join(timeout=5)
        errors = service.close()

    # SIGTERM: exit 0 within the grace period plus the children's time to stop.
    assert code == 0, errors
    assert stopped_in < 2 + 10 + 10
    pids = [int(str(e["pid"])) for e in service.events("crawl.start")]
    assert pids
    assert not [pid for pid in pids if process_alive(pid)]
    assert service.events("service.stop")

    runs = finished_runs(database_url)
    assert all(run.outcome != "running" for _, run in runs)
    # A failing source does not stop the others (a last run may be cut by the stop).
    assert {r.outcome for r in of(runs, "broken")} - {"interrupted"} == {"failed"}
    good_runs = of(runs, "good")
    # ok, or partial when a page timed out on a loaded machine: the crawl itself went on.
    assert all(r.outcome in ("ok", "partial") for r in good_runs[:2]), [
        (r.outcome, r.error_text) for r in good_runs
    ]
    # A slow source never overlaps itself.
    slow_runs = sorted(of(runs, "slow"), key=lambda r: r.started_at)
    for earlier, later in itertools.pairwise(slow_runs):
        assert earlier.finished_at is not None
        assert later.started_at >= earlier.finished_at
    # A hung crawl is stopped at its timeout and recorded as timed out.
    hung_run = of(runs, "hung")[0]
    assert hung_run.outcome == "timeout"
    assert "timeout (12 s)" in (hung_run.error_text or "")
    assert hung_run.finished_at is not None
    assert 12 <= (hung_run.finished_at - hung_run.started_at).total_seconds() < 12 + 10 + 10
    # Never more crawls at once than the limit.
    edges = sorted(
        [(r.started_at, 1) for _, r in runs] + [(r.finished_at, -1) for _, r in runs],
        key=lambda edge: (edge[0], edge[1]),
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak <= 3
    # One structured line per crawl start and end.
    ends = service.events("crawl.end")
    assert sorted(int(str(e["run_id"])) for e in ends) == sorted(r.id for _, r in runs)
    assert len(service.events("crawl.start")) == len(runs)
    for end in ends:
        assert {"source", "outcome", "duration_s", "new", "pages", "errors"} <= set(end)
    # Each of the outlet's two articles is new exactly once, however many crawls ran.
    assert sum(int(str(e["new"])) for e in ends if e["source"] == "good") == 2


@pytest.mark.e2e
def test_once_runs_due_sources_alerts_once_and_exits(
    site: LoopbackSite, database_url: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    sources = tmp_path / "sources.toml"
    good = write_outlet(site, "good")
    broken = entry("broken", f"{site.base}/missing/feed.xml", 'every = "1h"')
    sources.write_text(entry("good", good, 'every = "1h"') + broken)
    settings = {"alert_urls": receiver.url}

    first = run_cli(["schedule", "--once"], database_url, sources, tmp_path, **settings)
    assert first.returncode == 1, first.stderr  # one source failed
    events = [json.loads(line) for line in first.stdout.splitlines()]
    assert sorted(e["source"] for e in events if e["event"] == "crawl.end") == ["broken", "good"]
    assert [(n, r.outcome) for n, r in finished_runs(database_url)] in (
        [("good", "ok"), ("broken", "failed")],
        [("broken", "failed"), ("good", "ok")],
    )
    # The flagged story is announced once, with its title, source and link.
    assert len(receiver.messages) == 1
    message = receiver.messages[0]
    assert str(message["title"]).startswith("deportwatch: new report")
    assert "Sources: good" in str(message["message"])
    assert f"/good/news/{NRC}/" in str(message["message"])
    assert "Kharkiv" not in str(message["message"])

    # Nothing is due an hour later than now: nothing runs, nothing is sent.
    second = run_cli(["schedule", "--once"], database_url, sources, tmp_path, **settings)
    assert second.returncode == 0, second.stderr
    assert len(finished_runs(database_url)) == 2
    # A re-crawl of the same story does not announce it again.
    sources.write_text(entry("good", good, 'every = "1s"') + broken)
    third = run_cli(["schedule", "--once"], database_url, sources, tmp_path, **settings)
    assert third.returncode == 0, third.stderr
    assert [r.outcome for r in of(finished_runs(database_url), "good")] == ["ok", "ok"]
    assert len(receiver.messages) == 1


def test_schedule_with_a_bad_alert_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(entry("good", "http://127.0.0.1:9/feed.xml", 'every = "1h"'))
    url = f"sqlite:///{tmp_path / 'a.db'}"
    result = run_cli(["schedule", "--once"], url, sources, tmp_path, alert_urls="nosuchscheme://x")
    assert result.returncode == 2
    assert "DEPORTWATCH_ALERT_URLS" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# -- scheduling without crawling ------------------------------------------------

SETTINGS = Settings(schedule_jitter=120, default_interval="2h")


def sources_of(text: str) -> tuple[Source, ...]:
    return parse_sources(tomllib.loads(text), "test").sources


def test_triggers_follow_the_schedule_with_bounded_jitter() -> None:
    every, cron, default = sources_of(
        entry("a", "http://x.test/f", 'every = "30m"')
        + entry("b", "http://x.test/f", 'cron = "*/15 * * * *"')
        + '[[source]]\nname = "c"\nkind = "feed"\nstart_urls = ["http://x.test/f"]\n'
        'languages = ["en"]\n'
    )
    interval = make_trigger(every, SETTINGS)
    assert isinstance(interval, IntervalTrigger)
    assert interval.interval == timedelta(minutes=30)
    assert interval.jitter == 120  # under a tenth of 30 minutes
    assert make_trigger(every, Settings(schedule_jitter=600)).jitter == 180  # capped at a tenth
    assert isinstance(make_trigger(cron, SETTINGS), CronTrigger)
    assert make_trigger(cron, SETTINGS).jitter == 30
    assert make_trigger(default, SETTINGS).interval == timedelta(hours=2)

    last = datetime(2026, 11, 22, 10, 7, tzinfo=UTC)
    assert next_due(every, SETTINGS, None) is None
    assert next_due(every, SETTINGS, last) == last + timedelta(minutes=30)
    assert next_due(cron, SETTINGS, last) == datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
    assert next_due(default, SETTINGS, last) == last + timedelta(hours=2)


def test_jobs_follow_the_sources_file_and_a_broken_reload_keeps_them(
    database_url: str, tmp_path: Path
) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(
        entry("fresh", "http://x.test/a", 'every = "1h"')
        + entry("recent", "http://x.test/b", 'every = "1h"')
        + entry("off", "http://x.test/c", 'every = "1h"', "enabled = false")
    )
    settings = Settings(
        database_url=database_url,
        sources=sources,
        keywords=REPO / "keywords.toml",
        schedule_jitter=0,
    )
    service = Service(settings)
    service.scheduler.start(paused=True)  # jobs as the running service has them, none run
    try:
        with service.sessions.begin() as session:
            start_run(session, ensure_source(session, "recent", "feed").id)
        service.sync_jobs()
        jobs = {job.id: job for job in service.scheduler.get_jobs()}
        assert sorted(jobs) == ["fresh", "recent"]  # a disabled source has no job
        now = datetime.now(UTC)
        # Never crawled: at once. Crawled a moment ago: an interval later.
        assert jobs["fresh"].next_run_time <= now + timedelta(seconds=1)
        assert jobs["recent"].next_run_time > now + timedelta(minutes=59)
        assert jobs["fresh"].max_instances == 1
        assert jobs["fresh"].coalesce is True

        sources.write_text("[[source]]\nname = 'fresh'\n")  # broken
        service.reload()
        assert sorted(job.id for job in service.scheduler.get_jobs()) == ["fresh", "recent"]
        assert service.snapshot.config.get("recent") is not None
        assert "recent" in service.snapshot.copy.read_text()  # children still read the old file

        sources.write_text(
            entry("fresh", "http://x.test/a", 'every = "5m"')
            + entry("new", "http://x.test/d", 'cron = "0 * * * *"')
        )
        service.reload()
        jobs = {job.id: job for job in service.scheduler.get_jobs()}
        assert sorted(jobs) == ["fresh", "new"]
        assert jobs["fresh"].trigger.interval == timedelta(minutes=5)
        assert isinstance(jobs["new"].trigger, CronTrigger)
    finally:
        service.close()


def test_the_forkserver_preloads_libraries_only_without_reactor_or_thread() -> None:
    """What the forkserver imports: no reactor (each crawl installs Scrapy's own),
    no thread (a fork copies none), none of the project's modules (a crawl
    imports them afresh, in its own environment)."""
    probe = (
        "import json, sys, threading\n"
        "from service.launch import PRELOAD, OWN\n"
        "for name in PRELOAD: __import__(name)\n"
        "own = sorted(m for m in sys.modules if m.split('.')[0] in OWN)\n"
        "print(json.dumps({'reactor': 'twisted.internet.reactor' in sys.modules,\n"
        "  'threads': threading.active_count(), 'own': own,\n"
        "  'loaded': [n for n in PRELOAD if n in sys.modules]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    found = json.loads(done.stdout)
    assert found["reactor"] is False
    assert found["threads"] == 1
    assert found["own"] == ["service", "service.launch"]
    from service.launch import PRELOAD  # noqa: PLC0415 - the list the probe imported

    assert found["loaded"] == list(PRELOAD)


@pytest.mark.parametrize("start_mode", ["fork", "command"])
def test_a_child_that_dies_before_crawling_leaves_a_closed_run_saying_why(
    database_url: str, tmp_path: Path, start_mode: StartMode
) -> None:
    """keywords.toml broken while the service runs: the crawl process exits at once."""
    [source] = sources_of(entry("good", "http://127.0.0.1:9/feed.xml", 'every = "1h"'))
    sources = tmp_path / "sources.toml"
    sources.write_text(entry("good", "http://127.0.0.1:9/feed.xml", 'every = "1h"'))
    broken = tmp_path / "keywords.toml"
    broken.write_text("[[concept]\n")
    env = cli_env(database_url, sources, tmp_path) | {"DEPORTWATCH_KEYWORDS": str(broken)}
    engine = make_engine(database_url)
    upgrade(engine)
    try:
        child = ChildCrawl(
            make_sessionmaker(engine), source, timeout=60, env=env, start_mode=start_mode
        )
        result = child.run()
        assert result.outcome == "crashed"
        assert result.exit_code == 2
        assert result.error is not None
        assert "exited with code 2" in result.error
        assert "keywords.toml" in result.error
        [(name, run)] = finished_runs(database_url)
        assert (name, run.outcome, run.error_text) == ("good", "crashed", result.error)
        assert run.finished_at is not None
    finally:
        engine.dispose()


@pytest.mark.parametrize("start_mode", ["fork", "command"])
def test_a_child_that_cannot_start_leaves_a_closed_run_saying_why(
    tmp_path: Path, start_mode: StartMode
) -> None:
    """Its working directory is gone: no crawl, and the run is closed as crashed."""
    [source] = sources_of(entry("good", "http://127.0.0.1:9/feed.xml", 'every = "1h"'))
    sources = tmp_path / "sources.toml"
    sources.write_text(entry("good", "http://127.0.0.1:9/feed.xml", 'every = "1h"'))
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = make_engine(url)
    upgrade(engine)
    try:
        gone = tmp_path / "gone"
        child = ChildCrawl(
            make_sessionmaker(engine),
            source,
            timeout=60,
            env=cli_env(url, sources, tmp_path),
            workdir=gone,
            start_mode=start_mode,
        )
        result = child.run()
        assert result.outcome == "crashed"
        assert result.error is not None
        assert "FileNotFoundError" in result.error
        assert str(gone) in result.error
        [(_, run)] = finished_runs(url)
        assert (run.outcome, run.error_text) == ("crashed", result.error)
    finally:
        engine.dispose()


def test_crawl_refuses_a_run_id_that_is_not_a_running_crawl_of_the_source(
    tmp_path: Path,
) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(entry("good", "http://127.0.0.1:9/feed.xml", 'every = "1h"'))
    url = f"sqlite:///{tmp_path / 'a.db'}"
    result = run_cli(["crawl", "good", "--run-id", "999"], url, sources, tmp_path)
    assert result.returncode == 2
    assert "--run-id 999: no running crawl of 'good'" in result.stderr


def test_the_service_asks_again_for_flagged_articles_on_a_slow_rhythm(
    database_url: str, tmp_path: Path, site: LoopbackSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = WEB / "kyivindependent.com" / NRC_SLUG / "index.html"
    site.write(f"/news/{NRC_SLUG}/", page.read_bytes())
    site.write(
        "/feed.xml",
        feed(site.base, [(f"/news/{NRC_SLUG}/", "Deported", "Fri, 07 Apr 2023 15:37:50 GMT")]),
    )
    sources = tmp_path / "sources.toml"
    sources.write_text(entry("outlet", f"{site.base}/feed.xml", 'every = "1h"'))
    assert run_cli(["crawl", "outlet"], database_url, sources, tmp_path).returncode == 0
    for name, value in cli_env(database_url, sources, tmp_path).items():
        if name.startswith("DEPORTWATCH_"):
            monkeypatch.setenv(name, value)
    settings = Settings(
        database_url=database_url,
        sources=sources,
        keywords=REPO / "keywords.toml",
        verify_interval="6h",
    )
    service = Service(settings)
    service.scheduler.start(paused=True)
    try:
        service.sync_jobs()
        service.schedule_verify()
        service.sync_jobs()  # a reload keeps it: it is not a source's job
        job = service.scheduler.get_job("_verify")
        assert job is not None
        assert job.trigger.interval == timedelta(hours=6)
        (site.root / "site" / "news" / NRC_SLUG / "index.html").unlink()
        service.verify_flagged()
    finally:
        service.close()
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        (article,) = session.scalars(select(Article)).all()
        assert article.flagged
        assert article.source_state == "removed"
        assert article.removed_at is not None
    engine.dispose()


@pytest.mark.e2e
def test_a_forked_process_starts_its_own_forkserver_not_its_parents(
    site: LoopbackSite, tmp_path: Path
) -> None:
    """This test process runs a forkserver (as a Celery worker's parent could); the
    command, forked from it, must crawl through a forkserver of its own: the
    parent's has the parent's environment, and its crawls ended as crashed."""
    multiprocessing.forkserver.ensure_running()
    assert multiprocessing.forkserver._forkserver._forkserver_pid is not None  # type: ignore[attr-defined]
    sources = tmp_path / "sources.toml"
    sources.write_text(entry("good", write_outlet(site, "good"), 'every = "1h"'))
    url = f"sqlite:///{tmp_path / 'a.db'}"
    done = run_cli(["schedule", "--once"], url, sources, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(n, r.outcome) for n, r in finished_runs(url)] == [("good", "ok")]
