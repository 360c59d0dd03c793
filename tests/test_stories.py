"""One story across rewrites and languages, on SQLite and PostgreSQL.

The texts are written for these tests: one report of a return of children in
Ukrainian, a reworded copy of it, its English and Russian versions, a report
of another return a week later and another story of the same day; a return
retold in other words and a same-day report on the camps naming the same
people; one outlet's article in two editions, and another article of it.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench import dedup_ingest
from db.engine import make_sessionmaker
from db.models import Article, LshBand, StoryCluster
from db.repository.articles import language_versions, story_candidates
from db.repository.runs import ensure_source
from deportwatch.cli.app import app
from deportwatch.config.settings import load_settings
from deportwatch.web.app import create_app
from pipeline.dedup import DedupPipeline
from pipeline.items import DateCandidate
from pipeline.normalize import NormalizePipeline
from pipeline.similarity import band_keys, signature, similarity
from pipeline.store import StorePipeline
from pipeline.stories import (
    CANDIDATE_WEIGHT,
    COMMON_ANCHOR_ARTICLES,
    anchors,
    language_verdict,
    lead_terms,
    lemma_similarity,
    lookup_keys,
    outlet_article,
    rewrite_verdict,
    sentence_terms,
    shared_quote,
    shared_sentence,
    skeleton,
    story_keys,
)
from pipeline.writer import ArchiveWriter
from tests.conftest import REPO
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

# A return told in two ways: the same count and the same official, few other
# anchors in common and little shared wording; and a report of the same day on
# the camps, naming the same people and places, but no count.
UK_RETURN = (
    "Ще 14 дітей повернули з тимчасово окупованих територій. Про це 6 березня повідомив "
    "керівник Офісу Президента Андрій Єрмак. Серед повернених є підлітки з Херсонщини, яких "
    "окупанти примусово вивезли до таборів у Криму. Діти вже отримують медичну та психологічну "
    "допомогу, а їхні родини чекали на них понад рік."
)
UK_RETOLD = (
    "Україна змогла повернути додому 14 дітей, яких росіяни незаконно вивезли з окупованих "
    "територій, заявив Єрмак. Підлітків окупанти утримували в таборах. Зараз діти отримують "
    "психологічну та медичну підтримку, а рідні зустріли їх після року очікування."
)
UK_CAMPS = (
    "Андрій Єрмак розповів, як окупанти утримують у таборах у Криму підлітків з Херсонщини: "
    "дітей примусово вивезли з окупованих територій і змушують навчатися за російською "
    "програмою. Їхні родини досі чекають на повернення, а діти потребують психологічної допомоги."
)
# One outlet's article in its Ukrainian and Russian editions: two place names
# in common, too few anchors to link on their own.
UK_EDITION = (
    "Окупанти вивезли вихованців інтернату з Каховки до Скадовська, повідомляє редакція. "
    "Батьки дітей звернулися до поліції і просять допомогти знайти дітей. Їхні свідчення "
    "зібрали журналісти видання, які поспілкувалися з родинами вихованців."
)
RU_EDITION = (
    "Оккупанты вывезли воспитанников интерната из Каховки в Скадовск, сообщает редакция. "
    "Родители детей обратились в полицию и просят помочь найти детей. Их свидетельства "
    "собрали журналисты издания, которые пообщались с семьями воспитанников."
)

# Another article of the same outlet the same day, on the same two towns.
RU_OTHER_ARTICLE = (
    "В Скадовске и Каховке оккупанты закрыли украинские школы, сообщает редакция. Учителей "
    "заставляют преподавать по российской программе, а родителей вызывают на беседы."
)

# One statement quoted by two outlets, with no count and no date in it (how
# many children came back was not said): the quote, word for word, is the
# evidence. The first outlet's other article of the day ends on the same
# background sentence as its report; a later statement repeats the quote.
UK_STATEMENT = (
    "Перша леді США Меланія Трамп сприяла черговому поверненню дітей до їхніх родин, йдеться "
    "у заяві на її офіційному сайті. «Хоча всі сторони співпрацюють, і наші комунікації "
    "залишаються міцними, я закликаю обидві країни активізувати свої зусилля для гарантування "
    "безпечного повернення кожної дитини», — заявила вона. Скільки дітей повернули цього разу, "
    "не уточнюється. Нагадаємо, міжнародний кримінальний суд видав ордер на арешт через "
    "незаконну депортацію українських дітей з окупованих територій."
)
UK_STATEMENT_QUOTED = (
    "Дружина президента США Меланія Трамп знову допомогла повернути додому дітей, розлучених "
    'з батьками через війну, повідомляє пресслужба Білого дому. "Хоча всі сторони '
    "співпрацюють, і наші комунікації залишаються міцними, я закликаю обидві країни "
    'активізувати свої зусилля для забезпечення безпечного повернення кожної дитини", - '
    "сказала перша леді. Переговори з обома сторонами тривають."
)
UK_STATEMENT_REPEATED = (
    "Меланія Трамп на зустрічі з журналістами у Вашингтоні повторила свій заклик до сторін. "
    "«Хоча всі сторони співпрацюють, і наші комунікації залишаються міцними, я закликаю обидві "
    "країни активізувати свої зусилля для гарантування безпечного повернення кожної дитини», — "
    "сказала вона, відповідаючи на запитання про нові переговори."
)
UK_SAME_OUTLET_OTHER = (
    "Суд у Києві заочно засудив окупаційного посадовця, який організував вивезення вихованців "
    "інтернату до Криму, повідомили у прокуратурі. Посадовець підписував накази про переміщення "
    "дітей. Нагадаємо, міжнародний кримінальний суд видав ордер на арешт через незаконну "
    "депортацію українських дітей з окупованих територій."
)
# One return told by two outlets: "more than 20" in one lead, 22 in the other.
UK_ABOUT_20 = (
    "Україна повернула з окупації ще понад 20 дітей, повідомив 3 жовтня Андрій Єрмак. Серед "
    "врятованих — хлопчик, якого змушували навчатися за російською програмою та погрожували "
    "відправити на психіатричне обстеження до окупованого Криму. Усього повернули 22 дитини."
)
UK_EXACTLY_22 = (
    "З тимчасово окупованих територій вдалося повернути 22 українські дитини, повідомив 3 "
    "жовтня Андрій Єрмак. Серед них хлопчик, якого змушували навчатися за російською "
    "програмою та погрожували відправити на психіатричне обстеження до окупованого Криму."
)

# One statement, its copy a day later under the page's dateline (the day and
# time it came out), with the statement's own day further down.
UK_THIRD_REUNION = (
    "Перша леді США Меланія Трамп 12 лютого допомогла повернути додому дітей, розлучених з "
    "родинами через війну. Про це повідомили на сайті Білого дому. «Сьогодні відзначається "
    "третє возз'єднання з тих пір, як я почала стратегічно співпрацювати з обома країнами, і я "
    "не сумніваюся, що буде ще більше прогресу», — заявила вона."
)
UK_THIRD_REUNION_DATELINED = (
    "Головні новини ранку: енергетика, фронт, дипломатія та повернення дітей у нашому огляді\n"
    "13 лютого 2026, 09:20\n"
    "У Білому домі заявили про третю ініціативу першої леді щодо повернення дітей, яких вивезли "
    "під час війни; подробиць про кількість дітей не наводять, але переговори тривають і надалі, "
    "наголошують у пресслужбі.\nМеланія Трамп 12 лютого знову допомогла повернути дітей. "
    "«Сьогодні відзначається третє возз'єднання з тих пір, як я почала стратегічно співпрацювати "
    "з обома країнами, і я не сумніваюся, що буде ще більше прогресу», — сказала вона."
)
# One return of seven children: ages 8 to 16 in one report, 8 to 17 in the other.
UK_SEVEN_AGES_16 = (
    "Сімох українських дітей від 8 до 16 років вдалося повернути додому з окупованої території "
    "та Росії, повідомив омбудсман Дмитро Лубінець. Двоє братів-близнюків після смерті матері "
    "опинилися в російському інтернаті, але тепер возз'єдналися з рідною тіткою в Україні."
)
UK_SEVEN_AGES_17 = (
    "Семеро дітей віком від 8 до 17 років перетнули кордон 5 грудня, йдеться в листі ініціативи "
    "Bring Kids Back UA. Серед них двоє братів-близнюків, які після смерті матері опинилися в "
    "російському інтернаті, але тепер возз'єдналися з рідною тіткою в Україні."
)

# One statement quoted by two Russian outlets, translated in other word order.
RU_QUOTED = (
    "Первая леди США Мелания Трамп помогла воссоединить семьи, сообщил Белый дом. «Сегодня "
    "первая леди успешно воссоединила российских и украинских детей с их семьями, уже в третий "
    "раз помогая детям вернуться домой после долгой разлуки», — говорится в публикации."
)
RU_QUOTED_REORDERED = (
    "Пресс-служба Белого дома выпустила заявление супруги президента. «Первая леди сегодня "
    "успешно воссоединила с семьями российских и украинских детей: уже в третий раз она "
    "помогает детям вернуться домой после долгой разлуки», — отмечается в сообщении."
)


def day(text: str) -> list[DateCandidate]:
    return [DateCandidate("page-meta", text)]


def test_names_numbers_and_dates_read_alike_in_every_language() -> None:
    assert skeleton("Лубінець") == skeleton("Лубинец") == skeleton("Lubinets")
    assert skeleton("Харків") == skeleton("Харьков") == skeleton("Kharkiv")
    uk, en, ru = anchors(UK_REPORT), anchors(EN_VERSION), anchors(RU_VERSION)
    assert {23, 1842, 12} <= uk.numbers & en.numbers & ru.numbers  # 1 842 = 1,842; twelve
    assert uk.dates == en.dates == ru.dates == frozenset({"09-10"})


def test_a_clock_time_is_not_a_count() -> None:
    # A page that prints when it was published ("18:01") reports the same two
    # children as a copy that prints no time: its hours must not contradict
    # the copy's counts.
    stamped = "Sunday, 5 February 2023, 18:01\nTwo more children, aged 13 and 15, came home."
    plain = "On 5 February two children, aged 13 and 15, came back to Ukraine."
    assert 18 not in anchors(stamped).numbers
    assert 1 not in anchors(stamped).numbers
    assert {13, 15} <= anchors(stamped).lead_counts
    assert rewrite_verdict(stamped, plain).why != "different counts"


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


def test_language_versions_come_out_within_a_day() -> None:
    uk, ru = anchors(UK_REPORT), anchors(RU_VERSION)
    sep10, sep11 = datetime(2025, 9, 10, tzinfo=UTC), datetime(2025, 9, 11, tzinfo=UTC)
    assert language_verdict(uk, ru, sep10, sep11).same
    # The same count from the same official two days later is another return
    # as often as a late translation: not linked on anchors alone.
    assert not language_verdict(uk, ru, sep10, datetime(2025, 9, 12, tzinfo=UTC)).same


def test_a_small_count_in_the_lead_is_the_storys_count() -> None:
    uk = "Ще п'ятеро дітей повернулися додому, повідомив омбудсман Дмитро Лубінець. Діти вже вдома."
    en = "Five more children have come home, ombudsman Dmytro Lubinets said. They are home now."
    feb13 = datetime(2026, 2, 13, tzinfo=UTC)

    def weight(a: str, b: str) -> float:
        stored = set(story_keys(anchors(b), feb13))
        return sum(w for k, w in lookup_keys(anchors(a), feb13).items() if k in stored)

    # "Five children" in the lead, with the ombudsman's two names: a candidate.
    assert anchors(uk).weighted()["n5"] == anchors(en).weighted()["n5"] == 1.0
    assert weight(uk, en) >= CANDIDATE_WEIGHT
    assert language_verdict(anchors(uk), anchors(en), feb13, feb13).same
    # A five further down is an age or a detail, and weighs half.
    later = (
        "The ombudsman Dmytro Lubinets said that children keep coming home from the occupied "
        "territories, and that every return takes months of work with mediators, lawyers and "
        "the families who look for them; the latest group included siblings and teenagers who "
        "had lived on their own for months, some of them for more than a year, in towns far from "
        "the front. One of them is five."
    )
    assert anchors(later).weighted()["n5"] == 0.5
    assert weight(later, uk) < CANDIDATE_WEIGHT


def test_a_retelling_in_other_words_joins_on_lemmas_and_a_count() -> None:
    mar6 = datetime(2025, 3, 6, tzinfo=UTC)
    # Few anchors in common (the count and the official): not a language
    # version's evidence, so the letters-and-anchors rule leaves it apart...
    assert not rewrite_verdict(UK_RETURN, UK_RETOLD, mar6, mar6).same
    # ...the lemmas of the lead and of the fact sentences, with the count, join it.
    lead, facts = lemma_similarity(UK_RETURN, UK_RETOLD, "uk")
    assert lead >= 0.25
    assert facts >= 0.2
    verdict = rewrite_verdict(UK_RETURN, UK_RETOLD, mar6, mar6, "uk")
    assert verdict.same
    assert verdict.why.startswith("retold, lemmas")
    # Days apart it is not the same report.
    assert not rewrite_verdict(
        UK_RETURN, UK_RETOLD, mar6, datetime(2025, 3, 12, tzinfo=UTC), "uk"
    ).same
    # A lead with a count the other text does not give (as reports written to
    # one template share their words and, by chance, one count) stays apart.
    other_count = UK_RETOLD.replace("14 дітей,", "14 із 35 дітей,")
    assert anchors(other_count).lead_counts == {14, 35}
    assert not rewrite_verdict(UK_RETURN, other_count, mar6, mar6, "uk").same
    # The same day's report on the camps is as close in lemmas, but shares only
    # names (the official, the places): another story.
    lead, facts = lemma_similarity(UK_RETURN, UK_CAMPS, "uk")
    assert lead >= 0.25
    assert facts >= 0.2
    assert not rewrite_verdict(UK_RETURN, UK_CAMPS, mar6, mar6, "uk").same
    assert not rewrite_verdict(UK_RETOLD, UK_CAMPS, mar6, mar6, "uk").same


def test_rare_lead_terms_make_a_retelling_a_candidate() -> None:
    mar6 = datetime(2025, 3, 6, tzinfo=UTC)
    terms, retold_terms = lead_terms(UK_RETURN, "uk"), lead_terms(UK_RETOLD, "uk")
    # Lemmas, not surface words: "повернули" and "повернути" are one term.
    assert "uk:повернути" in set(terms) & set(retold_terms)
    assert all(not t.split(":")[1][0].isupper() for t in terms)  # names are anchors already
    assert lead_terms(UK_RETURN, None) == ()

    def weight(a: str, b: str, a_terms: tuple[str, ...], b_terms: tuple[str, ...]) -> float:
        stored = set(story_keys(anchors(b), mar6, b_terms))
        return sum(w for k, w in lookup_keys(anchors(a), mar6, a_terms).items() if k in stored)

    # The count and the official alone weigh less than a candidate needs; the terms add the rest.
    assert weight(UK_RETURN, UK_RETOLD, (), ()) < CANDIDATE_WEIGHT
    assert weight(UK_RETURN, UK_RETOLD, terms, retold_terms) >= CANDIDATE_WEIGHT
    # Terms are looked up over the window either side of the day, whichever span it falls in.
    later = datetime(2025, 3, 8, tzinfo=UTC)
    stored = set(story_keys(anchors(UK_RETOLD), later, retold_terms))
    assert set(lookup_keys(anchors(UK_RETURN), mar6, terms)) & stored


def test_an_outlets_editions_link_by_its_article_number() -> None:
    uk = outlet_article("https://edition.example/ua/news/1234567-vyvezly-vykhovantsiv")
    assert uk == outlet_article("https://ru.edition.example/news/1234567-vyvezli-vospitannikov")
    assert uk == outlet_article("https://www.edition.example/en/news/1234567")
    assert uk != outlet_article("https://ru.edition.example/news/1234568-vyvezli-vospitannikov")
    assert uk != outlet_article("https://other.example/ua/news/1234567")
    # A year in a path is no article number.
    assert outlet_article("https://edition.example/2025/03/06/story") is None
    mar6 = datetime(2025, 3, 6, tzinfo=UTC)
    other = outlet_article("https://ru.edition.example/news/1234568-vyvezli-vospitannikov")
    ru = outlet_article("https://ru.edition.example/news/1234567-vyvezli-vospitannikov")
    uk_anchors, ru_anchors = anchors(UK_EDITION), anchors(RU_EDITION)
    # The two towns alone are too few anchors; the outlet's number links them.
    assert not language_verdict(uk_anchors, ru_anchors, mar6, mar6).same
    assert language_verdict(uk_anchors, ru_anchors, mar6, mar6, outlet_a=uk, outlet_b=ru).same
    # Another article of the outlet on the same towns stays apart.
    assert not language_verdict(
        uk_anchors, anchors(RU_OTHER_ARTICLE), mar6, mar6, outlet_a=uk, outlet_b=other
    ).same
    # The same number with counts that contradict each other is not one report.
    assert not language_verdict(
        anchors("Вивезли 40 вихованців інтернату."),
        anchors("Вывезли 12 воспитанников интерната."),
        mar6,
        mar6,
        outlet_a=uk,
        outlet_b=ru,
    ).same


@pytest.fixture
def pipeline(engine: Engine, writer: ArchiveWriter) -> tuple[DedupPipeline, StorePipeline]:
    with make_sessionmaker(engine).begin() as session:
        for name in ("ukrinform-ua", "ukrinform-en", "nv-ru", "copycat", "kyiv-independent"):
            ensure_source(session, name, "feed")
    return DedupPipeline(writer), StorePipeline(writer, MemoryStatsCollector(get_crawler()))


# Two different stories of one day from two outlets, each ending on the same
# background paragraph (a running total and where it comes from), as outlets
# append it to every report on the subject.
EN_BACKGROUND = (
    "Since the start of the full-scale invasion, Russia has illegally deported or forcibly "
    "displaced 19,546 Ukrainian children, according to the government's Children of War "
    "platform, and only 1,300 have been brought back home so far."
)
EN_RED_CROSS = (
    "Ukraine's Ombudsman Dmytro Lubinets called on the International Committee of the Red Cross "
    "to gain access to Ukrainian children held in camps in Russia. Speaking at a press conference "
    "in Kyiv on Monday, he said the organization had failed to visit a single facility where the "
    "children are kept, despite repeated requests submitted through official channels over the "
    "past year. He added that his office had handed the committee a list of addresses of such "
    "camps, compiled from the testimony of families and returned teenagers, and asked for a "
    "response within a month. The ombudsman also said that diplomatic partners from several "
    "European states had agreed to raise the issue at the next session of the Council of Europe. "
    + EN_BACKGROUND
)
EN_BOARDING_SCHOOL = (
    "Occupation authorities in Kherson region moved pupils of a boarding school to Crimea, the "
    "National Resistance Center reported on Sunday. According to the center, the pupils were "
    "taken by bus to a sanatorium near Yevpatoria under the pretext of a health improvement "
    "program, and their relatives were not told when they would come back. The center said that "
    "similar trips had been organized from Zaporizhzhia region in the summer, and that in most "
    "such cases the children stay away for months. Local residents were urged to report any such "
    "transfers through the center's chatbot, and to keep copies of documents proving family ties. "
    + EN_BACKGROUND
)

# Each report as an outlet publishes it: source, address, text, publication time.
REPORTS = {
    "uk": ("ukrinform-ua", "https://ukrinform.ua/23", UK_REPORT, "2025-09-10T10:00:00+03:00"),
    "copy": ("copycat", "https://copycat.example/23", UK_REWORDED, "2025-09-10T13:00:00+03:00"),
    "en": ("ukrinform-en", "https://ukrinform.net/23", EN_VERSION, "2025-09-10T11:00:00+03:00"),
    "ru": ("nv-ru", "https://nv.ua/rus/23", RU_VERSION, "2025-09-11T09:00:00+03:00"),
    "later": (
        "ukrinform-en",
        "https://ukrinform.net/11",
        EN_WEEK_LATER,
        "2025-09-17T11:00:00+03:00",
    ),
    "other": (
        "kyiv-independent",
        "https://kyivindependent.com/court",
        EN_SAME_DAY_OTHER,
        "2025-09-10T15:00:00+03:00",
    ),
    "return": ("ukrinform-ua", "https://ukrinform.ua/14", UK_RETURN, "2025-03-06T10:00:00+02:00"),
    "retold": ("copycat", "https://copycat.example/14", UK_RETOLD, "2025-03-06T16:00:00+02:00"),
    "camps": ("copycat", "https://copycat.example/camps", UK_CAMPS, "2025-03-06T18:00:00+02:00"),
    "edition-uk": (
        "ukrinform-ua",
        "https://edition.example/ua/news/1234567-vyvezly-vykhovantsiv",
        UK_EDITION,
        "2025-03-06T09:00:00+02:00",
    ),
    "edition-ru": (
        "nv-ru",
        "https://ru.edition.example/news/1234567-vyvezli-vospitannikov",
        RU_EDITION,
        "2025-03-06T09:30:00+02:00",
    ),
    "edition-other": (
        "nv-ru",
        "https://ru.edition.example/news/1234568-vyvezli-vospitannikov",
        RU_OTHER_ARTICLE,
        "2025-03-06T12:00:00+02:00",
    ),
    "statement": (
        "ukrinform-ua",
        "https://first.example/news/statement",
        UK_STATEMENT,
        "2026-02-12T10:00:00+02:00",
    ),
    "statement-quoted": (
        "copycat",
        "https://second.example/statement",
        UK_STATEMENT_QUOTED,
        "2026-02-12T15:00:00+02:00",
    ),
    "statement-later": (
        "copycat",
        "https://second.example/statement-april",
        UK_STATEMENT_REPEATED,
        "2026-04-20T15:00:00+03:00",
    ),
    "outlet-other": (
        "ukrinform-ua",
        "https://first.example/news/court",
        UK_SAME_OUTLET_OTHER,
        "2026-02-12T12:00:00+02:00",
    ),
    "reunion": (
        "ukrinform-ua",
        "https://first.example/news/reunion",
        UK_THIRD_REUNION,
        "2026-02-12T20:00:00+02:00",
    ),
    "reunion-datelined": (
        "copycat",
        "https://second.example/reunion",
        UK_THIRD_REUNION_DATELINED,
        "2026-02-13T09:20:00+02:00",
    ),
    "ages-16": (
        "ukrinform-ua",
        "https://first.example/news/seven",
        UK_SEVEN_AGES_16,
        "2025-12-05T18:40:00+02:00",
    ),
    "ages-17": (
        "copycat",
        "https://second.example/seven",
        UK_SEVEN_AGES_17,
        "2025-12-06T10:00:00+02:00",
    ),
    "quoted": (
        "nv-ru",
        "https://first.example/ru/quoted",
        RU_QUOTED,
        "2026-02-12T20:22:00+03:00",
    ),
    "quoted-reordered": (
        "nv-ru",
        "https://second.example/ru/quoted",
        RU_QUOTED_REORDERED,
        "2026-02-12T21:00:00+03:00",
    ),
    "about-20": (
        "ukrinform-ua",
        "https://first.example/news/20",
        UK_ABOUT_20,
        "2025-10-03T19:00:00+03:00",
    ),
    "exactly-22": (
        "copycat",
        "https://second.example/22",
        UK_EXACTLY_22,
        "2025-10-03T19:30:00+03:00",
    ),
    "red-cross": (
        "kyiv-independent",
        "https://first.example/news/red-cross",
        EN_RED_CROSS,
        "2026-03-02T10:00:00+02:00",
    ),
    "boarding-school": (
        "copycat",
        "https://second.example/boarding-school",
        EN_BOARDING_SCHOOL,
        "2026-03-02T12:00:00+02:00",
    ),
}


def ingest(
    pipeline: tuple[DedupPipeline, StorePipeline], session: Session, *names: str
) -> dict[str, Article]:
    """The named reports through normalize, dedup and store, in the order given;
    their archived articles by name."""
    dedup, store = pipeline
    for name in names:
        source, url, text, when = REPORTS[name]
        item = NormalizePipeline().process_item(
            article_item(
                source=source, url=url, final_url=url, text=text, date_candidates=day(when)
            )
        )
        store.process_item(dedup.process_item(item))
    return archived(session)


def archived(session: Session) -> dict[str, Article]:
    """The reports' articles as the archive holds them now, by name."""
    session.expire_all()
    by_url = {a.canonical_url: a for a in session.scalars(select(Article))}
    return {name: by_url[url] for name, (_, url, _, _) in REPORTS.items() if url in by_url}


