"""The read-only web view, through FastAPI's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import fastapi.routing
import feedparser
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from db.models import Article, CounterReading, CrawlRun
from db.repository.runs import ensure_source
from deportwatch.config.settings import load_settings
from deportwatch.web import pages
from deportwatch.web.app import create_app
from tests.conftest import REPO
from tests.corpus import HOSTILE_TITLE, Corpus
from tests.helpers import ServedView, free_port, run_cli


def make_app(database_url: str) -> FastAPI:
    settings = load_settings(
        database_url=database_url,
        sources=REPO / "sources.toml",
        keywords=REPO / "keywords.toml",
    )
    return create_app(settings)


@pytest.fixture
def client(database_url: str, corpus: dict[str, Article], hostile: Article) -> Iterator[TestClient]:
    with TestClient(make_app(database_url)) as test_client:
        yield test_client


def registered_routes(app: FastAPI) -> list[tuple[str, set[str]]]:
    """Every route's path and methods, those of included routers too: newer FastAPI
    keeps an included router as one entry of ``app.routes``. A mount has no methods."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = iterate(app.routes) if iterate else app.routes
    return [(route.path, set(route.methods or ())) for route in routes]


def article_ids(html: str) -> list[int]:
    """The archive ids a page links to, in page order, each once."""
    return list(dict.fromkeys(int(i) for i in re.findall(r'href="/articles/(\d+)"', html)))


def test_search_page_runs_queries_and_filters(
    client: TestClient, corpus: dict[str, Article]
) -> None:
    page = client.get("/", params={"q": "Скадовська"})
    assert page.status_code == 200
    assert article_ids(page.text) == [corpus["skadovsk"].id]
    assert "<mark>Скадовська</mark>" in page.text or "<mark>Скадовська" in page.text
    assert 'value="Скадовська"' in page.text  # the form keeps the query
    filtered = client.get("/", params={"flagged": "true", "source": "nv-en", "all_copies": "true"})
    assert sorted(article_ids(filtered.text)) == sorted([corpus["copy"].id, corpus["camp"].id])
    by_language = client.get("/", params={"lang": "ru"})
    assert article_ids(by_language.text) == [corpus["camp"].id]
    dated = client.get("/", params={"since": "2023-09-01", "until": "2023-09-30", "lang": ""})
    assert article_ids(dated.text) == [corpus["skadovsk"].id]
    # One row per story: the Kherson story's two copies are one result naming both outlets.
    story = client.get("/", params={"q": "Kherson Crimea"})
    assert len(set(article_ids(story.text)) & {corpus["kherson"].id, corpus["copy"].id}) == 1
    assert "kyiv-independent, nv-en" in story.text
    assert "2 copies" in story.text


def test_search_pages_through_results(client: TestClient, session: Session) -> None:
    source = ensure_source(session, "suspilne", "feed")
    corpus = Corpus(session)
    for n in range(25):
        corpus.add(
            source, f"Bulletin {n}", f"Evacuation bulletin number {n}", published="2022-01-01"
        )
    first = client.get("/", params={"q": "bulletin"})
    assert len(article_ids(first.text)) == 20
    assert 'rel="next"' in first.text
    assert 'rel="prev"' not in first.text
    second = client.get("/", params={"q": "bulletin", "page": 2})
    assert len(article_ids(second.text)) == 5
    assert 'rel="next"' not in second.text
    assert 'rel="prev"' in second.text
    assert not set(article_ids(first.text)) & set(article_ids(second.text))
    api = [
        client.get("/api/search", params={"q": "bulletin", "per_page": 10, "page": n}).json()
        for n in (1, 2, 3)
    ]
    assert [len(r["results"]) for r in api] == [10, 10, 5]
    assert [r["has_more"] for r in api] == [True, True, False]
    assert len({r["id"] for page in api for r in page["results"]}) == 25


