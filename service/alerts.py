"""Alerts: newly flagged stories and changes in source health, sent with apprise.

Two steps, both idempotent, so a service that dies between them loses nothing
and sends nothing twice:

1. *queue*: every finished crawl run not yet checked is read once. A story
   (a cluster of copies) gets an alert when the run flagged one of its
   articles and no article of it had been flagged before the run began. The
   alert's key ``story:<cluster id>`` is unique, so however many runs and
   processes see the story, it is announced once. Health changes are queued
   the same way, compared with the state last announced.
2. *send*: each target receives the alerts it has not received yet, batched
   into one message per kind. A target that fails keeps its alerts pending and
   is tried again after the next crawl; a failure never fails a crawl.

Runs from before the alerts table existed, and stories first seen longer ago
than ``alert_max_age_hours`` (a re-flag of old articles), are never announced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import apprise
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Alert, AlertDelivery, Article, CrawlRun, FlagMatch, SourceRow
from db.repository.articles import story_of
from db.types import utcnow
from deportwatch.archive.health import archive_health
from deportwatch.archive.show import category_list
from deportwatch.config.errors import ConfigError
from deportwatch.config.sources import Source
from service.events import log_event

STORIES_PER_MESSAGE = 20  # a batch lists this many stories, then says how many more


@dataclass(frozen=True)
class Target:
    """One apprise URL. ``id`` is a hash: the URL itself may hold a token."""

    id: str
    label: str  # the URL with its secrets masked, for logs
    plugin: Any  # an apprise plugin instance

    def send(self, title: str, body: str) -> bool:
        try:
            return bool(self.plugin.notify(body=body, title=title))
        except Exception:  # a plugin's bug must not take the service down
            logging.getLogger(__name__).exception("alert target %s raised", self.label)
            return False


def alert_targets(urls: str) -> list[Target]:
    """The targets named in DEPORTWATCH_ALERT_URLS; an unknown URL is a ConfigError."""
    targets = []
    for url in (u for u in re.split(r"[\s,]+", urls) if u):
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            scheme = url.split("://", 1)[0]
            raise ConfigError(
                f"setting DEPORTWATCH_ALERT_URLS: '{scheme}://…' is not a URL apprise can "
                "send to (see https://github.com/caronc/apprise/wiki)"
            )
        digest = hashlib.sha256(url.encode()).hexdigest()[:32]
        label = str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]
        targets.append(Target(digest, label, plugin))
    return targets


def _add_alert(session: Session, kind: str, key: str, payload: dict[str, Any]) -> bool:
    """Insert an alert unless its key exists (another process may insert it at once)."""
    if session.scalar(select(Alert.id).where(Alert.key == key)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Alert(kind=kind, key=key, payload=json.dumps(payload, ensure_ascii=False)))
    except IntegrityError:
        return False
    return True


def _story_payload(session: Session, article: Article, clusters: list[int]) -> dict[str, Any]:
    members = (
        list(session.scalars(select(Article).where(Article.cluster_id.in_(clusters))))
        if clusters
        else [article]
    )
    sources = sorted({m.source.name for m in members})
    categories = sorted({c for m in members for c in category_list(m.flagged, m.flag_categories)})
    snippet = session.scalar(
        select(FlagMatch.snippet)
        .where(FlagMatch.article_id == article.id)
        .order_by(FlagMatch.weight.desc(), FlagMatch.id)
        .limit(1)
    )
    published = article.published_at or article.first_seen_at
    return {
        "article_id": article.id,
        "cluster_id": article.cluster_id,
        "title": article.title,
        "url": article.url,
        "published_at": published.isoformat(),
        "sources": sources,
        "languages": sorted({m.language for m in members if m.language}),
        "categories": categories,
        "snippet": snippet,
    }


def queue_story_alerts(session: Session, max_age: timedelta, now: datetime | None = None) -> int:
    """Queue an alert for every story first flagged by a run not yet checked."""
    now = now or utcnow()
    queued = 0
    runs = session.scalars(
        select(CrawlRun)
        .where(CrawlRun.finished_at.is_not(None), CrawlRun.alerts_checked_at.is_(None))
        .order_by(CrawlRun.id)
    ).all()
    for run in runs:
        assert run.finished_at is not None
        flagged = session.scalars(
            select(Article)
            .where(
                Article.source_id == run.source_id,
                Article.flagged,
                Article.flagged_at >= run.started_at,
                Article.flagged_at <= run.finished_at,
                Article.first_seen_at >= now - max_age,
            )
            .order_by(Article.flagged_at, Article.id)
        ).all()
        for article in flagged:
            # One story whatever its languages: its language versions share the key.
            story, clusters = (
                story_of(session, article.cluster_id)
                if article.cluster_id is not None
                else (None, [])
            )
            if clusters:
                flagged_before = session.scalar(
                    select(
                        exists().where(
                            Article.cluster_id.in_(clusters),
                            Article.flagged,
                            Article.flagged_at < run.started_at,
                        )
                    )
                )
                if flagged_before:
                    continue
            key = f"story:{story or f'article-{article.id}'}"
            payload = _story_payload(session, article, clusters)
            queued += _add_alert(session, "story", key, payload)
        run.alerts_checked_at = now
    return queued


def queue_health_alerts(
    session: Session, sources: tuple[Source, ...], now: datetime | None = None
) -> int:
    """Queue an alert for each enabled source whose health changed since last announced."""
    now = now or utcnow()
    queued = 0
    for health in archive_health(session, tuple(s for s in sources if s.enabled), now):
        if health.state not in ("healthy", "unhealthy"):
            continue  # pending: never crawled yet
        row = session.scalar(select(SourceRow).where(SourceRow.name == health.name))
        if row is None or row.health_state == health.state:
            continue
        previous, row.health_state = row.health_state, health.state
        if previous is None and health.state == "healthy":
            continue  # first look at a source that is fine: nothing to announce
        payload = {
            "source": health.name,
            "state": health.state,
            "previous": previous,
            "problems": health.problems,
            "last_outcome": health.last_outcome,
        }
        key = f"health:{health.name}:{health.state}:{now.isoformat()}"
        queued += _add_alert(session, "health", key, payload)
        log_event("health.change", source=health.name, state=health.state, previous=previous)
    return queued


def _story_block(story: dict[str, Any]) -> str:
    lines = [
        story["title"],
        f"Sources: {', '.join(story['sources'])}",
        *(
            [f"Languages: {', '.join(story['languages'])}"]
            if len(story.get("languages", [])) > 1
            else []
        ),
        f"Categories: {', '.join(story['categories']) or '-'}",
        f"Published: {story['published_at'][:16].replace('T', ' ')} UTC",
    ]
    if story.get("snippet"):
        lines.append(f"“{story['snippet']}”")
    lines.append(story["url"])
    lines.append(f"Archive: deportwatch show {story['article_id']}")
    return "\n".join(lines)


def render_stories(stories: list[dict[str, Any]]) -> tuple[str, str]:
    """The title and body of one message announcing ``stories``."""
    if len(stories) == 1:
        return f"deportwatch: new report — {stories[0]['title'][:120]}", _story_block(stories[0])
    shown = stories[:STORIES_PER_MESSAGE]
    body = "\n\n".join(_story_block(s) for s in shown)
    if len(stories) > len(shown):
        body += f"\n\n… and {len(stories) - len(shown)} more in the archive."
    return f"deportwatch: {len(stories)} new deportation reports", body


def render_health(changes: list[dict[str, Any]]) -> tuple[str, str]:
    def line(change: dict[str, Any]) -> str:
        if change["state"] == "healthy":
            return f"{change['source']} recovered: healthy again"
        problems = "; ".join(change["problems"]) or f"last crawl {change['last_outcome']}"
        return f"{change['source']} is unhealthy: {problems}"

    if len(changes) == 1:
        change = changes[0]
        verb = "recovered" if change["state"] == "healthy" else "is unhealthy"
        return f"deportwatch: source {change['source']} {verb}", line(change)
    return f"deportwatch: {len(changes)} sources changed health", "\n".join(map(line, changes))


def send_alerts(
    session: Session, targets: list[Target], max_age: timedelta, now: datetime | None = None
) -> int:
    """Send each target what it has not received; returns the messages delivered."""
    now = now or utcnow()
    delivered = 0
    for target in targets:
        received = exists().where(
            AlertDelivery.alert_id == Alert.id, AlertDelivery.target == target.id
        )
        pending = session.scalars(
            select(Alert).where(Alert.created_at >= now - max_age, ~received).order_by(Alert.id)
        ).all()
        by_kind: dict[str, list[Alert]] = defaultdict(list)
        for alert in pending:
            by_kind[alert.kind].append(alert)
        for kind, alerts in by_kind.items():
            payloads = [json.loads(a.payload) for a in alerts]
            title, body = (render_stories if kind == "story" else render_health)(payloads)
            if not target.send(title, body):
                log_event(
                    "alert.failed",
                    logging.WARNING,
                    target=target.label,
                    kind=kind,
                    alerts=len(alerts),
                    retry="after the next crawl",
                )
                continue
            session.add_all(
                AlertDelivery(alert_id=a.id, target=target.id, sent_at=now) for a in alerts
            )
            session.commit()
            delivered += 1
            log_event("alert.sent", target=target.label, kind=kind, alerts=len(alerts))
    return delivered
