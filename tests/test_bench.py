"""The crawl benchmark runs end to end on a tiny synthetic site (so it cannot rot)."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from bench.synthetic_site import SyntheticSite
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


@pytest.mark.e2e
def test_crawl_benchmark_runs_and_reports_ratios() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.crawl_throughput", "--pages", "30"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
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