def test_flagged_feed_groups_stories_with_every_outlet_newest_first(
    client: TestClient, corpus: dict[str, Article], hostile: Article
) -> None:
    page = client.get("/flagged")
    assert page.status_code == 200
    stories = re.findall(r'<h3><a href="/articles/(\d+)"', page.text)
    kherson_story = {corpus["kherson"].id, corpus["copy"].id}
    assert len(stories) == 4  # camp, skadovsk, hostile, kherson: newest first
    assert [int(s) for s in stories[:3]] == [corpus["camp"].id, corpus["skadovsk"].id, hostile.id]
    assert int(stories[3]) in kherson_story
    # Both outlets of the Kherson story are listed, each with its own link.
    assert kherson_story <= set(article_ids(page.text))
    assert "https://kyiv-independent.example/" in page.text
    assert "https://nv-en.example/" in page.text
    camps = client.get("/flagged", params={"category": "camps"})
    assert re.findall(r'<h3><a href="/articles/(\d+)"', camps.text) == [str(corpus["camp"].id)]
    assert client.get("/flagged", params={"category": "nope"}).status_code == 400


def test_article_page_shows_evidence_story_and_versions(
    client: TestClient, corpus: dict[str, Article], hostile: Article
) -> None:
    page = client.get(f"/articles/{corpus['kherson'].id}")
    assert page.status_code == 200
    assert "Same story elsewhere" in page.text
    assert f'href="/articles/{corpus["copy"].id}"' in page.text
    page = client.get(f"/articles/{hostile.id}").text
    assert "They <mark>deported</mark> 40 children" in page  # the match, marked in the body
    assert "Earlier versions (1)" in page
    assert '<span class="removed">-They moved 40 children from Kherson.</span>' in page
    assert '<span class="added">+They deported 40 children &lt;img' in page


def test_hostile_text_is_inert(client: TestClient, hostile: Article) -> None:
    for path in (f"/articles/{hostile.id}", "/?q=Crimea", "/flagged"):
        response = client.get(path)
        page = response.text
        assert "<script>alert" not in page, path
        assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in page, path
        assert "<img src=x" not in page, path
        assert 'href="javascript:' not in page.lower(), path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        # The only scripts are the bundled one; nothing comes from another host.
        assert re.findall(r"<script[^>]*>", page) == [
            '<script src="http://testserver/static/localtime.js" defer>'
        ]
    article = client.get(f"/articles/{hostile.id}").text
    assert "javascript:alert(3)" in article  # shown as text, not as a link


def test_sources_page_shows_health_and_runs(
    client: TestClient, session: Session, corpus: dict[str, Article]
) -> None:
    source = ensure_source(session, "nv-en", "feed")
    for outcome in ("failed", "failed", "failed"):
        session.add(
            CrawlRun(
                source_id=source.id,
                outcome=outcome,
                finished_at=datetime.now(UTC),
                error_text="HTTP 503 from https://nv.ua/eng/rss <b>",
            )
        )
    session.commit()
    page = client.get("/sources").text
    row = re.search(r'<tr class="unhealthy">.*?</tr>', page, re.S)
    assert row is not None
    assert "nv-en" in row.group(0)
    assert "3 crawls in a row failed" in row.group(0)
    assert "HTTP 503 from https://nv.ua/eng/rss &lt;b&gt;" in page
    api = {s["name"]: s for s in client.get("/api/sources").json()}
    assert api["nv-en"]["state"] == "unhealthy"
    assert [r["outcome"] for r in api["nv-en"]["runs"]] == ["failed"] * 3
    assert api["children-of-war"]["runs"] == []


def test_sources_page_shows_where_a_crawl_runs_and_the_queue(
    database_url: str, session: Session, corpus: dict[str, Article]
) -> None:
    source = ensure_source(session, "nv-en", "feed")
    session.add(CrawlRun(source_id=source.id, outcome="running", host="worker-3", pid=4242))
    session.commit()
    with TestClient(make_app(database_url)) as client:
        page = client.get("/sources").text
        assert "on worker-3, pid 4242" in page
        assert "Crawls waiting in the queue" not in page  # no broker: no queue
        api = {s["name"]: s for s in client.get("/api/sources").json()}
        assert (api["nv-en"]["runs"][0]["host"], api["nv-en"]["runs"][0]["pid"]) == (
            "worker-3",
            4242,
        )
    settings = load_settings(
        database_url=database_url,
        sources=REPO / "sources.toml",
        keywords=REPO / "keywords.toml",
        broker_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    )
    with TestClient(create_app(settings)) as client:
        page = client.get("/sources").text
        assert (
            "Crawls waiting in the queue for a worker: unknown (the broker does not answer)" in page
        )


