"""Journey 5: a data scientist compares the platform's versions in MLflow's own UI.

A real MLflow tracking server is started beside the served platform, the platform's registry and
history are mirrored into it (`models_cli mlflow-sync` does the same), and a person opens the
model's experiment, then its registered model, where the `champion` alias names the champion.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow_support import MlflowServer
from playwright.sync_api import Browser, expect

from e2e.browser import VIEWPORT, screenshot
from e2e.server import MODEL, Served
from resources import mlflow_mirror
from resources.registry import ModelRegistry


@pytest.fixture(scope="module")
def mirrored(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    server = MlflowServer(Path(tmp_path_factory.mktemp("mlflow_ui")))
    server.start()
    try:
        registry = ModelRegistry(lake=served.lake)
        yield server, mlflow_mirror.sync(registry, MODEL, uri=server.uri)
    finally:
        server.stop()


def test_the_versions_and_the_champion_alias_show_in_mlflow(browser: Browser, mirrored) -> None:
    server, done = mirrored
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(60_000)

    # The experiment named after the model: a run per version, named by the version.
    run_url = done.run_urls[done.champion]
    page.goto(run_url.split("/runs/")[0] + "/runs")
    expect(page.get_by_text(done.champion).first).to_be_visible(timeout=60_000)
    # MLflow 3 opens on its GenAI sidebar, with its assistant's panel beside the runs.
    page.get_by_role("button", name="Model training").click()
    assistant = page.get_by_role("button", name="Close")
    if assistant.is_visible():
        assistant.click()
    expect(page.get_by_text(done.champion).first).to_be_visible()
    screenshot(page, "5-mlflow-runs")

    # The champion's run: its metrics, and the tags that link it back to Dagster.
    page.goto(run_url)
    expect(page.get_by_text("holdout_auc").first).to_be_visible(timeout=60_000)

    # The registered model: the champion alias on the champion's model version.
    page.goto(f"{server.uri}/#/models/{MODEL}")
    expect(page.get_by_text("@ champion").first).to_be_visible(timeout=60_000)
    screenshot(page, "5-mlflow-model")
    context.close()
