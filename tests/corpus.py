"""A small hand-made archive: one story carried by two outlets, Ukrainian and Russian
reports, an unflagged article. Shared by the search and web view tests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from db.models import Article, ArticleVersion, FlagMatch, SourceRow, StoryCluster
from db.repository.runs import ensure_source

HOSTILE_TITLE = '<script>alert("title")</script> Children taken to Crimea'
HOSTILE_TEXT = (
    "They deported 40 children <img src=x onerror=alert(1)> from Kherson.\n"
    '<a href="javascript:alert(2)">read more</a>'
)


class Corpus:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.n = 0

    def add(
        self,
        source: SourceRow,
        title: str,
        text: str,
        *,
        language: str = "en",
        published: str = "2023-06-15",
        categories: str | None = None,
        cluster: StoryCluster | None = None,
        url: str | None = None,
    ) -> Article:
        self.n += 1
        if cluster is None:
            cluster = StoryCluster(first_seen_at=datetime.now(UTC))
            self.session.add(cluster)
            self.session.flush()
        article = Article(
            source_id=source.id,
            url=url or f"https://{source.name}.example/{self.n}",
            canonical_url=f"https://{source.name}.example/{self.n}",
            title=title,
            text=text,
            content_hash=f"{self.n:064d}",
            language=language,
            published_at=datetime.fromisoformat(published).replace(tzinfo=UTC),
            flagged=categories is not None,
            flag_categories=categories,
            cluster_id=cluster.id,
        )
        self.session.add(article)
        self.session.commit()
        return article


@pytest.fixture
def corpus(session: Session) -> dict[str, Article]:
    c = Corpus(session)
    ki, nv = (
        ensure_source(session, "kyiv-independent", "feed"),
        ensure_source(session, "nv-en", "feed"),
    )
    om = ensure_source(session, "ombudsman-uk", "listing")
    kherson = c.add(
        ki,
        "Russia deported children from Kherson",
        "Russian forces deported children from occupied Kherson Oblast to Crimea.",
        categories="deportation,children",
        published="2023-04-07",
    )
    copy = c.add(
        nv,
        "Russia deported children from Kherson, officials say",
        "Russian forces deported children from occupied Kherson Oblast to Crimea, officials said.",
        categories="deportation,children",
        published="2023-04-08",
        cluster=kherson.cluster,
    )
    skadovsk = c.add(
        om,
        "Окупанти депортували дітей зі Скадовська",
        "Омбудсман: окупанти вивезли 46 дітей зі Скадовська до Криму. Діти повернулися додому.",
        language="uk",
        categories="deportation,return",
        published="2023-09-27",
    )
    camp = c.add(
        nv,
        "Детей вывезли в оздоровительный лагерь",
        "Российские власти вывезли детей из Херсона в так называемый оздоровительный лагерь.",
        language="ru",
        categories="camps",
        published="2023-10-02",
    )
    power = c.add(
        ki,
        "Power restored in Kharkiv",
        "Children deported? No: this is about the power grid of Kharkiv after a strike.",
        published="2023-11-01",
    )
    return {"kherson": kherson, "copy": copy, "skadovsk": skadovsk, "camp": camp, "power": power}


@pytest.fixture
def hostile(session: Session) -> Article:
    """A flagged article with hostile markup, a javascript: URL, evidence and a version."""
    source = ensure_source(session, "ukrinform-en", "feed")
    article = Corpus(session).add(
        source,
        HOSTILE_TITLE,
        HOSTILE_TEXT,
        categories="deportation",
        published="2023-05-01",
        url="javascript:alert(3)",
    )
    start = HOSTILE_TEXT.index("deported")
    session.add_all(
        [
            FlagMatch(
                article_id=article.id,
                category="deportation",
                rule="deport-en",
                term="deported",
                field="text",
                start=start,
                end=start + len("deported"),
                snippet="They **deported** 40 children <img src=x onerror=alert(1)>",
                weight=1.0,
            ),
            ArticleVersion(
                article_id=article.id,
                title=HOSTILE_TITLE,
                text="They moved 40 children from Kherson.",
                content_hash="0" * 64,
                seen_from=datetime(2023, 5, 1, 8, tzinfo=UTC),
                seen_until=datetime(2023, 5, 1, 9, tzinfo=UTC),
            ),
        ]
    )
    session.commit()
    return article
