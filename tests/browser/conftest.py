"""The web console in a real Chromium: Debian's ``chromium`` driven by Playwright for Python,
against a real ``queuey serve`` subprocess.

Playwright cannot download its own browser here, so it launches the system one; when that is
missing the first test installs it (``apt-get install -y chromium``, as root, as CI runs), so
a fresh clone's ``make test`` needs nothing more. With ``CI=true`` nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright

from tests.e2e.conftest import AUTH, Server, start_server, system_program, write_config

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "console"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CHROMIUM_NAMES = ("chromium", "chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    return system_program("chromium", CHROMIUM_NAMES)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("console")
    running = start_server(directory, ["--config", str(write_config(directory))])
    yield running
    running.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    """The application's API, to prepare what a test shows and to check what the page did."""
    with httpx.Client(base_url=f"{server.url}/v1/queuey", headers=AUTH, timeout=10) as client:
        yield client


@dataclass
class Watch:
    """What the page did beside its work: dialogs it opened, errors it threw, requests it sent,
    and what the Content-Security-Policy refused."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.refused.append(message.text)


def open_page(browser: Browser, viewport: dict[str, int]) -> tuple[Page, Watch]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    page = context.new_page()
    watch = Watch()
    page.on("dialog", watch.dialog)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    page.on("console", watch.console)
    page.on("request", lambda request: watch.urls.append(request.url))
    return page, watch


@pytest.fixture
def watched(browser: Browser) -> Iterator[tuple[Page, Watch]]:
    """A page in a fresh context (empty session storage) at 1280×800; at the end it must have
    opened no dialog, thrown nothing and broken no rule of its policy."""
    page, watch = open_page(browser, DESKTOP)
    yield page, watch
    page.context.close()
    assert watch.dialogs == [], watch.dialogs
    assert watch.errors == [], watch.errors
    assert watch.refused == [], watch.refused


def screenshot(page: Page, name: str) -> None:
    """A picture of a main view for the README (docs/console/), without a passing notice."""
    if page.locator("#notice").is_visible():
        page.locator("#notice-close").click()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")
