"""Alerts on both databases, delivered over real HTTP to a loopback webhook (apprise json://)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Alert, Article, CrawlRun, SourceRow, StoryCluster
from db.repository.runs import ensure_source
from db.types import utcnow
from deportwatch.config.errors import ConfigError
from deportwatch.config.sources import Source
from service.alerts import (
    alert_targets,
    queue_health_alerts,
    queue_story_alerts,
    send_alerts,
)
from tests.conftest import WebhookReceiver
from tests.test_e2e import closed_port

MAX_AGE = timedelta(hours=72)


class Archive:
    """Rows as crawls leave them: sources, runs, clusters, flagged and unflagged articles."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.count = 0

    def source(self, name: str) -> SourceRow:
        return ensure_source(self.session, name, "feed")

    def run(self, source: SourceRow, minutes_ago: float = 10, outcome: str = "ok") -> CrawlRun:
        now = utcnow()
        run = CrawlRun(
            source_id=source.id,
            started_at=now - timedelta(minutes=minutes_ago),
            finished_at=now - timedelta(minutes=minutes_ago) + timedelta(minutes=1),
            outcome=outcome,
            pages=1,
            articles_new=0,
            articles_updated=0,
            articles_unchanged=0,
            errors=0,
        )
        self.session.add(run)
        self.session.flush()
        return run

    def story(self) -> StoryCluster:
        cluster = StoryCluster(first_seen_at=utcnow())
        self.session.add(cluster)
        self.session.flush()
        return cluster

    def article(
        self,
        source: SourceRow,
        cluster: StoryCluster,
        title: str,
        *,
        run: CrawlRun | None = None,
        flagged_before: CrawlRun | None = None,
        first_seen_days_ago: float = 0,
    ) -> Article:
        """Flagged during ``run``, or before ``flagged_before`` began, or not at all."""
        self.count += 1
        now = utcnow()
        flagged_at = None
        if run is not None:
            flagged_at = run.started_at + timedelta(seconds=30)
        elif flagged_before is not None:
            flagged_at = flagged_before.started_at - timedelta(hours=1)
        article = Article(
            source_id=source.id,
            url=f"https://{source.name}.example/{self.count}",
            canonical_url=f"https://{source.name}.example/{self.count}",
            title=title,
            text=f"{title}. Body text.",
            content_hash=f"{self.count:064d}",
            first_seen_at=now - timedelta(days=first_seen_days_ago),
            last_seen_at=now,
            flagged=flagged_at is not None,
            flagged_at=flagged_at,
            flag_categories="deportation,children" if flagged_at else None,
            cluster_id=cluster.id,
        )
        self.session.add(article)
        self.session.flush()
        return article


@pytest.fixture
def archive(session: Session) -> Archive:
    return Archive(session)


def alerts(session: Session) -> list[Alert]:
    return list(session.scalars(select(Alert).order_by(Alert.id)))


def test_a_story_flagged_in_a_run_is_announced_once_with_all_its_outlets(
    archive: Archive, session: Session, receiver: WebhookReceiver
) -> None:
    ki, nv = archive.source("kyiv-independent"), archive.source("nv-en")
    run = archive.run(ki)
    story = archive.story()
    archive.article(ki, story, "Russia deported 46 children from Kherson", run=run)
    archive.article(nv, story, "Russia deported 46 children from Kherson (NV)")  # a copy
    archive.article(ki, archive.story(), "Power restored in Kharkiv")  # not flagged

    assert queue_story_alerts(session, MAX_AGE) == 1
    targets = alert_targets(receiver.url)
    assert send_alerts(session, targets, MAX_AGE) == 1
    [message] = receiver.messages
    assert message["title"] == "deportwatch: new report — Russia deported 46 children from Kherson"
    body = str(message["message"])
    assert "Sources: kyiv-independent, nv-en" in body
    assert "Categories: children, deportation" in body
    assert "https://kyiv-independent.example/1" in body
    assert "Kharkiv" not in body

    # Another run that flags nothing new, and sending again: nothing more.
    archive.run(ki, minutes_ago=2)
    assert queue_story_alerts(session, MAX_AGE) == 0
    assert send_alerts(session, targets, MAX_AGE) == 0
    assert len(receiver.messages) == 1


def test_a_story_flagged_before_the_run_is_not_announced_again(
    archive: Archive, session: Session, receiver: WebhookReceiver
) -> None:
    ki, nv = archive.source("kyiv-independent"), archive.source("nv-en")
    run = archive.run(nv)
    story = archive.story()
    archive.article(ki, story, "Deported children returned", flagged_before=run)
    archive.article(nv, story, "Deported children returned (copy)", run=run)

    assert queue_story_alerts(session, MAX_AGE) == 0
    assert send_alerts(session, alert_targets(receiver.url), MAX_AGE) == 0
    assert receiver.messages == []


