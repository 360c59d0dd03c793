"""End to end: the real ``deportwatch`` command in a subprocess, real HTTP, real database."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import make_engine, make_sessionmaker
from db.models import Article, CrawlRun, SourceRow
from tests.conftest import WEB, LoopbackSite
from tests.helpers import feed, run_cli

pytestmark = pytest.mark.e2e
KI = WEB / "kyivindependent.com"
NRC = "national-resistance-center-russia-moves-deported-ukrainians-to-55-distant-regions"
KHARKIV = "power-restored-to-most-of-kharkiv-after-overnight-strike-on-substation"
CHROME = ["News Feed", "Enter your email", "Editors' Picks", "MORE NEWS", "Skip to content"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def loopback_outlet(site: LoopbackSite, tmp_path: Path) -> Path:
    """A loopback outlet serving two Kyiv Independent snapshot pages and its feed."""
    for slug in (NRC, KHARKIV):
        site.write(f"/news/{slug}/", (KI / slug / "index.html").read_bytes())
    site.write(
        "/feed.xml",
        feed(
            site.base,
            [
                (
                    f"/news/{NRC}/",
                    "NRC: deported Ukrainians moved",
                    "Fri, 07 Apr 2023 15:37:50 GMT",
                ),
                (
                    f"/news/{KHARKIV}/?utm_source=rss",
                    "Kharkiv power",
                    "Fri, 07 Apr 2023 12:10:04 GMT",
                ),
            ],
        ),
    )
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f'[[source]]\nname = "loopback"\nkind = "feed"\n'
        f'start_urls = ["{site.base}/feed.xml"]\nlanguages = ["en"]\n'
    )
    return sources


def articles(database_url: str) -> list[Article]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        rows = list(session.scalars(select(Article).order_by(Article.published_at)))
    engine.dispose()
    return rows


def runs(database_url: str) -> list[tuple[str, CrawlRun]]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        rows = [
            (name, run)
            for name, run in session.execute(
                select(SourceRow.name, CrawlRun).join(CrawlRun.source).order_by(CrawlRun.id)
            )
        ]
    engine.dispose()
    return rows


def test_crawl_a_loopback_feed_into_the_archive(
    database_url: str, loopback_outlet: Path, site: LoopbackSite, tmp_path: Path
) -> None:
    result = run_cli(["crawl", "loopback"], database_url, loopback_outlet, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "loopback" in result.stdout
    assert "ok" in result.stdout

    rows = articles(database_url)
    assert len(rows) == 2
    kharkiv, nrc = rows
    assert (
        nrc.title
        == "National Resistance Center: Russia moves deported Ukrainians to 55 distant regions"
    )
    assert nrc.published_at == datetime(2023, 4, 7, 15, 37, 50, tzinfo=UTC)
    assert nrc.date_origin == "page-meta"
    assert nrc.language == "en"
    assert nrc.author == "The Kyiv Independent news desk"
    assert nrc.text.startswith("Russia is sending Ukrainians deported from occupied territories")
    # The page's canonical link names another host, so the served URL is the key.
    assert nrc.canonical_url == f"{site.base}/news/{NRC}"
    assert kharkiv.url == f"{site.base}/news/{KHARKIV}/?utm_source=rss"
    assert kharkiv.canonical_url == f"{site.base}/news/{KHARKIV}"
    assert kharkiv.published_at == datetime(2023, 4, 7, 12, 10, 4, tzinfo=UTC)
    for row in rows:
        for chrome in CHROME:
            assert chrome not in row.text
    assert nrc.flagged is True
    assert "deportation" in (nrc.flag_categories or "")
    assert kharkiv.flagged is False

    [(name, run)] = runs(database_url)
    assert name == "loopback"
    assert (run.outcome, run.pages, run.articles_new, run.errors) == ("ok", 4, 2, 0)
    assert run.articles_flagged == 1
    assert run.finished_at is not None

    # A second crawl adds no row, marks both seen, and records its own run.
    again = run_cli(["crawl", "loopback"], database_url, loopback_outlet, tmp_path)
    assert again.returncode == 0, again.stderr
    rows_after = articles(database_url)
    assert [r.id for r in rows_after] == [r.id for r in rows]
    assert all(
        after.last_seen_at > before.last_seen_at
        for before, after in zip(rows, rows_after, strict=True)
    )
    second = runs(database_url)[-1][1]
    assert (second.articles_new, second.articles_unchanged, second.articles_flagged) == (0, 2, 0)


def test_unreachable_source_is_a_summary_row_and_others_still_run(
    database_url: str, loopback_outlet: Path, tmp_path: Path
) -> None:
    sources = tmp_path / "two.toml"
    sources.write_text(
        loopback_outlet.read_text() + f'\n[[source]]\nname = "down"\nkind = "feed"\n'
        f'start_urls = ["http://127.0.0.1:{closed_port()}/feed.xml"]\nlanguages = ["uk"]\n'
    )
    result = run_cli(["crawl", "--all"], database_url, sources, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "down: http://127.0.0.1:" in result.stdout
    assert "connection refused" in result.stdout
    outcomes = {name: run.outcome for name, run in runs(database_url)}
    assert outcomes == {"loopback": "ok", "down": "failed"}
    down = next(run for name, run in runs(database_url) if name == "down")
    assert down.error_text is not None
    assert "connection refused" in down.error_text
    assert len(articles(database_url)) == 2


def test_every_source_failing_exits_1_with_the_reasons_in_words(tmp_path: Path) -> None:
    sources = tmp_path / "down.toml"
    sources.write_text(
        f'[[source]]\nname = "down"\nkind = "feed"\n'
        f'start_urls = ["http://127.0.0.1:{closed_port()}/feed.xml"]\nlanguages = ["uk"]\n'
    )
    result = run_cli(["crawl", "--all"], f"sqlite:///{tmp_path / 'a.db'}", sources, tmp_path)
    assert result.returncode == 1
    assert "failed" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    # The summary says it once, in words; Scrapy's per-request lines (retries,
    # "Gave up retrying", "Error downloading") go to the crawl log only.
    assert "down: http://127.0.0.1:" in result.stdout
    assert "connection refused" in result.stdout
    assert result.stderr.strip() == ""
    log = (tmp_path / "logs" / "crawl.log").read_text()
    assert "[scrapy" in log
    assert "Gave up retrying" in log

    verbose = run_cli(
        ["crawl", "--all", "--verbose"], f"sqlite:///{tmp_path / 'a.db'}", sources, tmp_path
    )
    assert verbose.returncode == 1
    assert "Gave up retrying" in verbose.stdout + verbose.stderr


def test_server_errors_are_counted_not_fatal(
    database_url: str, site: LoopbackSite, loopback_outlet: Path, tmp_path: Path
) -> None:
    # One entry points at a page that does not exist: the run is partial, not failed.
    site.write(
        "/feed.xml",
        feed(
            site.base,
            [(f"/news/{NRC}/", "t", "Fri, 07 Apr 2023 15:37:50 GMT"), ("/news/gone/", "g", "")],
        ),
    )
    result = run_cli(["crawl", "loopback"], database_url, loopback_outlet, tmp_path)
    assert result.returncode == 0
    [(_, run)] = runs(database_url)
    assert (run.outcome, run.articles_new, run.errors) == ("partial", 1, 1)
    assert run.error_text == f"{site.base}/news/gone/: HTTP 404 Not Found"


def test_malformed_sources_file_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "sources.toml"
    bad.write_text(
        '[[source]]\nname = "ki"\nkind = "feed"\nstart_urls = "https://x.org/"\nlanguages = ["en"]\n'
    )
    result = run_cli(["crawl", "--all"], f"sqlite:///{tmp_path / 'a.db'}", bad, tmp_path)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert lines == [
        f"error: {bad}: source 'ki': field 'start_urls': Input should be a valid tuple"
    ]


def test_server_errors_are_retried_with_growing_delays(
    site: LoopbackSite, loopback_outlet: Path, tmp_path: Path
) -> None:
    site.fail("/feed.xml", 503, 502)
    env_url = f"sqlite:///{tmp_path / 'a.db'}"
    result = run_cli(
        ["crawl", "loopback"],
        env_url,
        loopback_outlet,
        tmp_path,
        retry_times="2",
        retry_backoff="0.4",
    )
    assert result.returncode == 0, result.stderr
    attempts = site.times("/feed.xml")
    assert len(attempts) == 3
    first_wait, second_wait = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert first_wait >= 0.4  # RETRY_BACKOFF
    assert second_wait >= 0.8  # doubled
    [(_, run)] = runs(env_url)
    assert (run.outcome, run.articles_new) == ("ok", 2)


def test_robots_txt_is_obeyed(site: LoopbackSite, loopback_outlet: Path, tmp_path: Path) -> None:
    site.write("/robots.txt", f"User-agent: *\nDisallow: /news/{KHARKIV}/\n")
    env_url = f"sqlite:///{tmp_path / 'a.db'}"
    result = run_cli(["crawl", "loopback"], env_url, loopback_outlet, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not any(KHARKIV in path for path, _ in site.requests)
    assert [a.title for a in articles(env_url)] == [
        "National Resistance Center: Russia moves deported Ukrainians to 55 distant regions"
    ]
    [(_, run)] = runs(env_url)
    assert run.outcome == "partial"
    assert run.error_text == f"{site.base}/news/{KHARKIV}/?utm_source=rss: forbidden by robots.txt"


def test_two_outlets_carrying_the_same_stories_make_clusters(
    database_url: str, site: LoopbackSite, tmp_path: Path
) -> None:
    """An outlet and a syndicator carry the same two stories at different URLs,
    the syndicator with its own boilerplate; one crawl groups them by story."""
    nrc = (KI / NRC / "index.html").read_text(encoding="utf-8")
    kharkiv = (KI / KHARKIV / "index.html").read_text(encoding="utf-8")
    trailer = "<p>Read the original article on The Kyiv Independent.</p><p>Follow us for more.</p>"
    site.write(f"/outlet/{NRC}/", nrc)
    site.write(f"/outlet/{KHARKIV}/", kharkiv)
    site.write(
        "/syndicator/story-1/", nrc.replace("</div>\n</article>", trailer + "</div>\n</article>")
    )
    site.write(
        "/syndicator/story-2/",
        kharkiv.replace("</div>\n</article>", trailer + "</div>\n</article>"),
    )
    date = "Fri, 07 Apr 2023 15:37:50 GMT"
    site.write(
        "/outlet/feed.xml",
        feed(site.base, [(f"/outlet/{NRC}/", "a", date), (f"/outlet/{KHARKIV}/", "b", date)]),
    )
    site.write(
        "/syndicator/feed.xml",
        feed(site.base, [("/syndicator/story-1/", "a", date), ("/syndicator/story-2/", "b", date)]),
    )
    sources = tmp_path / "sources.toml"
    sources.write_text(
        "".join(
            f'[[source]]\nname = "{name}"\nkind = "feed"\nstart_urls = ["{site.base}/{name}/feed.xml"]\nlanguages = ["en"]\n\n'
            for name in ("outlet", "syndicator")
        )
    )
    result = run_cli(["crawl", "outlet"], database_url, sources, tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_cli(["crawl", "syndicator"], database_url, sources, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "duplicate" in result.stdout

    rows = articles(database_url)
    assert len(rows) == 4
    by_url = {r.url.removeprefix(site.base): r for r in rows}
    assert by_url["/syndicator/story-1/"].cluster_id == by_url[f"/outlet/{NRC}/"].cluster_id
    assert by_url["/syndicator/story-2/"].cluster_id == by_url[f"/outlet/{KHARKIV}/"].cluster_id
    assert by_url[f"/outlet/{NRC}/"].cluster_id != by_url[f"/outlet/{KHARKIV}/"].cluster_id
    assert by_url["/syndicator/story-1/"].duplicate_of == by_url[f"/outlet/{NRC}/"].id
    syndicator_run = runs(database_url)[-1][1]
    assert (syndicator_run.articles_new, syndicator_run.articles_duplicate) == (0, 2)


def paths(site: LoopbackSite) -> list[str]:
    return [path for path, _ in site.requests if path != "/robots.txt"]


def test_unchanged_feed_answers_304_and_nothing_is_refetched(
    database_url: str, site: LoopbackSite, loopback_outlet: Path, tmp_path: Path
) -> None:
    site.etags = True
    assert run_cli(["crawl", "loopback"], database_url, loopback_outlet, tmp_path).returncode == 0
    assert len(paths(site)) == 3  # the feed and its two articles
    first_seen = {a.id: a.last_seen_at for a in articles(database_url)}
    site.requests.clear()

    result = run_cli(["crawl", "loopback"], database_url, loopback_outlet, tmp_path)
    assert result.returncode == 0, result.stderr
    assert paths(site) == ["/feed.xml"]  # answered 304; no article fetched
    later = articles(database_url)
    assert all(a.last_seen_at > first_seen[a.id] for a in later)  # still listed: seen
    run = runs(database_url)[-1][1]
    assert (run.outcome, run.articles_new, run.articles_unchanged) == ("ok", 0, 2)


def test_changed_feed_fetches_only_new_entries_outside_the_recheck_window(
    database_url: str, site: LoopbackSite, loopback_outlet: Path, tmp_path: Path
) -> None:
    assert run_cli(["crawl", "loopback"], database_url, loopback_outlet, tmp_path).returncode == 0
    returns = "ombudsman-31-children-brought-back-to-ukraine"
    site.write(f"/news/{returns}/", (KI / returns / "index.html").read_bytes())
    old_feed = (site.root / "site" / "feed.xml").read_text()
    new_item = f"<item><title>Returned</title><link>{site.base}/news/{returns}/</link><pubDate>Thu, 06 Apr 2023 19:02:33 GMT</pubDate></item>"
    # The other entries' dates churn, as on some sites; their titles do not change.
    churned = old_feed.replace("Fri, 07 Apr 2023", "Sat, 08 Apr 2023")
    site.write(
        "/feed.xml",
        churned.replace("<channel><title>t</title>", "<channel><title>t</title>" + new_item),
    )
    site.requests.clear()

    env_cli = run_cli(
        ["crawl", "loopback"], database_url, loopback_outlet, tmp_path, recheck_minutes="0"
    )
    assert env_cli.returncode == 0
    # Within the 48-hour re-check window every entry is fetched again (edits come early)...
    assert len(paths(site)) == 4

    site.requests.clear()
    site.write(
        "/feed.xml", churned.replace("<channel><title>t</title>", "<channel><title>t2</title>")
    )
    result = run_cli(
        ["crawl", "loopback"], database_url, loopback_outlet, tmp_path, recheck_hours="0"
    )
    assert result.returncode == 0, result.stderr
    # ...outside it, a changed feed whose entries are all known fetches no article.
    assert paths(site) == ["/feed.xml"]
    assert len(articles(database_url)) == 3


def test_a_run_with_errors_keeps_no_fetch_state_so_nothing_is_lost(
    database_url: str, site: LoopbackSite, loopback_outlet: Path, tmp_path: Path
) -> None:
    site.etags = True
    site.fail(f"/news/{NRC}/", 404)
    first = run_cli(["crawl", "loopback"], database_url, loopback_outlet, tmp_path)
    assert first.returncode == 0
    assert runs(database_url)[-1][1].outcome == "partial"
    assert len(articles(database_url)) == 1
    site.requests.clear()
    # The feed is unchanged, but the last run was not clean: no 304, the lost article is fetched.
    again = run_cli(["crawl", "loopback"], database_url, loopback_outlet, tmp_path)
    assert again.returncode == 0
    assert f"/news/{NRC}/" in paths(site)
    assert len(articles(database_url)) == 2


def crawl_then_rebuild_feed(
    database_url: str, site: LoopbackSite, sources: Path, tmp_path: Path
) -> str:
    """A first crawl of an outlet that answers 304s, then a new build of its feed
    (same entries): the feed answers 200 again. Returns the first feed."""
    site.etags = True
    assert run_cli(["crawl", "loopback"], database_url, sources, tmp_path).returncode == 0
    feed_xml = (site.root / "site" / "feed.xml").read_text()
    site.write("/feed.xml", feed_xml.replace("<title>t</title>", "<title>t, refreshed</title>"))
    site.requests.clear()
    return feed_xml


def test_recent_articles_are_rechecked_with_their_validators(
    database_url: str, site: LoopbackSite, loopback_outlet: Path, tmp_path: Path
) -> None:
    crawl_then_rebuild_feed(database_url, site, loopback_outlet, tmp_path)
    result = run_cli(
        ["crawl", "loopback"], database_url, loopback_outlet, tmp_path, recheck_minutes="0"
    )
    assert result.returncode == 0, result.stderr
    # Both articles are within the re-check window: asked again, both answer 304.
    assert sorted(site.not_modified) == sorted(
        [f"/news/{NRC}/", f"/news/{KHARKIV}/?utm_source=rss"]
    )
    run = runs(database_url)[-1][1]
    assert (run.outcome, run.articles_new, run.articles_updated, run.articles_unchanged) == (
        "ok",
        0,
        0,
        2,
    )
    assert len(articles(database_url)) == 2


def test_recent_articles_are_not_rechecked_on_every_crawl(
    database_url: str, site: LoopbackSite, loopback_outlet: Path, tmp_path: Path
) -> None:
    feed_xml = crawl_then_rebuild_feed(database_url, site, loopback_outlet, tmp_path)
    # Checked a moment ago: within the 15 minutes between re-checks, not asked again.
    result = run_cli(["crawl", "loopback"], database_url, loopback_outlet, tmp_path)
    assert result.returncode == 0, result.stderr
    assert paths(site) == ["/feed.xml"]
    run = runs(database_url)[-1][1]
    assert (run.outcome, run.articles_unchanged) == ("ok", 2)
    # A 304 counts as a check: after one, the page waits its spacing again.
    site.write("/feed.xml", feed_xml.replace("<title>t</title>", "<title>t, again</title>"))
    site.requests.clear()
    again = run_cli(
        ["crawl", "loopback"], database_url, loopback_outlet, tmp_path, recheck_minutes="0"
    )
    assert again.returncode == 0
    assert len(site.not_modified) == 2
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        checked = session.scalars(select(Article.checked_at)).all()
        last_run = session.scalars(select(CrawlRun).order_by(CrawlRun.id.desc())).first()
    engine.dispose()
    assert last_run is not None
    assert all(c is not None and c >= last_run.started_at for c in checked)


def test_a_long_feed_is_fetched_in_batches_and_every_entry_arrives(
    database_url: str, site: LoopbackSite, tmp_path: Path
) -> None:
    page = (KI / NRC / "index.html").read_text(encoding="utf-8")
    entries = []
    for n in range(7):
        # Each page its own story: the body differs in its first paragraph.
        body = page.replace("Russia is sending", f"In report {n} of 7, Russia is sending", 1)
        site.write(f"/news/{n}/", body)
        entries.append((f"/news/{n}/", f"Report {n}", "Fri, 07 Apr 2023 15:37:50 GMT"))
    site.write("/feed.xml", feed(site.base, entries))
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f'[[source]]\nname = "loopback"\nkind = "feed"\n'
        f'start_urls = ["{site.base}/feed.xml"]\nlanguages = ["en"]\n'
    )
    result = run_cli(["crawl", "loopback"], database_url, sources, tmp_path, request_batch="3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(a.url for a in articles(database_url)) == sorted(
        f"{site.base}{path}" for path, _, _ in entries
    )
    [(_, run)] = runs(database_url)
    assert (run.outcome, run.pages, run.errors) == ("ok", 9, 0)  # robots.txt, the feed, 7


def test_redirected_entry_is_archived_at_its_final_url(
    database_url: str, site: LoopbackSite, loopback_outlet: Path, tmp_path: Path
) -> None:
    site.redirects[f"/news/{KHARKIV}/?utm_source=rss"] = f"{site.base}/news/{KHARKIV}/"
    assert run_cli(["crawl", "loopback"], database_url, loopback_outlet, tmp_path).returncode == 0
    kharkiv = next(a for a in articles(database_url) if KHARKIV in a.url)
    assert kharkiv.url == f"{site.base}/news/{KHARKIV}/?utm_source=rss"  # as the feed gave it
    assert kharkiv.final_url == f"{site.base}/news/{KHARKIV}/"
    assert kharkiv.canonical_url == f"{site.base}/news/{KHARKIV}"
