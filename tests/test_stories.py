"""One story across rewrites and languages, on SQLite and PostgreSQL.

The texts are written for these tests: one report of a return of children in
Ukrainian, a reworded copy of it, its English and Russian versions, a report
of another return a week later and another story of the same day.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db.engine import make_sessionmaker
from db.models import Article, StoryCluster
from db.repository.articles import language_versions
from db.repository.runs import ensure_source
from pipeline.dedup import DedupPipeline
from pipeline.items import DateCandidate
from pipeline.normalize import NormalizePipeline
from pipeline.similarity import signature, similarity
from pipeline.store import StorePipeline
from pipeline.stories import anchors, language_verdict, rewrite_verdict, skeleton
from pipeline.writer import ArchiveWriter
from tests.helpers import article_item

UK_REPORT = (
    "Україна повернула ще 23 дітей, яких Росія депортувала з Херсонщини та Запоріжжя. "
    "Про це 10 вересня повідомив уповноважений з прав людини Дмитро Лубінець. "
    "Серед повернутих — дванадцятирічна дівчинка з Олешок, яку окупанти вивезли до Анапи. "
    "Загалом з початку вторгнення вдалося повернути 1 842 дитини, зазначив омбудсман. "
    "Повернення відбулося за посередництва Катару."
)
UK_REWORDED = (
    "Україні вдалося повернути ще 23 дитини, яких Росія вивезла з Херсонщини та Запоріжжя. "
    "Про це 10 вересня заявив уповноважений Верховної Ради з прав людини Дмитро Лубінець. "
    "Серед повернених — дванадцятирічна дівчинка з Олешок, яку окупанти відвезли до Анапи. "
    "Всього від початку вторгнення повернуто 1 842 дитини, наголосив омбудсман. "
    "Повернення стало можливим за посередництва Катару."
)
EN_VERSION = (
    "Ukraine has brought back 23 more children deported by Russia from the Kherson and "
    "Zaporizhzhia regions, Human Rights Commissioner Dmytro Lubinets said on September 10. "
    "Among them is a twelve-year-old girl from Oleshky whom the occupiers had taken to Anapa. "
    "In total, 1,842 children have been returned since the invasion began, the ombudsman said. "
    "The return was mediated by Qatar."
)
RU_VERSION = (
    "Украина вернула еще 23 ребенка, которых Россия депортировала с Херсонщины и Запорожья. "
    "Об этом 10 сентября сообщил уполномоченный по правам человека Дмитрий Лубинец. "
    "Среди возвращенных — двенадцатилетняя девочка из Алешек, которую оккупанты вывезли в "
    "Анапу. Всего с начала вторжения удалось вернуть 1 842 ребенка, отметил омбудсмен. "
    "Возвращение состоялось при посредничестве Катара."
)
EN_WEEK_LATER = (
    "Ukraine has returned 11 more children from the occupied territories, Human Rights "
    "Commissioner Dmytro Lubinets said on September 17. The children, aged 6 to 16, come from "
    "the Donetsk and Luhansk regions. In total, 1,853 children have been returned since the "
    "invasion began, he said. The return was mediated by Qatar, as the previous one was."
)
EN_SAME_DAY_OTHER = (
    "A court in Kyiv sentenced in absentia a Russian official who organised the transfer of 46 "
    "children from a Kherson orphanage to Crimea, prosecutors said on September 10. The "
    "official, appointed by the occupation administration, signed the orders to move the "
    "children. The investigation found that the children were later placed with families in "
    "Russia, and their names were changed."
)


def day(text: str) -> list[DateCandidate]:
    return [DateCandidate("page-meta", text)]


def test_names_numbers_and_dates_read_alike_in_every_language() -> None:
    assert skeleton("Лубінець") == skeleton("Лубинец") == skeleton("Lubinets")
    assert skeleton("Харків") == skeleton("Харьков") == skeleton("Kharkiv")
    uk, en, ru = anchors(UK_REPORT), anchors(EN_VERSION), anchors(RU_VERSION)
    assert {23, 1842, 12} <= uk.numbers & en.numbers & ru.numbers  # 1 842 = 1,842; twelve
    assert uk.dates == en.dates == ru.dates == frozenset({"09-10"})


def test_the_decisions_on_their_own() -> None:
    sep10 = datetime(2025, 9, 10, tzinfo=UTC)
    sep17 = datetime(2025, 9, 17, tzinfo=UTC)
    # MinHash on 3-word runs does not see the reworded copy; the letters do.
    assert similarity(signature(UK_REPORT) or b"", signature(UK_REWORDED) or b"") < 0.5
    assert rewrite_verdict(UK_REPORT, UK_REWORDED, sep10, sep10).same
    assert language_verdict(anchors(UK_REPORT), anchors(EN_VERSION), sep10, sep10).same
    # The next week's return, and another story of the same day, are not this one.
    assert not language_verdict(anchors(UK_REPORT), anchors(EN_WEEK_LATER), sep10, sep10).same
    assert not language_verdict(anchors(EN_VERSION), anchors(EN_WEEK_LATER), sep10, sep17).same
    assert not rewrite_verdict(EN_VERSION, EN_WEEK_LATER, sep10, sep17).same
    assert not rewrite_verdict(EN_VERSION, EN_SAME_DAY_OTHER, sep10, sep10).same
    assert not language_verdict(anchors(UK_REPORT), anchors(EN_SAME_DAY_OTHER), sep10, sep10).same


@pytest.fixture
def pipeline(engine: Engine, writer: ArchiveWriter) -> tuple[DedupPipeline, StorePipeline]:
    with make_sessionmaker(engine).begin() as session:
        for name in ("ukrinform-ua", "ukrinform-en", "nv-ru", "copycat", "kyiv-independent"):
            ensure_source(session, name, "feed")
    return DedupPipeline(writer), StorePipeline(writer, MemoryStatsCollector(get_crawler()))


def ingest(
    pipeline: tuple[DedupPipeline, StorePipeline], source: str, url: str, text: str, when: str
) -> None:
    dedup, store = pipeline
    item = NormalizePipeline().process_item(
        article_item(source=source, url=url, final_url=url, text=text, date_candidates=day(when))
    )
    store.process_item(dedup.process_item(item))


def by_url(session: Session) -> dict[str, Article]:
    session.expire_all()
    return {a.canonical_url: a for a in session.scalars(select(Article))}


def group_of(session: Session, article: Article) -> int | None:
    return session.scalar(
        select(StoryCluster.language_group_id).where(StoryCluster.id == article.cluster_id)
    )


def test_rewrites_join_and_language_versions_link(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    ingest(
        pipeline, "ukrinform-ua", "https://ukrinform.ua/23", UK_REPORT, "2025-09-10T10:00:00+03:00"
    )
    ingest(
        pipeline, "copycat", "https://copycat.example/23", UK_REWORDED, "2025-09-10T13:00:00+03:00"
    )
    ingest(
        pipeline,
        "ukrinform-en",
        "https://ukrinform.net/23",
        EN_VERSION,
        "2025-09-10T11:00:00+03:00",
    )
    ingest(pipeline, "nv-ru", "https://nv.ua/rus/23", RU_VERSION, "2025-09-11T09:00:00+03:00")
    ingest(
        pipeline,
        "ukrinform-en",
        "https://ukrinform.net/11",
        EN_WEEK_LATER,
        "2025-09-17T11:00:00+03:00",
    )
    ingest(
        pipeline,
        "kyiv-independent",
        "https://kyivindependent.com/court",
        EN_SAME_DAY_OTHER,
        "2025-09-10T15:00:00+03:00",
    )
    got = by_url(session)
    uk, copy = got["https://ukrinform.ua/23"], got["https://copycat.example/23"]
    en, ru = got["https://ukrinform.net/23"], got["https://nv.ua/rus/23"]
    later, other = got["https://ukrinform.net/11"], got["https://kyivindependent.com/court"]
    # The reworded copy is the same story; the versions are stories of their own...
    assert copy.cluster_id == uk.cluster_id
    assert copy.duplicate_of == uk.id
    assert len({uk.cluster_id, en.cluster_id, ru.cluster_id}) == 3
    # ...linked as one group under the first one's story.
    assert group_of(session, uk) == group_of(session, en) == group_of(session, ru) == uk.cluster_id
    assert set(language_versions(session, en.cluster_id)) == {uk.cluster_id, ru.cluster_id}
    # Another return a week later and another story of the same day stay apart.
    for stranger in (later, other):
        assert stranger.cluster_id not in {uk.cluster_id, en.cluster_id, ru.cluster_id}
        assert group_of(session, stranger) is None
        assert language_versions(session, stranger.cluster_id) == []