def test_a_story_is_announced_once_whatever_its_languages(
    archive: Archive, session: Session, receiver: WebhookReceiver
) -> None:
    uk, en = archive.source("ukrinform-ua"), archive.source("ukrinform-en")
    uk_story, en_story = archive.story(), archive.story()
    # The English story is the Ukrainian one's language version.
    uk_story.language_group_id = en_story.language_group_id = uk_story.id
    uk_run, en_run = archive.run(uk, minutes_ago=20), archive.run(en, minutes_ago=10)
    archive.article(uk, uk_story, "Україна повернула 23 дітей", run=uk_run).language = "uk"
    archive.article(en, en_story, "Ukraine brought back 23 children", run=en_run).language = "en"
    other = archive.article(en, archive.story(), "Russia deported 11 children", run=en_run)
    session.flush()

    assert queue_story_alerts(session, MAX_AGE) == 2
    assert [a.key for a in alerts(session)] == [f"story:{uk_story.id}", f"story:{other.cluster_id}"]
    assert send_alerts(session, alert_targets(receiver.url), MAX_AGE) == 1
    [message] = receiver.messages
    body = str(message["message"])
    assert body.count("Ukraine brought back 23 children") == 0  # the later version adds no entry
    assert "Sources: ukrinform-en, ukrinform-ua" in body
    assert "Languages: en, uk" in body


def test_many_new_stories_are_one_message(
    archive: Archive, session: Session, receiver: WebhookReceiver
) -> None:
    ki = archive.source("kyiv-independent")
    run = archive.run(ki)
    titles = [f"Report {n} on deported children" for n in range(3)]
    for title in titles:
        archive.article(ki, archive.story(), title, run=run)

    assert queue_story_alerts(session, MAX_AGE) == 3
    assert send_alerts(session, alert_targets(receiver.url), MAX_AGE) == 1
    [message] = receiver.messages
    assert message["title"] == "deportwatch: 3 new deportation reports"
    assert all(str(message["message"]).count(title) == 1 for title in titles)


def test_history_and_old_articles_are_never_announced(archive: Archive, session: Session) -> None:
    ki = archive.source("kyiv-independent")
    history = archive.run(ki, minutes_ago=60)
    history.alerts_checked_at = history.finished_at  # a run from before alerts existed
    archive.article(ki, archive.story(), "An old flagged report", run=history)
    run = archive.run(ki)
    # Flagged now, but first seen long ago (a re-flag of the archive): not news.
    archive.article(ki, archive.story(), "Re-flagged old report", run=run, first_seen_days_ago=30)

    assert queue_story_alerts(session, MAX_AGE) == 0
    assert alerts(session) == []


def test_a_failed_delivery_is_retried_and_never_doubled(
    archive: Archive, session: Session, receiver: WebhookReceiver
) -> None:
    ki = archive.source("kyiv-independent")
    archive.article(ki, archive.story(), "Children taken to Crimea camp", run=archive.run(ki))
    queue_story_alerts(session, MAX_AGE)
    down = f"json://127.0.0.1:{closed_port()}/hook"
    targets = alert_targets(f"{receiver.url}, {down}")
    assert len(targets) == 2

    receiver.statuses = [500]  # the webhook answers an error once
    assert send_alerts(session, targets, MAX_AGE) == 0
    assert receiver.messages == []
    assert send_alerts(session, targets, MAX_AGE) == 1  # retried: delivered
    assert send_alerts(session, targets, MAX_AGE) == 0  # never twice
    assert len(receiver.messages) == 1
    # The target that is down still has it pending, until it is older than the cut-off.
    assert send_alerts(session, targets[1:], MAX_AGE, now=utcnow() + timedelta(days=4)) == 0


def test_health_changes_are_announced_when_they_happen(
    archive: Archive, session: Session, receiver: WebhookReceiver
) -> None:
    config = Source.model_validate(
        {
            "name": "nv-en",
            "kind": "feed",
            "start_urls": ["https://english.nv.ua/rss/all_english.xml"],
            "languages": ["en"],
        }
    )
    nv = archive.source("nv-en")
    archive.article(nv, archive.story(), "Earlier article")
    archive.run(nv, minutes_ago=50)
    assert queue_health_alerts(session, (config,)) == 0  # first look, healthy: quiet
    for minutes in (40, 30, 20):
        archive.run(nv, minutes_ago=minutes, outcome="failed")
    assert queue_health_alerts(session, (config,)) == 1
    assert queue_health_alerts(session, (config,)) == 0  # announced once
    archive.run(nv, minutes_ago=5)
    archive.article(nv, archive.story(), "New article")
    assert queue_health_alerts(session, (config,)) == 1

    assert send_alerts(session, alert_targets(receiver.url), MAX_AGE) == 1
    [message] = receiver.messages
    assert message["title"] == "deportwatch: 2 sources changed health"
    body = str(message["message"]).splitlines()
    assert body == [
        "nv-en is unhealthy: 3 crawls in a row failed",
        "nv-en recovered: healthy again",
    ]
    assert session.scalar(select(func.count()).select_from(Alert)) == 2


def test_alert_targets_are_checked_and_their_secrets_masked() -> None:
    [mail] = alert_targets("mailto://user:s3cret-pass@example.com")
    assert "s3cret-pass" not in mail.label
    assert len(alert_targets("json://127.0.0.1/a json://127.0.0.1/b")) == 2
    assert alert_targets("") == []
    with pytest.raises(ConfigError, match="'nosuch://…' is not a URL apprise can send to"):
        alert_targets("json://127.0.0.1/a, nosuch://token@x")
