"""The web view in a real browser: Debian's chromium, headless, driven by selenium.

The browser is installed by ``tests/install-browser.sh`` where it is missing
(as root, with apt-get). Where that cannot happen the test is skipped and says
why. The screenshot is kept in ``build/test-artifacts/``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from db.models import Article
from tests.conftest import REPO
from tests.corpus import HOSTILE_TITLE
from tests.helpers import ServedView

ARTIFACTS = REPO / "build" / "test-artifacts"
# As the machine's own probe ran it: no sandbox as root, and no background
# traffic to Google's hosts, which a closed network refuses.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)


def _browser_binaries() -> tuple[str, str]:
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if None in found:
        setup = subprocess.run(
            ["sh", str(REPO / "tests" / "install-browser.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        found = shutil.which("chromium"), shutil.which("chromedriver")
        if None in found:
            reason = setup.stderr.strip().splitlines()[-1:] or ["install failed"]
            pytest.skip(f"no browser for the browser test: {reason[0]}")
    chromium, chromedriver = found
    assert chromium is not None
    assert chromedriver is not None
    return chromium, chromedriver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    chromium, chromedriver = _browser_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def view(
    database_url: str, corpus: dict[str, Article], hostile: Article, tmp_path: Path
) -> Iterator[ServedView]:
    if not database_url.startswith("sqlite"):
        pytest.skip("the browser test runs once, on SQLite; the endpoints are tested on both")
    served = ServedView(database_url, tmp_path)
    try:
        yield served
    finally:
        served.stop()


def _no_alert(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018 (the property raises when there is none)
    except NoAlertPresentException:
        return True
    return False


@pytest.mark.e2e
def test_search_then_open_an_article_in_chromium(
    browser: WebDriver, view: ServedView, corpus: dict[str, Article], hostile: Article
) -> None:
    wait = WebDriverWait(browser, 15)
    browser.get(view.base + "/")
    assert browser.title == "Search · deportwatch"
    box = browser.find_element(By.NAME, "q")
    box.send_keys("children Crimea")
    box.submit()
    wait.until(expected_conditions.title_contains("children Crimea"))
    titles = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "ol.results h3 a")]
    assert HOSTILE_TITLE in titles  # the hostile title is shown as text
    assert any(t.startswith("Russia deported children from Kherson") for t in titles)
    marks = [m.text.lower() for m in browser.find_elements(By.CSS_SELECTOR, ".snippet mark")]
    assert "crimea" in marks
    # The bundled script ran (the page's CSP allows it) and showed local times.
    times = browser.find_elements(By.CSS_SELECTOR, "time.local")
    assert times
    assert times[0].get_attribute("title").endswith("UTC")
    assert _no_alert(browser)

    browser.find_element(By.LINK_TEXT, HOSTILE_TITLE).click()
    wait.until(expected_conditions.url_contains(f"/articles/{hostile.id}"))
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == HOSTILE_TITLE
    marked = [m.text for m in browser.find_elements(By.CSS_SELECTOR, ".text mark")]
    assert marked == ["deported"]
    # No script from the page ran: no alert, no injected image, no javascript: link.
    assert _no_alert(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, ".text img, a[href^='javascript']")
    assert "Earlier versions (1)" in browser.page_source
    # Ukrainian and Russian titles come through as they were written.
    browser.get(view.base + "/flagged")
    flagged = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "ol.results h3 a")]
    assert corpus["skadovsk"].title in flagged
    assert corpus["camp"].title in flagged
    browser.back()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "article-page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    violations = [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
    assert violations == []