def test_figures_page_draws_the_counters(client: TestClient, session: Session) -> None:
    source = ensure_source(session, "children-of-war", "counters")
    for day, deported, returned in ((1, 19_500, 380), (15, 19_546, 386), (30, 19_600, 390)):
        for metric, value in (("deported", deported), ("returned", returned)):
            session.add(
                CounterReading(
                    source_id=source.id,
                    metric=metric,
                    label=f"{metric} <b>",
                    value=value,
                    as_of=date(2023, 10, day),
                    fetched_at=datetime(2023, 10, day, tzinfo=UTC),
                    url="https://childrenofwar.gov.ua/en/",
                )
            )
    session.commit()
    page = client.get("/figures").text
    assert page.count("<polyline") == 2
    assert "<title>deported: 19\u202f546 on 2023-10-15</title>" in page
    assert '<td class="num">19,600</td>' in page
    assert "deported &lt;b&gt;" in page
    only = client.get("/figures", params={"metric": "returned", "since": "2023-10-10"}).text
    assert only.count("<polyline") == 1
    assert only.count("<circle") == 2
    bad = client.get("/figures", params={"metric": "nope"})
    assert bad.status_code == 400
    assert "unknown metric 'nope' (known: deported, returned)" in html.unescape(bad.text)
    api = client.get("/api/figures", params={"metric": "deported"}).json()
    assert [r["value"] for r in api] == [19_500, 19_546, 19_600]


def test_atom_feeds_parse_and_escape(
    client: TestClient, corpus: dict[str, Article], hostile: Article
) -> None:
    response = client.get("/feeds/flagged.atom")
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert len(feed.entries) == 4  # one per story
    titles = [e.title for e in feed.entries]
    assert HOSTILE_TITLE in titles  # text, escaped in the XML
    hostile_entry = feed.entries[titles.index(HOSTILE_TITLE)]
    assert [link.href for link in hostile_entry.links] == [
        f"http://testserver/articles/{hostile.id}"
    ]
    camps = feedparser.parse(client.get("/feeds/flagged/camps.atom").content)
    assert [e.title for e in camps.entries] == [corpus["camp"].title]
    unknown = client.get("/feeds/flagged/nope.atom")
    assert unknown.status_code == 400
    assert "unknown category 'nope'" in unknown.text


