"""Browser tests: Debian's Chromium driven by Selenium through Debian's chromedriver (no browser is
downloaded), headless, against the real processes of the hub on today's date, each page audited with
axe-core (from npm, installed under .tools/ by ``make test``). Skipped, naming what is missing, when the
Debian packages or axe-core are not installed (``.ci/run`` installs the packages)."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Hub, start_hub, stop_hub

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "var" / "screenshots"
AXE = ROOT / ".tools" / "node_modules" / "axe-core" / "axe.min.js"
_PINNED = re.search(r"^AXE_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
AXE_VERSION = _PINNED.group(1) if _PINNED else "(see AXE_VERSION in the Makefile)"
COMMAND_TIMEOUT = 180  # seconds for any one WebDriver command
PHONE = (390, 844)
DESKTOP = (1280, 900)

pytestmark = pytest.mark.e2e


def _missing() -> list[str]:
    missing = []
    if not CHROMIUM.exists():
        missing.append("chromium")
    if not CHROMEDRIVER.exists():
        missing.append("chromium-driver")
    return missing


@pytest.fixture(scope="session")
def browser_ready() -> None:
    missing = _missing()
    if missing:
        pytest.skip(
            "browser tests need the Debian packages "
            + " and ".join(missing)
            + f" ({CHROMIUM}, {CHROMEDRIVER}): apt-get install -y chromium chromium-driver"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("browser tests need the selenium package: make install")
    if not AXE.exists():
        pytest.skip(
            f"browser tests need axe-core {AXE_VERSION} from npm at {AXE.relative_to(ROOT)} (make test "
            f"installs it; needs npm): npm install --prefix .tools axe-core@{AXE_VERSION}"
        )


@pytest.fixture(scope="module")
def hub(browser_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    # on today's date, as in production (no GOVHUB_TODAY): every matter used here is open today
    running = start_hub(tmp_path_factory.mktemp("browser-hub"), today="")
    yield running
    code = stop_hub(running.process)
    assert running.process.stdout is not None
    running.process.stdout.close()
    running.log_file.close()
    assert code == 0, running.log()[-4000:]


@pytest.fixture
def driver(browser_ready: None) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="govhub-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        # a busy machine must not starve the one tab's renderer
        "--disable-renderer-backgrounding",
        "--disable-background-timer-throttling",
        "--disable-backgrounding-occluded-windows",
        f"--user-data-dir={profile}",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        "--lang=zh-CN",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to see Content-Security-Policy refusals
    browser = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    # generous limits for a loaded machine (2 cores shared); no command waits forever on chromedriver
    browser.command_executor.client_config.timeout = COMMAND_TIMEOUT
    browser.set_page_load_timeout(120)
    browser.set_script_timeout(60)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
