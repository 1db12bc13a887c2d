"""One `dagster dev` and one Chromium for all journeys; a fresh page per journey, checked for
console errors when the journey ends, and photographed when it fails."""

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
from e2e.server import DagsterDev, poll_until, start_dagster_dev

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
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    """The bootstrapped platform served by `dagster dev` (a few minutes to build, once)."""
    dev = start_dagster_dev(Path(tmp_path_factory.mktemp("e2e")))
    print(f"dagster dev serves {dev.url}; its log: {dev.log}")
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture(scope="package")
def welcomed(browser: Browser, dagster_dev: DagsterDev) -> DagsterDev:
    """The platform once its first visitor skipped the community dialog a new instance shows over
    every page until someone does."""
    if dagster_dev.graphql("{ shouldShowNux }")["shouldShowNux"]:
        first = browser.new_page(viewport=VIEWPORT)
        first.goto(dagster_dev.url)
        dismiss_community_prompt(first)
        first.close()
        poll_until(
            lambda: not dagster_dev.graphql("{ shouldShowNux }")["shouldShowNux"],
            PROMPT_TIMEOUT_S,
            "the instance to record that the community dialog was dismissed",
            every_s=0.5,
        )
    return dagster_dev


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, welcomed: DagsterDev) -> Iterator[Page]:
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
