"""One platform served as `make run` serves it and one Chromium for all journeys; a fresh page per
journey, checked for console errors when the journey ends, and photographed when it fails."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from e2e.browser import (
    VIEWPORT,
    ConsoleErrors,
    dismiss_community_prompt,
    launch_chromium,
    screenshot,
)
from e2e.server import Served, poll_until, start_platform

PAGE_TIMEOUT_MS = 30_000
PROMPT_TIMEOUT_S = 15
JOURNEY_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[JOURNEY_FAILED] = report.failed
    return report


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Chromium, launched first so that a missing browser fails before minutes of bootstrap."""
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The platform bootstrapped and served by `platform/run.py` (a few minutes, once)."""
    platform = start_platform(Path(tmp_path_factory.mktemp("e2e")))
    print(f"the platform serves {platform.url}; its terminal: {platform.terminal}")
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="package")
def welcomed(browser: Browser, served: Served) -> Served:
    """The platform once its first visitor skipped the community dialog a new instance shows over
    every page until someone does."""
    if served.graphql("{ shouldShowNux }")["shouldShowNux"]:
        first = browser.new_page(viewport=VIEWPORT)
        first.goto(served.url)
        dismiss_community_prompt(first)
        first.close()
        poll_until(
            lambda: not served.graphql("{ shouldShowNux }")["shouldShowNux"],
            PROMPT_TIMEOUT_S,
            "the instance to record that the community dialog was dismissed",
            every_s=0.5,
        )
    return served


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, welcomed: Served) -> Iterator[Page]:
    """A page on the UI; the journey fails if the page logged any console error."""
    context = browser.new_context(viewport=VIEWPORT, base_url=welcomed.url)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    console = ConsoleErrors(page)
    yield page
    if request.node.stash.get(JOURNEY_FAILED, False):
        screenshot(page, f"failed-{request.node.name}")
    context.close()
    assert not console.errors, "the page logged console errors:\n" + "\n".join(console.errors)