def group_of(session: Session, article: Article) -> int | None:
    return session.scalar(
        select(StoryCluster.language_group_id).where(StoryCluster.id == article.cluster_id)
    )


def test_rewrites_join_and_language_versions_link(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    got = ingest(pipeline, session, "uk", "copy", "en", "ru", "later", "other")
    uk, copy, en, ru = got["uk"], got["copy"], got["en"], got["ru"]
    later, other = got["later"], got["other"]
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


def test_retellings_and_editions_found_at_ingest(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    got = ingest(
        pipeline, session, "return", "camps", "retold", "edition-uk", "edition-ru", "edition-other"
    )
    # The retelling joins the return's story; the camps report of the same day does not.
    assert got["retold"].duplicate_of == got["return"].id
    assert got["retold"].cluster_id == got["return"].cluster_id
    assert got["camps"].cluster_id != got["return"].cluster_id
    assert group_of(session, got["camps"]) is None
    # The outlet's two editions are language versions; its other article stays alone.
    uk, ru, other = got["edition-uk"], got["edition-ru"], got["edition-other"]
    assert uk.cluster_id != ru.cluster_id
    assert group_of(session, uk) == group_of(session, ru) == uk.cluster_id
    assert other.cluster_id not in {uk.cluster_id, ru.cluster_id}
    assert group_of(session, other) is None


def test_a_sentence_shared_word_for_word_joins_two_outlets(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    feb12 = datetime(2026, 2, 12, tzinfo=UTC)
    # No count, no date, only names in common: none of the other rules joins
    # them (as one outlet's two articles, the shared sentence does not count).
    one_outlet = ("first.example", "first.example")
    assert not rewrite_verdict(
        UK_STATEMENT, UK_STATEMENT_QUOTED, feb12, feb12, "uk", outlets=one_outlet
    ).same
    assert shared_sentence(UK_STATEMENT, UK_STATEMENT_QUOTED)
    verdict = rewrite_verdict(
        UK_STATEMENT,
        UK_STATEMENT_QUOTED,
        feb12,
        feb12,
        "uk",
        outlets=("first.example", "second.example"),
    )
    assert verdict.why == "a sentence word for word"
    # The quote is a lookup key of its own: the two become candidates through it.
    assert set(sentence_terms(UK_STATEMENT)) & set(sentence_terms(UK_STATEMENT_QUOTED))
    got = ingest(
        pipeline, session, "statement", "outlet-other", "statement-quoted", "statement-later"
    )
    assert got["statement-quoted"].duplicate_of == got["statement"].id
    assert got["statement-quoted"].cluster_id == got["statement"].cluster_id
    # The outlet's other article shares its background sentence: one outlet's
    # boilerplate, not one story.
    assert shared_sentence(UK_STATEMENT, UK_SAME_OUTLET_OTHER)
    assert got["outlet-other"].cluster_id != got["statement"].cluster_id
    # Repeated two months later, the quote is another statement's.
    assert shared_sentence(UK_STATEMENT, UK_STATEMENT_REPEATED)
    assert got["statement-later"].cluster_id != got["statement"].cluster_id


def test_a_background_paragraph_two_outlets_append_joins_no_stories(  # type: ignore[no-untyped-def]
    pipeline, session: Session
) -> None:
    # The same sentence word for word, in two stories of one day by two outlets,
    # their leads without a count: only where the sentence stands tells them apart.
    assert shared_sentence(EN_BACKGROUND, EN_RED_CROSS)
    assert not shared_sentence(EN_RED_CROSS, EN_BOARDING_SCHOOL)
    mar2 = datetime(2026, 3, 2, tzinfo=UTC)
    verdict = rewrite_verdict(
        EN_RED_CROSS, EN_BOARDING_SCHOOL, mar2, mar2, "en", outlets=("a.example", "b.example")
    )
    assert not verdict.same, verdict
    # Nor does the ombudsman's standing appeal, quoted at the end of both.
    appeal = (
        ' "Every deported child must come home, and our office records each known case '
        "of illegal transfer, forced adoption and military education for future international "
        'courts," Lubinets said.'
    )
    red_cross = EN_RED_CROSS.replace(EN_BACKGROUND, appeal)
    boarding = EN_BOARDING_SCHOOL.replace(EN_BACKGROUND, appeal)
    assert shared_quote(red_cross, boarding, "en")
    verdict = rewrite_verdict(
        red_cross, boarding, mar2, mar2, "en", outlets=("a.example", "b.example")
    )
    assert not verdict.same, verdict
    # Both at once: the wording they share and the counts and name it carries
    # are the background's, not in either lead.
    both = (EN_RED_CROSS + appeal, EN_BOARDING_SCHOOL + appeal)
    assert not rewrite_verdict(*both, mar2, mar2, "en", outlets=("a.example", "b.example")).same
    got = ingest(pipeline, session, "red-cross", "boarding-school")
    assert got["boarding-school"].cluster_id != got["red-cross"].cluster_id
    assert got["boarding-school"].duplicate_of is None


def test_a_count_given_as_a_bound_does_not_contradict_the_exact_one(  # type: ignore[no-untyped-def]
    pipeline, session: Session
) -> None:
    # "More than 20" is no count of its own: 22 in a copy of the same report agrees.
    assert 20 in anchors(UK_ABOUT_20).numbers
    assert 20 not in anchors(UK_ABOUT_20).lead_counts
    assert 22 in anchors(UK_EXACTLY_22).lead_counts
    oct3 = datetime(2025, 10, 3, tzinfo=UTC)
    assert rewrite_verdict(UK_ABOUT_20, UK_EXACTLY_22, oct3, oct3, "uk").why != "different counts"
    got = ingest(pipeline, session, "about-20", "exactly-22")
    assert got["exactly-22"].cluster_id == got["about-20"].cluster_id
    # An exact 20 would have contradicted it.
    exact = "Україна повернула з окупації ще 20 дітей, повідомив 3 жовтня Андрій Єрмак."
    assert rewrite_verdict(exact, UK_EXACTLY_22, oct3, oct3, "uk").why == "different counts"


def test_one_quote_in_other_words_order_joins_two_outlets(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    feb12 = datetime(2026, 2, 12, tzinfo=UTC)
    outlets = ("first.example", "second.example")
    # Not a run of the same words: the quote is translated in another order.
    assert not shared_sentence(RU_QUOTED, RU_QUOTED_REORDERED)
    assert shared_quote(RU_QUOTED, RU_QUOTED_REORDERED, "ru")
    verdict = rewrite_verdict(RU_QUOTED, RU_QUOTED_REORDERED, feb12, feb12, "ru", outlets=outlets)
    assert verdict.why == "one quote"
    # Weeks apart, or from one outlet, the quote alone joins nothing.
    mar5 = datetime(2026, 3, 5, tzinfo=UTC)
    args = (RU_QUOTED, RU_QUOTED_REORDERED)
    assert not rewrite_verdict(*args, feb12, mar5, "ru", outlets=outlets).same
    assert not rewrite_verdict(*args, feb12, feb12, "ru", outlets=("a.example", "a.example")).same
    got = ingest(pipeline, session, "quoted", "quoted-reordered")
    assert got["quoted-reordered"].cluster_id == got["quoted"].cluster_id


def test_a_pages_dateline_is_not_the_storys_date(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    datelined = anchors(UK_THIRD_REUNION_DATELINED)
    # The day the page came out is still a date of the text, but not its lead's:
    # against the copy that names the statement's day, it was a contradiction.
    assert "02-13" in datelined.dates
    assert datelined.lead_dates == frozenset()
    assert anchors(UK_THIRD_REUNION).lead_dates == {"02-12"}
    feb12, feb13 = datetime(2026, 2, 12, tzinfo=UTC), datetime(2026, 2, 13, tzinfo=UTC)
    verdict = rewrite_verdict(UK_THIRD_REUNION, UK_THIRD_REUNION_DATELINED, feb12, feb13, "uk")
    assert verdict.why != "different counts"
    got = ingest(pipeline, session, "reunion", "reunion-datelined")
    assert got["reunion-datelined"].cluster_id == got["reunion"].cluster_id


def test_an_age_range_is_not_the_count(pipeline, session: Session) -> None:  # type: ignore[no-untyped-def]
    # "From 8 to 16 years" and "from 8 to 17 years" are the children's ages,
    # not two counts that contradict each other.
    assert anchors(UK_SEVEN_AGES_16).lead_counts == frozenset()
    assert anchors(UK_SEVEN_AGES_17).lead_counts == frozenset()
    assert {8, 16} <= anchors(UK_SEVEN_AGES_16).numbers
    got = ingest(pipeline, session, "ages-16", "ages-17")
    assert got["ages-17"].cluster_id == got["ages-16"].cluster_id
    # Ages listed one by one ("aged 13 and 15") are the story's own figures still.
    assert {13, 15} <= anchors("Two children, aged 13 and 15, came home.").lead_counts


def test_an_anchor_many_articles_carry_brings_no_candidates(  # type: ignore[no-untyped-def]
    pipeline, session: Session
) -> None:
    got = ingest(pipeline, session, "uk", "en")
    uk, en = got["uk"], got["en"]
    keys = lookup_keys(anchors(f"{uk.title}\n{uk.text}"), uk.published_at)
    usual = {"least": CANDIDATE_WEIGHT, "common": COMMON_ANCHOR_ARTICLES}
    assert story_candidates(session, keys, uk.id, **usual) == [en.id]
    # Counted as common when two articles of the day carry them, the shared
    # anchors (the count, the date, the names) say nothing, and are not read on.
    assert en.id not in story_candidates(session, keys, None, least=CANDIDATE_WEIGHT, common=2)


runner = CliRunner()


def test_a_story_shows_its_language_versions_everywhere(  # type: ignore[no-untyped-def]
    pipeline, session: Session, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", database_url)
    got = ingest(pipeline, session, "uk", "en", "ru", "later")
    uk, en, ru, later = got["uk"], got["en"], got["ru"], got["later"]
    story = uk.cluster_id

    shown = runner.invoke(app, ["show", str(en.id), "--format", "json"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["story"]["story_id"] == story
    assert [(v["id"], v["language"]) for v in record["story"]["language_versions"]] == [
        (uk.id, "uk"),
        (ru.id, "ru"),
    ]
    text = runner.invoke(app, ["show", str(en.id)], catch_exceptions=False).output
    assert f"story #{story}, also reported in:" in text
    assert f"#{ru.id} [ru] nv-ru" in text

    found = runner.invoke(app, ["search", "--format", "json"], catch_exceptions=False)
    assert found.exit_code == 0, found.output
    rows = json.loads(found.output)
    assert len(rows) == 2  # the story in three languages is one row; the later return another
    [three] = [r for r in rows if r["story_id"] == story]
    assert three["story_languages"] == ["en", "ru", "uk"]
    assert {m["id"] for m in three["story_members"]} == {uk.id, en.id, ru.id}
    [apart] = [r for r in rows if r["story_id"] != story]
    assert apart["id"] == later.id
    assert apart["story_languages"] == ["en"]

    exported = tmp_path / "all.csv"
    result = runner.invoke(
        app, ["export", "--format", "csv", "-o", str(exported)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    with exported.open(encoding="utf-8") as fh:
        story_of_row = {int(r["id"]): r["story_id"] for r in csv.DictReader(fh)}
    assert story_of_row == {
        uk.id: str(story),
        en.id: str(story),
        ru.id: str(story),
        later.id: str(later.cluster_id),
    }

    settings = load_settings(
        database_url=database_url, sources=REPO / "sources.toml", keywords=REPO / "keywords.toml"
    )
    with TestClient(create_app(settings)) as client:
        page = client.get(f"/articles/{en.id}").text
        assert "In other languages" in page
        assert f'href="/articles/{uk.id}"' in page
        assert f'href="/articles/{ru.id}"' in page
        listing = client.get("/").text
        assert listing.count(f'href="/articles/{later.id}"') == 1
        assert '<span class="tag lang">ru</span>' in listing


def _as_before_issue_23(session: Session, copy_id: int) -> None:
    """The archive as the dedup stage left it before rewrites and language versions:
    the reworded copy a story of its own, no groups, MinHash bands only."""
    session.execute(update(StoryCluster).values(language_group_id=None, language_score=None))
    alone = StoryCluster(first_seen_at=datetime(2025, 9, 10, tzinfo=UTC))
    session.add(alone)
    session.flush()
    copy = session.get_one(Article, copy_id)
    copy.cluster_id, copy.duplicate_of, copy.similarity = alone.id, None, None
    alone.first_article_id = copy.id
    for article in session.scalars(select(Article)):
        keep = set(band_keys(article.minhash)) if article.minhash else set()
        session.execute(
            delete(LshBand).where(LshBand.article_id == article.id, LshBand.band_key.not_in(keep))
        )
    session.commit()


def test_relink_brings_an_old_archive_up_to_date_once(  # type: ignore[no-untyped-def]
    pipeline, session: Session, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", database_url)
    got = ingest(pipeline, session, "uk", "copy", "en", "later")
    uk, copy, en, later = got["uk"], got["copy"], got["en"], got["later"]
    _as_before_issue_23(session, copy.id)
    assert archived(session)["copy"].cluster_id != uk.cluster_id
    assert group_of(session, en) is None

    result = runner.invoke(app, ["relink"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Relinked 4 articles: 1 rewrites joined their story, 1 stories linked" in result.output
    got = archived(session)
    assert got["copy"].cluster_id == uk.cluster_id
    assert group_of(session, got["en"]) == uk.cluster_id
    assert group_of(session, got["later"]) is None
    assert session.scalar(select(func.count(StoryCluster.id))) == 3  # the copy's own is gone
    state = sorted(session.execute(select(Article.id, Article.cluster_id)).all())

    again = runner.invoke(app, ["relink"], catch_exceptions=False)
    assert "Relinked 4 articles: 0 rewrites joined their story, 0 stories linked" in again.output
    session.expire_all()
    assert sorted(session.execute(select(Article.id, Article.cluster_id)).all()) == state
    resumed = runner.invoke(app, ["relink", "--after", str(en.id)], catch_exceptions=False)
    assert f"Relinked {later.id - en.id} articles" in resumed.output

    bad = runner.invoke(app, ["relink", "--after", "-1"])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines()[-1].startswith("error:")


def test_relink_applies_the_lemma_and_outlet_rules(  # type: ignore[no-untyped-def]
    pipeline, session: Session, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPORTWATCH_DATABASE_URL", database_url)
    got = ingest(pipeline, session, "return", "retold", "edition-uk", "edition-ru")
    _as_before_issue_23(session, got["retold"].id)
    assert group_of(session, got["edition-ru"]) is None
    result = runner.invoke(app, ["relink"], catch_exceptions=False)
    assert "Relinked 4 articles: 1 rewrites joined their story, 1 stories linked" in result.output
    got = archived(session)
    assert got["retold"].cluster_id == got["return"].cluster_id
    assert group_of(session, got["edition-ru"]) == got["edition-uk"].cluster_id


def test_ingest_benchmark_finds_rewrites_and_translations_and_keeps_its_archives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dedup_ingest, "PROBES", 60)
    argv = ["dedup_ingest", "--sizes", "300", "500", "--rounds", "2", "--keep", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    outputs, filled = [], []
    for _ in range(2):  # the second run measures the archives the first one filled
        dedup_ingest.main()
        outputs.append(capsys.readouterr().out)
        # The probes went into copies: only the filled archives are left.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["archive-300.db", "archive-500.db"]
        filled.append([(tmp_path / f"archive-{n}.db").stat().st_mtime_ns for n in (300, 500)])
    assert filled[0] == filled[1]
    for out in outputs:
        assert "median of 2 rounds" in out
        rows = [line.split() for line in out.splitlines() if len(line.split()) == 10]
        assert [row[0] for row in rows] == ["300", "500"]
        for row in rows:
            assert float(row[2]) > 0  # ms per article
            assert row[3] == "1.00x" if row[0] == "300" else row[3].endswith("x")
            assert row[6:] == ["1.000"] * 4  # copies and versions: precision, recall
    assert [row.split()[1] for row in outputs[1].splitlines()[-2:]] == ["0", "0"]  # no fill
