"""Fixtures shared by the self-tests: a headless Chromium driven by Selenium, for the pages
staff and students open (the peer-review pages, the class report)."""

import shutil

import pytest


def _chromium() -> tuple[str, str]:
    """The Chromium binary and its chromedriver; skips the test (saying why) when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no headless Chromium here (chromium and chromedriver; `.ci/run` installs them with apt-get)")
    return browser, driver


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium driven by Selenium."""
    binary, driver_path = _chromium()
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
