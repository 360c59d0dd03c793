"""Deduplication on SQLite and PostgreSQL: one story once, with its sources and versions."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from datasketch import MinHash
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from db.engine import make_sessionmaker
from db.models import Article, ArticleVersion, LshBand, StoryCluster
from db.repository.runs import ensure_source
from deportwatch.cli.app import app
from pipeline.dedup import DedupPipeline
from pipeline.items import DateCandidate
from pipeline.normalize import NormalizePipeline
from pipeline.similarity import (
    BANDS,
    NUM_PERM,
    band_keys,
    shingles,
    signature,
    similarity,
)
from pipeline.store import StorePipeline
from pipeline.writer import ArchiveWriter
from tests.helpers import FETCHED, article_item

STORY = (
    "Almost 10,000 children from Ukraine's occupied territories were sent to Russia in the "
    "autumn of 2023 alone under the label of health improvement trips, the National Resistance "
    "Center reported.\nIn these camps the children are exposed to propaganda, and Russian "
    "officials frequently refuse to hand them back to their legal guardians, the center said.\n"
    "According to the center, Moscow set a quota of 2,500 children to be moved out of every "
    "occupied region. Medical certificates for the trips are issued by doctors brought in from Russia."
)
SYNDICATED = (
    "Almost 10,000 children from Ukraine's occupied territories were sent to Russia in the "
    "autumn of 2023 alone under the label of health improvement trips, the National Resistance "
    "Center reported.\nIn these camps the children are exposed to propaganda, and Russian "
    "officials frequently refuse to hand them back to their legal guardians, the center said.\n"
    "According to the center, Moscow set a quota of 2,500 children to be moved out of every "
    "occupied region. Medical certificates for the trips are issued by doctors brought in from Russia.\n"
    "We're bringing the voice of Ukraine to the world. Support us with a one-time donation.\n"
    "Read the original article on The New Voice of Ukraine"
)
REWORDED = (
    "Nearly 10,000 children from Ukraine's occupied territories were sent to Russia in the "
    "autumn of 2023 alone under the label of health improvement trips, the National Resistance "
    "Center said.\nIn these camps the children are exposed to propaganda, and Russian "
    "officials often refuse to hand them back to their legal guardians, the center added.\n"
    "According to the center, Moscow set a quota of 2,500 children to be moved out of each "
    "occupied region. Medical certificates for the trips are issued by doctors brought from Russia."
)
SAME_TOPIC = (
    "Almost 400 children from Ukraine's occupied territories have been brought back from Russia "
    "since the start of the year, the Ombudsman reported.\nMany of them had been sent to camps "
    "in Crimea and the Krasnodar region, and their legal guardians travelled through a third "
    "country to collect them, he said.\nThe returns were organized with the help of charities; "
    "each case took months of searching and negotiation with Russian officials."
)


@pytest.fixture
def pipeline(engine: Engine, writer: ArchiveWriter) -> tuple[DedupPipeline, StorePipeline]:
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        for name in ("nv-en", "yahoo", "kyiv-independent"):
            ensure_source(session, name, "feed")
    stats = MemoryStatsCollector(get_crawler())
    return DedupPipeline(writer, threshold=0.5), StorePipeline(writer, stats)


def ingest(
    pipeline: tuple[DedupPipeline, StorePipeline], url: str, text: str, **kw: object
) -> None:
    dedup, store = pipeline
    item = NormalizePipeline().process_item(
        article_item(url=url, final_url=url, text=text, **kw)  # type: ignore[arg-type]
    )
    store.process_item(dedup.process_item(item))


def rows(session: Session) -> list[Article]:
    session.expire_all()
    return list(session.scalars(select(Article).order_by(Article.id)))


def stat(pipeline: tuple[DedupPipeline, StorePipeline], kind: str) -> int:
    assert pipeline[1].stats is not None
    return int(pipeline[1].stats.get_value(f"deportwatch/articles/{kind}", 0))


def test_signature_separates_copies_from_other_stories() -> None:
    base = signature(STORY)
    assert base is not None
    assert similarity(base, signature(SYNDICATED) or b"") >= 0.6
    assert similarity(base, signature(REWORDED) or b"") >= 0.5
    assert similarity(base, signature(SAME_TOPIC) or b"") < 0.2
    assert signature("Too short for shingles.") is None


def test_signatures_stay_those_the_archive_holds() -> None:
    # Archived band keys were made from earlier signatures: a library default
    # that changes (datasketch 2.0 changed its scheme) must fail here, not
    # silently stop copies finding their originals.
    base = signature(STORY)
    assert base is not None
    assert base.hex()[:32] == "3775b2001dc10a02ea582b098cdd2b03"
    assert band_keys(base)[:2] == [6592958213758564591, -3079634059277331693]
    # The permutations drawn once are those a MinHash with the seed draws.
    fresh = MinHash(num_perm=NUM_PERM, seed=1, scheme="affine32")
    fresh.update_batch(sorted(shingles(STORY)))
    assert base == bytes(fresh.hashvalues.astype("<u4").tobytes())


def test_syndicated_copy_joins_the_story(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    ingest(pipeline, "https://english.nv.ua/nation/camps-50379522.html", STORY, source="nv-en")
    ingest(
        pipeline,
        "https://www.yahoo.com/news/russia-took-children-camps-123.html",
        SYNDICATED,
        source="yahoo",
        fetched_at=FETCHED + timedelta(hours=2),
    )
    original, copy = rows(session)
    assert copy.cluster_id == original.cluster_id is not None
    assert copy.duplicate_of == original.id
    assert copy.similarity is not None
    assert copy.similarity >= 0.5
    assert copy.source.name == "yahoo"
    cluster = session.get_one(StoryCluster, original.cluster_id)
    assert cluster.first_article_id == original.id
    assert cluster.first_seen_at == FETCHED
    assert [m.id for m in cluster.members] == [original.id, copy.id]
    assert (stat(pipeline, "new"), stat(pipeline, "duplicate")) == (1, 1)


def test_same_text_at_two_urls_is_one_story(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    ingest(pipeline, "https://kyivindependent.com/story-a/", STORY)
    ingest(pipeline, "https://kyivindependent.com/news/story-a-copy/", STORY)
    first, second = rows(session)
    assert (second.cluster_id, second.duplicate_of, second.similarity) == (
        first.cluster_id,
        first.id,
        1.0,
    )


def test_reworded_copy_joins_the_story(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    ingest(pipeline, "https://english.nv.ua/a.html", STORY, source="nv-en")
    ingest(pipeline, "https://kyivindependent.com/b/", REWORDED)
    first, second = rows(session)
    assert second.cluster_id == first.cluster_id


def test_different_story_on_the_same_topic_does_not_merge(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    ingest(pipeline, "https://english.nv.ua/a.html", STORY, source="nv-en")
    ingest(pipeline, "https://kyivindependent.com/returns/", SAME_TOPIC)
    first, second = rows(session)
    assert second.cluster_id != first.cluster_id
    assert second.duplicate_of is None
    assert session.scalar(select(func.count()).select_from(StoryCluster)) == 2


def test_edit_becomes_a_version(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    url = "https://kyivindependent.com/story/"
    ingest(pipeline, url, STORY, title="Russia took 9,000 children")
    edited_at = FETCHED + timedelta(hours=5)
    ingest(
        pipeline,
        url,
        STORY + "\nUpdate: the figure was confirmed.",
        title="Russia took 10,000 children",
        fetched_at=edited_at,
    )
    [article] = rows(session)
    assert article.title == "Russia took 10,000 children"
    assert article.text.endswith("Update: the figure was confirmed.")
    [version] = article.versions
    assert (version.title, version.text) == ("Russia took 9,000 children", STORY)
    assert (version.seen_from, version.seen_until) == (FETCHED, edited_at)
    assert stat(pipeline, "updated") == 1
    assert article.cluster_id is not None  # still its own story
    assert session.scalar(select(func.count()).select_from(StoryCluster)) == 1


def test_pubdate_churn_is_not_a_version(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    url = "https://kyivindependent.com/story/"
    ingest(
        pipeline, url, STORY, date_candidates=[DateCandidate("feed", "2023-12-28T10:00:00+00:00")]
    )
    ingest(
        pipeline,
        url,
        STORY,
        date_candidates=[DateCandidate("feed", "2023-12-29T08:30:00+00:00")],
        fetched_at=FETCHED + timedelta(hours=1),
    )
    [article] = rows(session)
    assert article.versions == []
    assert stat(pipeline, "unchanged") == 1
    assert session.scalar(select(func.count()).select_from(ArticleVersion)) == 0


def test_feed_guid_keeps_a_moved_entry_in_its_row(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    ingest(pipeline, "https://kyivindependent.com/draft-slug/", STORY, feed_guid="64303a1f")
    ingest(pipeline, "https://kyivindependent.com/final-slug/", STORY, feed_guid="64303a1f")
    [article] = rows(session)
    assert article.canonical_url == "https://kyivindependent.com/draft-slug"


def test_a_feed_guid_names_an_entry_of_its_own_source_only(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    # GUIDs are the publisher's: another source's entry with the same GUID is
    # another report (a copy joins the story, it does not overwrite the row).
    ingest(pipeline, "https://english.nv.ua/camps/", STORY, source="nv-en", feed_guid="7")
    ingest(pipeline, "https://www.yahoo.com/camps/", STORY, source="yahoo", feed_guid="7")
    ingest(pipeline, "https://english.nv.ua/camps-moved/", STORY, source="nv-en", feed_guid="7")
    original, copy = rows(session)
    assert original.canonical_url == "https://english.nv.ua/camps"
    assert copy.canonical_url == "https://yahoo.com/camps"
    assert copy.cluster_id == original.cluster_id
    assert stat(pipeline, "new") == 1
    assert stat(pipeline, "duplicate") == 1
    assert stat(pipeline, "unchanged") == 1


def test_band_rows_follow_the_text(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    url = "https://kyivindependent.com/story/"
    ingest(pipeline, url, STORY)
    [article] = rows(session)
    before = set(session.scalars(select(LshBand.band_key).where(LshBand.article_id == article.id)))
    # The MinHash bands, then the anchor keys of the rewrite and language search.
    assert set(band_keys(signature(STORY) or b"")) < before
    assert len(before) > BANDS
    ingest(pipeline, url, SAME_TOPIC, fetched_at=FETCHED + timedelta(hours=1))
    after = set(session.scalars(select(LshBand.band_key).where(LshBand.article_id == article.id)))
    assert set(band_keys(signature(SAME_TOPIC) or b"")) < after
    # The old text's bands are gone; a rare term both leads share (the same
    # topic, the same days) is a key of the new text too.
    assert set(band_keys(signature(STORY) or b"")).isdisjoint(after)
    assert len(before & after) <= 2


def test_short_texts_match_only_exactly(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    ingest(pipeline, "https://t.me/s/ch/1", "Ще 11 дітей повернули додому.")
    ingest(pipeline, "https://t.me/s/other/2", "Ще 11 дітей повернули додому.")
    ingest(pipeline, "https://t.me/s/other/3", "Ще 12 дітей повернули додому.")
    first, same, other = rows(session)
    assert same.cluster_id == first.cluster_id
    assert other.cluster_id != first.cluster_id
    assert first.minhash is None


# --- deportwatch show ------------------------------------------------------------------

runner = CliRunner()


def test_show_lists_story_members_and_versions(
    pipeline,
    session: Session,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", database_url)
    url = "https://english.nv.ua/nation/camps-50379522.html"
    ingest(pipeline, url, STORY + " [red]not markup[/]", source="nv-en", title="Russia took 9,000")
    ingest(
        pipeline,
        url,
        STORY + " [red]not markup[/]\nUpdate: figure confirmed.",
        source="nv-en",
        title="Russia took 10,000 children [bold]x[/]",
        fetched_at=FETCHED + timedelta(hours=3),
    )
    ingest(pipeline, "https://www.yahoo.com/news/camps-1.html", SYNDICATED, source="yahoo")
    original, copy = rows(session)

    result = runner.invoke(
        app, ["show", str(original.id), "--format", "json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["story"]["cluster_id"] == original.cluster_id
    assert [m["id"] for m in record["story"]["members"]] == [copy.id]
    assert record["story"]["members"][0]["source"] == "yahoo"
    assert [v["title"] for v in record["versions"]] == ["Russia took 9,000"]
    assert record["canonical_url"] == url

    text = runner.invoke(app, ["show", str(original.id)], catch_exceptions=False)
    assert text.exit_code == 0
    assert f"#{copy.id} yahoo: https://www.yahoo.com/news/camps-1.html" in text.output
    assert "+Update: figure confirmed." in text.output  # the diff between versions
    # scraped text is printed, never interpreted as markup
    assert "Russia took 10,000 children [bold]x[/]" in text.output
    assert "[red]not markup[/]" in text.output

    missing = runner.invoke(app, ["show", "999999"], catch_exceptions=False)
    assert missing.exit_code == 2
    assert "no article with id 999999" in missing.output


def test_short_post_linking_to_an_archived_article_joins_its_story(
    pipeline, session: Session
) -> None:  # type: ignore[no-untyped-def]
    ingest(pipeline, "https://english.nv.ua/nation/camps-50379522.html", STORY, source="nv-en")
    ingest(
        pipeline,
        "https://t.me/dmytro_lubinetzs/812",
        "Ще одне підтвердження: діти вивезені під виглядом оздоровлення.",
        links_to="https://english.nv.ua/nation/camps-50379522.html?utm_source=telegram",
    )
    ingest(pipeline, "https://t.me/dmytro_lubinetzs/813", "Новий пост без посилань на статті.")
    article, post, lone = rows(session)
    assert post.cluster_id == article.cluster_id
    assert post.duplicate_of == article.id
    assert lone.cluster_id != article.cluster_id
