"""The crawl's AutoThrottle lets 304 answers lower the delay, as 200s do."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from scrapy.extensions.throttle import AutoThrottle
from scrapy.http import Response
from scrapy.utils.test import get_crawler

from deportwatch.config.settings import load_settings
from deportwatch.crawl.runner import scrapy_settings
from spiders.middlewares.throttle import ConditionalAwareAutoThrottle

URL = "http://127.0.0.1/article"


def _delay_after(extension: type[AutoThrottle], status: int) -> float:
    crawler = get_crawler(settings_dict={"AUTOTHROTTLE_ENABLED": True})
    throttle = extension(crawler)
    throttle.mindelay, throttle.maxdelay = 0.0, 60.0  # as set when the spider opens
    slot = SimpleNamespace(delay=0.5)  # set by a slow feed download
    throttle._adjust_delay(slot, 0.01, Response(URL, status=status))
    return float(slot.delay)


@pytest.mark.parametrize("status", [200, 304])
def test_a_fast_answer_lowers_the_delay(status: int) -> None:
    assert _delay_after(ConditionalAwareAutoThrottle, status) == pytest.approx(0.255)


def test_error_pages_still_never_lower_it() -> None:
    assert _delay_after(ConditionalAwareAutoThrottle, 503) == 0.5


def test_stock_autothrottle_would_keep_the_delay_for_304s() -> None:
    # Why the subclass exists: a re-crawl of 304s ran at the feed's pace.
    assert _delay_after(AutoThrottle, 304) == 0.5


def test_the_crawl_uses_it_in_place_of_the_stock_one(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'a.db'}")
    extensions = scrapy_settings(settings, None)["EXTENSIONS"]
    assert extensions["scrapy.extensions.throttle.AutoThrottle"] is None
    assert "spiders.middlewares.throttle.ConditionalAwareAutoThrottle" in extensions
