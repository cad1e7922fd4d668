"""Fixtures of the real-browser tests: the browser (installed when missing), `dagster dev`, screenshots.

Screenshots go to .data/test-artifacts/e2e/<test name>/ (kept after the run for CI to upload); a failing
test also saves `failure.png` there and prints the tail of the dagster dev log.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from infra.settings import PROJECT_ROOT
from tests.e2e.screens import Screens

ARTIFACTS = PROJECT_ROOT / ".data" / "test-artifacts" / "e2e"
# Without the background-networking flags Chromium's own connections are refused many at a time here.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember each phase's report on the test item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium, installed by infra/browser.sh when missing (Playwright's download needs the web)."""
    done = subprocess.run(["bash", str(PROJECT_ROOT / "infra" / "browser.sh")], capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        pytest.fail(f"infra/browser.sh could not provide chromium:\n{done.stderr}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def browser(chromium_path):
    """Headless chromium driven by Playwright; each launch starts from a new empty profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screens(request) -> Screens:
    """Numbered screenshots of this test under .data/test-artifacts/e2e/<test name>/, emptied first."""
    folder = ARTIFACTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Screens(folder)


@pytest.fixture
def page(browser, dagster_ui, screens, request):
    """A page of a fresh browser context on the UI; on failure it saves failure.png and prints the server log."""
    context = browser.new_context(base_url=dagster_ui.url, viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        screens.take_failure(page)
        print(f"--- screenshots in {screens.folder}\n--- dagster dev log tail:\n{dagster_ui.log_tail()}")
    context.close()
