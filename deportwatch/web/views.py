"""The data behind the pages and the API: one function per view, the same records for both.

Pages render these records with templates; the API returns them as JSON. Each
function reads only, through the session it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.orm import Session

from db.models import CrawlRun, SourceRow
from db.search import Filters, search
from deportwatch.archive.captures import CaptureMissing, read_capture, ref_from_record, static_html
from deportwatch.archive.export import hit_record
from deportwatch.archive.figures import figure_records
from deportwatch.archive.health import archive_health
from deportwatch.archive.show import (
    article_record,
    iso_time,
    language_version_articles,
    load_article,
    version_diffs,
)
from deportwatch.config.errors import UsageError
from deportwatch.config.settings import Settings
from deportwatch.config.sources import load_sources

RECENT_RUNS = 10


@dataclass
class ResultPage:
    records: list[dict[str, Any]]
    page: int
    per_page: int
    has_more: bool

    def record(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "per_page": self.per_page,
            "has_more": self.has_more,
            "results": self.records,
        }


def search_page(
    session: Session, filters: Filters, page: int, per_page: int, stories: bool = True
) -> ResultPage:
    """One page of hits; one more than shown is fetched to know whether a next page exists."""
    hits = search(session, filters, per_page + 1, (page - 1) * per_page, stories=stories)
    return ResultPage(
        [hit_record(h) for h in hits[:per_page]], page, per_page, len(hits) > per_page
    )


class NotFoundError(LookupError):
    pass


def article_view(session: Session, article_id: int) -> dict[str, Any]:
    """The article as ``show --format json`` gives it, with the diffs between versions."""
    try:
        article = load_article(session, article_id)
    except UsageError:
        raise NotFoundError(f"no article with id {article_id}") from None
    record = article_record(article, language_version_articles(session, article))
    record["diffs"] = version_diffs(article)
    return record


def capture_view(
    session: Session, settings: Settings, article_id: int
) -> tuple[dict[str, Any], str]:
    """An article's record and its archived capture as inert HTML."""
    record = article_view(session, article_id)
    if not record["capture"]:
        raise NotFoundError(f"article {article_id} has no archived capture")
    ref = ref_from_record(record["capture"])
    try:
        page = read_capture(settings.warc_dir, ref)
    except CaptureMissing as exc:
        raise NotFoundError(str(exc)) from None
    return record, static_html(page)


def sources_view(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Each configured source's health and its last runs, newest first."""
    config = load_sources(settings.sources)
    health = archive_health(session, config.sources)
    ids = {name: id_ for name, id_ in session.execute(select(SourceRow.name, SourceRow.id))}
    views = []
    for source, state in zip(config.sources, health, strict=True):
        runs = []
        if source.name in ids:
            runs = list(
                session.scalars(
                    select(CrawlRun)
                    .where(CrawlRun.source_id == ids[source.name])
                    .order_by(desc(CrawlRun.id))
                    .limit(RECENT_RUNS)
                )
            )
        views.append(
            {
                **state.record(),
                "kind": source.kind,
                "title": source.title,
                "schedule": source.schedule.describe() if source.schedule else None,
                "runs": [_run_record(run) for run in runs],
            }
        )
    return views


def _run_record(run: CrawlRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "started_at": iso_time(run.started_at),
        "finished_at": iso_time(run.finished_at),
        "outcome": run.outcome,
        # Where a running crawl runs: its machine and process (a worker's crawl).
        "host": run.host if run.outcome == "running" else None,
        "pid": run.pid if run.outcome == "running" else None,
        "pages": run.pages,
        "new": run.articles_new,
        "updated": run.articles_updated,
        "duplicate": run.articles_duplicate,
        "flagged": run.articles_flagged,
        "readings": run.readings_new,
        "errors": run.errors,
        "error": run.error_text,
    }


def figures_view(
    session: Session, metric: str | None, since: date | None
) -> tuple[list[dict[str, object]], dict[str, list[tuple[date, int]]]]:
    """The readings, and per metric the series to draw (one value per day: the largest).

    Several sources may report the same metric on one day; the chart draws the
    highest, the table lists them all.
    """
    records = figure_records(session, metric, since)
    by_day: dict[str, dict[date, int]] = {}
    for r in records:
        day = date.fromisoformat(str(r["as_of"]))
        days = by_day.setdefault(str(r["metric"]), {})
        days[day] = max(days.get(day, 0), int(str(r["value"])))
    series = {metric: sorted(days.items()) for metric, days in by_day.items()}
    return records, series