def test_api_mirrors_search_and_show(
    client: TestClient, corpus: dict[str, Article], hostile: Article
) -> None:
    found = client.get("/api/search", params={"q": "children", "flagged": "true"}).json()
    [first, *_] = found["results"]
    assert {"id", "url", "canonical_url", "published_at", "first_seen_at", "language"} <= set(first)
    assert {"cluster_id", "flag_categories", "matches", "story_members", "snippet"} <= set(first)
    shown = client.get(f"/api/articles/{hostile.id}").json()
    assert shown["title"] == HOSTILE_TITLE
    assert shown["matches"][0]["term"] == "deported"
    assert len(shown["versions"]) == 1
    assert "-They moved 40 children from Kherson." in shown["diffs"][0]
    missing = client.get("/api/articles/999999")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no article with id 999999", "status": 404}
    schema = client.get("/api/openapi.json").json()
    assert {"/api/search", "/api/articles/{article_id}", "/api/sources", "/api/figures"} <= set(
        schema["paths"]
    )
    names = {p["name"] for p in schema["paths"]["/api/search"]["get"]["parameters"]}
    assert {"q", "flagged", "category", "source", "lang", "since", "until", "page"} <= names
    index = client.get("/api").text
    assert "GET /api/search" in index


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/?page=0", "page: Input should be greater than or equal to 1"),
        ("/?page=two", "page: Input should be a valid integer"),
        ("/?lang=de", "unknown language 'de' (known: uk, ru, en)"),
        ("/?source=nowhere", "unknown source 'nowhere'"),
        ("/?q=%22open", "a phrase is not closed"),
        ("/?since=yesterdayish", "date 'yesterdayish' not understood"),
        ("/articles/abc", "article_id: Input should be a valid integer"),
        ("/articles/99999999999999999999", "article_id: Input should be less than or equal"),
        ("/api/search?q=OR", "OR needs a term on each side"),
        ("/api/search?per_page=1000", "per_page: Input should be less than or equal to 100"),
    ],
)
def test_bad_parameters_are_clear_400s(client: TestClient, path: str, message: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    assert "Traceback" not in response.text
    if path.startswith("/api"):
        assert response.json()["status"] == 400


def test_unknown_pages_and_writes_are_refused(client: TestClient) -> None:
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert "Not Found" in missing.text
    assert client.post("/", data={"q": "x"}).status_code == 405
    assert client.delete("/api/articles/1").status_code == 405
    app = client.app
    assert isinstance(app, FastAPI)
    routes = registered_routes(app)
    assert len(routes) > 12
    for path, methods in routes:
        assert methods <= {"GET", "HEAD"}, path


def test_every_get_route_answers_head_with_the_same_headers_and_no_body(
    client: TestClient, hostile: Article
) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    values = {"article_id": str(hostile.id), "category": "deportation"}
    paths = ["/static/style.css", "/nowhere", "/api/search?lang=xx"]  # a file, a 404, a 400
    for template, methods in registered_routes(app):
        if "GET" not in methods:
            continue
        path = template
        for name in re.findall(r"{(\w+)}", template):
            assert name in values, f"no test value for {{{name}}} in {template}"
            path = path.replace(f"{{{name}}}", values[name])
        paths.append(path)
    assert len(paths) > 12
    for path in paths:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code, path
        assert get.status_code in (200, 400, 404), path
        assert head.headers == get.headers, path
        assert int(head.headers["content-length"]) == len(get.content) > 0, path
        assert head.content == b"", path


def test_the_database_refuses_writes_from_the_view(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    with pytest.raises(DBAPIError, match=r"(?i)read.?only"), app.state.engine.begin() as conn:
        conn.execute(text("UPDATE articles SET title = 'changed'"))


def test_unexpected_errors_are_one_line(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(pages, "sources_view", broken)
    response = client.get("/sources")
    assert response.status_code == 500
    assert "internal error" in response.text
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text


def test_a_missing_archive_is_a_clear_503_and_stays_missing(tmp_path: Path) -> None:
    archive = tmp_path / "none" / "archive.db"
    with TestClient(make_app(f"sqlite:///{archive}")) as client:
        page = client.get("/")
        api = client.get("/api/search")
    assert page.status_code == 503
    assert "The archive cannot be read" in page.text
    assert api.status_code == 503
    assert api.json()["error"].startswith("The archive cannot be read")
    assert not archive.exists()


@pytest.mark.e2e
def test_serve_command_answers_and_stops_on_sigterm(
    database_url: str, corpus: dict[str, Article], tmp_path: Path
) -> None:
    view = ServedView(database_url, tmp_path)
    try:
        status, page = view.get("/?q=" + quote("Скадовська"))
        assert status == 200
        assert article_ids(page) == [corpus["skadovsk"].id]
        status, body = view.get("/api/search?lang=xx")
        assert status == 400
        assert "unknown language 'xx'" in body
        # What `curl -I` and uptime monitors ask: the page's headers, no body.
        status, headers, body = view.head("/")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert int(headers["Content-Length"]) > 0
        assert body == b""
    finally:
        code = view.stop()
    log = view.log.read_text()
    assert code == 0, log
    assert "Serving the archive read-only at http://127.0.0.1:" in log
    assert "Traceback" not in log


@pytest.mark.e2e
def test_serve_refuses_a_taken_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            ["serve", "--port", str(port)],
            f"sqlite:///{tmp_path / 'archive.db'}",
            REPO / "sources.toml",
            tmp_path,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
