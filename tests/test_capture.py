"""Evidence capture: the pages a crawl keeps, as fetched, in WARC files linked from the archive."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from base64 import b32encode
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from warcio.archiveiterator import ArchiveIterator

from bench.crawl_throughput import sources_file
from bench.synthetic_site import SyntheticSite
from db.engine import make_engine, make_sessionmaker
from db.models import Article, ArticleVersion, CrawlRun
from deportwatch.archive.captures import capture_ref, read_capture
from deportwatch.config.settings import load_settings
from deportwatch.web.app import create_app
from pipeline.spool import from_record, to_record
from spiders.middlewares.replay import snapshot_path
from tests.archive_checks import capture_problems
from tests.conftest import REPO, WEB, LoopbackSite
from tests.helpers import article_item, feed, free_port, run_cli

pytestmark = pytest.mark.e2e


def sha256_digest(body: bytes) -> str:
    return "sha256:" + b32encode(hashlib.sha256(body).digest()).decode()


def rows(database_url: str, model: type[Article] | type[ArticleVersion]) -> list:  # type: ignore[type-arg]
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        found = list(session.scalars(select(model).order_by(model.id)))
        session.expunge_all()
    engine.dispose()
    return found


def records(warc_dir: Path) -> list[tuple[str, str, str | None]]:
    """Every record of every WARC file: (type, target URI, payload digest)."""
    found = []
    for path in sorted(warc_dir.glob("*.warc.gz")):
        with path.open("rb") as stream:
            for record in ArchiveIterator(stream, check_digests=True):
                found.append(
                    (
                        record.rec_type,
                        record.rec_headers.get_header("WARC-Target-URI"),
                        record.rec_headers.get_header("WARC-Payload-Digest"),
                    )
                )
    return found


def test_replay_crawl_archives_each_page_with_its_digest(database_url: str, tmp_path: Path) -> None:
    result = run_cli(
        ["crawl", "kyiv-independent", "pgo-telegram", "children-of-war", "--replay", str(WEB)],
        database_url,
        REPO / "sources.toml",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    warc_dir = tmp_path / "warc"
    articles = rows(database_url, Article)
    assert len(articles) >= 4
    for article in articles:
        ref = capture_ref(article)
        assert ref is not None, article.url
        page = read_capture(warc_dir, ref)
        served = snapshot_path(WEB, page.url)
        assert served is not None
        # The record holds the bytes served, and its digest is theirs.
        assert page.body == served.read_bytes()
        assert page.digest == ref.digest == sha256_digest(served.read_bytes())
        assert page.status == 200
        assert ref.captured_at is not None
    kept = records(warc_dir)
    types = {kind for kind, _, _ in kept}
    assert types == {"response", "request"}
    urls = {url for _, url, _ in kept}
    assert any("t.me/s/" in url for url in urls)  # the channel page its posts came from
    assert any(url.endswith("/feed/") or "rss" in url for url in urls)  # the feed document
    # The Children of War page (missing children's names, photos) is never archived.
    assert not any("childrenofwar" in url for url in urls)
    check = subprocess.run(
        [
            str(Path(sys.executable).parent / "warcio"),
            "check",
            *map(str, warc_dir.glob("*.warc.gz")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def outlet(site: LoopbackSite, tmp_path: Path, body: str) -> Path:
    site.write("/news/a/", body)
    site.write("/doc.pdf", b"%PDF-1.4 not a page")
    site.write(
        "/feed.xml",
        feed(
            site.base,
            [
                ("/news/a/", "Children taken", "Fri, 07 Apr 2023 15:37:50 GMT"),
                ("/doc.pdf", "A report", "Fri, 07 Apr 2023 12:10:04 GMT"),
            ],
        ),
    )
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f'[[source]]\nname = "loopback"\nkind = "feed"\n'
        f'start_urls = ["{site.base}/feed.xml"]\nlanguages = ["en"]\n'
    )
    return sources


PAGE = (
    "<html><head><title>Children taken</title></head><body><article><h1>Children taken</h1>"
    "<p>Russian forces deported forty children from Kherson to Crimea, officials said on "
    "Friday. {extra}</p></article></body></html>"
)


def test_refetch_same_payload_is_a_revisit_and_an_edit_links_each_version(
    database_url: str, tmp_path: Path, site: LoopbackSite
) -> None:
    sources = outlet(site, tmp_path, PAGE.format(extra=""))
    # Recent articles are asked again on every crawl here.
    again = {"recheck_minutes": "0", "recheck_hours": "1000"}
    first = run_cli(["crawl", "loopback"], database_url, sources, tmp_path, **again)
    assert first.returncode in (0, 1), first.stderr
    warc_dir = tmp_path / "warc"
    page_url = f"{site.base}/news/a/"
    (article,) = rows(database_url, Article)
    first_ref = capture_ref(article)
    assert first_ref is not None
    # The PDF answered, but the crawl refused it: it is not kept.
    assert not any(url.endswith("/doc.pdf") for _, url, _ in records(warc_dir))

    site.write("/feed.xml", (site.root / "site" / "feed.xml").read_text() + " ")
    run_cli(["crawl", "loopback"], database_url, sources, tmp_path, **again)
    page_records = [(k, d) for k, url, d in records(warc_dir) if url == page_url]
    assert [k for k, _ in page_records] == ["response", "request", "revisit", "request"]
    assert page_records[0][1] == page_records[2][1]  # the same payload digest
    (article,) = rows(database_url, Article)
    assert capture_ref(article) == first_ref  # still the full record

    site.write("/news/a/", PAGE.format(extra="Their names were given by the ombudsman."))
    site.write("/feed.xml", (site.root / "site" / "feed.xml").read_text() + " ")
    run_cli(["crawl", "loopback"], database_url, sources, tmp_path, **again)
    (article,) = rows(database_url, Article)
    (version,) = rows(database_url, ArticleVersion)
    assert capture_ref(version) == first_ref
    new_ref = capture_ref(article)
    assert new_ref is not None
    assert new_ref != first_ref
    assert b"ombudsman" in read_capture(warc_dir, new_ref).body
    assert b"ombudsman" not in read_capture(warc_dir, first_ref).body


def test_capture_off_writes_nothing(database_url: str, tmp_path: Path, site: LoopbackSite) -> None:
    sources = outlet(site, tmp_path, PAGE.format(extra=""))
    result = run_cli(["crawl", "loopback"], database_url, sources, tmp_path, capture="false")
    assert result.returncode in (0, 1), result.stderr
    (article,) = rows(database_url, Article)
    assert article.capture_file is None
    assert not (tmp_path / "warc").exists()


def test_a_spooled_item_keeps_its_capture() -> None:
    capture = {
        "file": "x.warc.gz",
        "offset": 10,
        "length": 99,
        "digest": "sha256:AAAA",
        "captured_at": "2026-12-03T10:00:00Z",
    }
    item = from_record(to_record(article_item(capture=capture)))
    assert item.capture == capture


def test_evidence_package_validates_and_indexes_every_record(
    database_url: str, tmp_path: Path
) -> None:
    crawl = run_cli(
        ["crawl", "kyiv-independent", "--replay", str(WEB)],
        database_url,
        REPO / "sources.toml",
        tmp_path,
    )
    assert crawl.returncode == 0, crawl.stderr
    package = tmp_path / "flagged.wacz"
    result = run_cli(
        ["evidence", "--flagged", "-o", str(package)], database_url, REPO / "sources.toml", tmp_path
    )
    assert result.returncode == 0, result.stderr
    flagged = [a for a in rows(database_url, Article) if a.flagged]
    assert f"{len(flagged)} articles, {len(flagged)} captures" in result.stdout
    bin_dir = Path(sys.executable).parent
    validate = subprocess.run(
        [str(bin_dir / "wacz"), "validate", "-f", str(package)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validate.returncode == 0, validate.stdout
    assert "Validation succeeded" in validate.stdout
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(package) as wacz:
        wacz.extractall(unpacked)
        manifest = json.loads(wacz.read("evidence/articles.json"))
        index_lines = wacz.read("indexes/index.cdx").decode().splitlines()
    warc = unpacked / "archive" / "evidence.warc.gz"
    # Every record reads back, its digest checked, and the index names each one.
    with warc.open("rb") as stream:
        responses = [
            r.rec_headers.get_header("WARC-Target-URI")
            for r in ArchiveIterator(stream, check_digests=True)
            if r.rec_type == "response"
        ]
    assert len(responses) == len(flagged) == len(index_lines)
    warcio_index = subprocess.run(
        [str(bin_dir / "warcio"), "index", str(warc)], capture_output=True, text=True, check=True
    )
    assert len(warcio_index.stdout.splitlines()) == len(flagged)
    # The manifest's places lead to the records with the bytes served.
    by_id = {entry["id"]: entry for entry in manifest["articles"]}
    for article in flagged:
        entry = by_id[article.id]
        assert entry["title"] == article.title
        assert entry["story"] == article.cluster_id
        capture = entry["capture"]
        with warc.open("rb") as stream:
            stream.seek(capture["offset"])
            record = next(iter(ArchiveIterator(stream)))
            body = record.raw_stream.read()
        served = snapshot_path(WEB, record.rec_headers.get_header("WARC-Target-URI"))
        assert served is not None
        assert body == served.read_bytes()
        assert capture["digest"] == sha256_digest(body)
    replayed = replay_with_pywb(package, tmp_path / "pywb", [a.final_url or a.url for a in flagged])
    for article in flagged:
        url = article.final_url or article.url
        served = snapshot_path(WEB, url)
        assert served is not None
        assert replayed[url] == served.read_bytes(), url


def replay_with_pywb(package: Path, root: Path, urls: list[str]) -> dict[str, bytes]:
    """Each URL's page as pywb replays it from the package (``id_``: the bytes as
    archived, not rewritten), served on loopback. pywb has a virtual environment
    of its own (its redis pin clashes with Celery's), made by ``make install``."""
    bin_dir = Path(sys.executable).parent.parent / "pywb" / "bin"
    if not (bin_dir / "wb-manager").exists():
        pytest.skip(f"pywb not installed in {bin_dir.parent} (make install puts it there)")
    root.mkdir()
    for args in (["init", "evidence"], ["add", "--unpack-wacz", "evidence", str(package)]):
        subprocess.run(
            [str(bin_dir / "wb-manager"), *args], cwd=root, check=True, capture_output=True
        )
    port = free_port()
    server = subprocess.Popen(
        [str(bin_dir / "wayback"), "-p", str(port), "-b", "127.0.0.1"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server)
        pages = {}
        for url in urls:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/evidence/id_/{url}", timeout=30
            ) as answer:
                pages[url] = answer.read()
        return pages
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until the server accepts connections (or has died)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "pywb exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("pywb did not start listening")


def test_evidence_without_a_selection_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    result = run_cli(
        ["evidence", "-o", str(tmp_path / "x.wacz")], database_url, REPO / "sources.toml", tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: say which articles")
    missing = run_cli(
        ["evidence", "999", "-o", str(tmp_path / "x.wacz")],
        database_url,
        REPO / "sources.toml",
        tmp_path,
    )
    assert missing.returncode == 2
    assert "no article 999" in missing.stderr
    assert not (tmp_path / "x.wacz").exists()


STORY = (
    "<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
    "<p>{text}</p></article></body></html>"
)
STORIES = {
    "a": ("Camp in Crimea", "Forty children from Kherson were sent to a camp in Crimea in May."),
    "b": ("Names published", "The ombudsman published the names of twelve deported teenagers."),
    "c": ("Return to Kyiv", "Eleven children returned to Kyiv from Belarus after mediation."),
    "d": ("Filtration camp", "Adults from Mariupol passed through a filtration camp in Bezimenne."),
}


def test_verify_tells_alive_changed_and_removed(
    database_url: str, tmp_path: Path, site: LoopbackSite
) -> None:
    for slug, (title, text) in STORIES.items():
        site.write(f"/news/{slug}/", STORY.format(title=title, text=text))
    site.write("/", "<html><body>Home</body></html>")
    site.write(
        "/feed.xml",
        feed(
            site.base,
            [(f"/news/{s}/", t, "Fri, 07 Apr 2023 15:37:50 GMT") for s, (t, _) in STORIES.items()],
        ),
    )
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f'[[source]]\nname = "loopback"\nkind = "feed"\n'
        f'start_urls = ["{site.base}/feed.xml"]\nlanguages = ["en"]\n'
    )
    crawl = run_cli(["crawl", "loopback"], database_url, sources, tmp_path)
    assert crawl.returncode == 0, crawl.stderr
    ids = {a.url.rstrip("/").rsplit("/", 1)[1]: a.id for a in rows(database_url, Article)}
    assert set(ids) == set(STORIES)

    (site.root / "site" / "news" / "b" / "index.html").unlink()  # taken down: 404
    site.write(
        "/news/c/",
        STORY.format(title="Return to Kyiv", text="The page now says nothing of Belarus."),
    )
    site.redirects["/news/d/"] = "/"  # sent to the home page
    result = run_cli(["verify", "--source", "loopback"], database_url, sources, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 alive, 1 changed, 2 removed, 0 unreachable" in result.stdout
    by_id = {a.id: a for a in rows(database_url, Article)}
    a, b, c, d = (by_id[ids[s]] for s in "abcd")
    assert (a.source_state, b.source_state, c.source_state, d.source_state) == (
        "alive",
        "removed",
        "changed",
        "removed",
    )
    assert b.removed_at is not None
    assert a.removed_at is None
    assert b.verified_at is not None
    # The changed page is captured and stored as a new version, the old one kept.
    assert "nothing of Belarus" in c.text
    (version,) = [v for v in rows(database_url, ArticleVersion) if v.article_id == c.id]
    assert "Belarus after mediation" in version.text
    new_ref, old_ref = capture_ref(c), capture_ref(version)
    assert new_ref is not None
    assert old_ref is not None
    assert b"nothing of Belarus" in read_capture(tmp_path / "warc", new_ref).body
    assert b"after mediation" in read_capture(tmp_path / "warc", old_ref).body

    day = b.removed_at.date().isoformat()
    captured = b.captured_at.date().isoformat() if b.captured_at else ""
    note = f"removed from the source on {day}; archived capture of {captured}"
    show = run_cli(["show", str(b.id)], database_url, sources, tmp_path)
    assert note in show.stdout
    export = run_cli(["export", "--format", "jsonl"], database_url, sources, tmp_path)
    exported = {r["id"]: r for r in map(json.loads, export.stdout.splitlines())}
    assert exported[b.id]["source_note"] == note
    assert exported[a.id]["source_note"] is None


HOSTILE = (
    "<html><head><title>Children taken</title><base href='http://evil.test/'>"
    "<script>fetch('http://evil.test/x')</script><link rel='stylesheet' href='http://evil.test/s.css'>"
    '</head><body onload="alert(1)"><article><h1>Children taken</h1>'
    "<p>Russian forces deported forty children from Kherson to Crimea, officials said.</p>"
    "<img src='http://evil.test/pixel.gif' onerror='alert(2)'><iframe src='http://evil.test/'></iframe>"
    "<a href='javascript:alert(3)'>link</a></article></body></html>"
)


def test_web_view_shows_the_capture_as_inert_sandboxed_html(
    database_url: str, tmp_path: Path, site: LoopbackSite
) -> None:
    sources = outlet(site, tmp_path, HOSTILE)
    crawl = run_cli(["crawl", "loopback"], database_url, sources, tmp_path)
    assert crawl.returncode in (0, 1), crawl.stderr
    (article,) = rows(database_url, Article)
    settings = load_settings(database_url=database_url, sources=sources, warc_dir=tmp_path / "warc")
    with TestClient(create_app(settings)) as client:
        page = client.get(f"/articles/{article.id}")
        assert page.status_code == 200
        assert f'href="/articles/{article.id}/capture"' in page.text
        wrapper = client.get(f"/articles/{article.id}/capture")
        assert wrapper.status_code == 200
        assert article.capture_digest in wrapper.text
        assert (
            f'<iframe class="capture" sandbox src="/articles/{article.id}/capture/page"'
            in wrapper.text
        )
        assert "frame-src 'self'" in wrapper.headers["content-security-policy"]
        frame = client.get(f"/articles/{article.id}/capture/page")
        assert frame.status_code == 200
        policy = frame.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "sandbox" in policy
        assert "script-src" not in policy
        html = frame.text.lower()
        assert "deported forty children" in html
        for hostile in (
            "<script",
            "onload",
            "onerror",
            "javascript:",
            "<iframe",
            "<base",
            "evil.test/s.css",
        ):
            assert hostile not in html, hostile
        missing = client.get("/articles/999999/capture")
        assert missing.status_code == 404


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 KiB file system (tmpfs) for the WARC files: a disk that fills mid-crawl."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_disk_stops_capture_with_one_error_and_loses_no_article(
    database_url: str, tmp_path: Path, small_disk: Path
) -> None:
    pages = 60
    site = SyntheticSite(pages, seed=5)
    with site.serve():
        sources = sources_file(tmp_path, site.base, pages)
        result = run_cli(
            ["crawl", "synthetic"],
            database_url,
            sources,
            tmp_path,
            warc_dir=str(small_disk),
            obey_robots="false",
        )
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "ScrapyDeprecationWarning" not in output
    # One error on the run, in words.
    assert "evidence capture stopped" in result.stdout
    assert "No space left on device" in output
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        (run,) = session.scalars(select(CrawlRun)).all()
        assert run.errors == 1
        assert run.error_text is not None
        assert run.error_text.count("evidence capture stopped") == 1
    engine.dispose()
    articles = rows(database_url, Article)
    assert len(articles) == pages  # every article stored all the same
    captured = [a for a in articles if a.capture_file]
    assert 0 < len(captured) < pages
    links, problems = capture_problems(database_url, small_disk)
    assert not problems
    assert links == len(captured)
    # Nothing half-written: every file reads to its end.
    for path in small_disk.glob("*.warc.gz"):
        check = subprocess.run(
            [str(Path(sys.executable).parent / "warcio"), "check", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
