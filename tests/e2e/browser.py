"""Headless Chromium from Debian's package, driven by Playwright, and what a person does in the UI.

Playwright's own browser download needs hosts outside the package registries, so the tests drive
the system Chromium (`tests/e2e/install_browser.sh` installs it). The flags keep it from reaching
for the network in the background: on a closed network those attempts make it misbehave.
"""

import os
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright

CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".data" / "e2e"


def launch_chromium(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: run tests/e2e/install_browser.sh (make test-e2e does)"
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)


class ConsoleErrors:
    """Collects the console errors and uncaught exceptions of a page while it is open. None is
    excused: the journeys pass without any (warnings and logs are not errors)."""

    def __init__(self, page: Page):
        self.errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        self.errors.append(f"{message.text} ({where})")


def dismiss_community_prompt(page: Page) -> None:
    """Skip the "Join the Dagster community" dialog a new instance shows its first visitor once.

    Skipping records it in the instance (the `SetNuxSeen` mutation): wait for that request, or
    closing the page could cancel it and the dialog would greet every later page again."""
    with page.expect_response(lambda r: "SetNuxSeen" in (r.request.post_data or "")):
        page.get_by_role("button", name="Skip").click()
    page.get_by_text("Join the Dagster community").wait_for(state="hidden")


def filter_asset_graph(page: Page, selection: str) -> None:
    """Type an asset selection into the lineage page's "Search and filter assets" box."""
    editor = page.locator(".CodeMirror").filter(has=page.get_by_label("Search and filter assets"))
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(selection)
    page.keyboard.press("Enter")


def expand_all_groups(page: Page) -> None:
    """Open every group of the lineage graph (graph settings, bottom right: "Expand all groups")."""
    page.locator("svg foreignObject").first.wait_for()  # the graph is drawn
    graph_settings = page.get_by_role("button").filter(
        has=page.get_by_role("img", name="settings", exact=True), has_not_text="Settings"
    )
    graph_settings.click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")


def metadata_value(page: Page, key: str) -> str:
    """The value shown for `key` in the materialization metadata table on the page."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))
    return row.first.get_by_role("cell").nth(1).inner_text().strip()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path)
    return path
