"""The crawl benchmark runs end to end on a tiny synthetic site (so it cannot rot)."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from bench import synthetic_site
from bench.synthetic_site import SyntheticSite
from spiders.sitemap import read_sitemap
from tests.conftest import REPO


def test_synthetic_site_pages_look_like_news_and_answer_304() -> None:
    site = SyntheticSite(40, seed=3)
    with site.serve() as base:
        with urllib.request.urlopen(base + site.path(5)) as response:
            page = response.read()
            etag = response.headers["ETag"]
        request = urllib.request.Request(base + site.path(5), headers={"If-None-Match": etag})
        with pytest.raises(urllib.error.HTTPError) as not_modified:
            urllib.request.urlopen(request)
    assert not_modified.value.code == 304
    not_modified.value.close()
    assert 60_000 < len(page) < 90_000
    assert b'<meta property="article:published_time"' in page
    copies = sum(item["text"].endswith("edited by the desk.)") for item in site.items)
    assert 1 <= copies <= 10


def test_synthetic_sitemap_index_lists_every_page_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synthetic_site, "SITEMAP_SIZE", 15)
    site = SyntheticSite(40, seed=3)
    with site.serve() as base:
        kind, children = read_sitemap(urllib.request.urlopen(base + "/sitemap.xml").read())
        assert kind == "sitemapindex"
        locs = []
        for child in children:
            kind, entries = read_sitemap(urllib.request.urlopen(child.loc).read())
            assert kind == "urlset"
            assert all(entry.lastmod for entry in entries)
            locs += [entry.loc for entry in entries]
    assert len(children) == 3
    assert sorted(locs) == sorted(base + site.path(i) for i in range(40))


@pytest.mark.e2e
def test_crawl_benchmark_runs_and_reports_ratios() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.crawl_throughput",
            "--pages",
            "30",
            "--memory-pages",
            "25",
            "--memory-via",
            "sitemap",
            "--latency",
            "0.01",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "served at http://127.0.0.1:" in out
    assert "with 10 ms latency" in out
    assert "| trafilatura alone (baseline) | — |" in out
    row = re.search(r"\| deportwatch crawl, SQLite \| [\d.]+ \| [\d.]+ \| ([\d.]+)x \|", out)
    assert row is not None, out
    assert float(row.group(1)) > 1
    stored = re.search(r"(\d+) new, (\d+) duplicate", out)
    assert stored is not None
    assert int(stored.group(1)) + int(stored.group(2)) == 30
    share = re.search(r"([\d.]+)% answered 304 or skipped", out)
    assert share is not None
    assert float(share.group(1)) >= 90
    memory = re.search(
        r"memory: crawl of 25 pages found through the sitemap, .*?(\d+) new, (\d+) duplicate", out
    )
    assert memory is not None, out
    assert int(memory.group(1)) + int(memory.group(2)) == 25
