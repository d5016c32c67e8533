"""Browser tests: a real headless Chromium (Debian's `chromium` and `chromium-driver`, which `make test` installs)
driven through Selenium against the running service (tests.live). Screenshots go to var/test-artifacts/browser/
(or $UNLEARN_TEST_ARTIFACTS), kept after the run to look at."""

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import service, service_db_url  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("UNLEARN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("UNLEARN_CHROMEDRIVER", "/usr/bin/chromedriver")


def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)) and shutil.which(Path(path).name) is None:
            return f"{path} not found: install Debian's {package} package (make test does: scripts/install-browser.sh)"
    return None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("UNLEARN_TEST_ARTIFACTS", ROOT / "var" / "test-artifacts")) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator:
    missing = _missing()
    if missing:
        pytest.skip(f"browser tests need Chromium: {missing}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600",
                "--disable-gpu", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver_path = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")
    driver = webdriver.Chrome(service=DriverService(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """Severe browser console lines since the last call (script errors, CSP violations, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def requested_urls(driver) -> list[str]:
    """URLs the page requested since the last call (from the DevTools network events)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
