"""Journey 3: the replay brings drifted days, the drift sensor retrains the model, and the new
version is promoted; the terminal of `make run` says so in a line each.

The synthetic delays drift from DRIFT_START; the daily cycle computes each replayed day's
features and drift report; the drift sensor, on by default, requests `flight_delay/model` for
the day after three drifted days in a row. The person sees the sensor running, the run it
launched on the Runs page, and the new version that passed the quality gate on the model's page.
"""

import re
from datetime import date

from playwright.sync_api import Page, expect

from e2e.browser import metadata_value, screenshot
from e2e.facts import FINISHED_RUN, SENSOR_NAME_TAG, runs_tagged
from e2e.server import DRIFT_START, MODEL, Served, poll_until
from resources.registry import ModelRegistry
from sensors.retrain import drift_sensor_name
from sensors.run_tags import RETRAIN_TRIGGERS, TRIGGER_TAG, Trigger

DRIFT_SENSOR = drift_sensor_name(MODEL)
MODEL_ASSET = f"{MODEL}/model"
RETRAIN_TIMEOUT_S = 1200


def first_drift_retrain(served: Served) -> dict | None:
    """The first run the drift sensor launched for the model, once it finished."""
    runs = [
        run
        for run in runs_tagged(served, {TRIGGER_TAG: Trigger.DRIFT})
        if {"path": MODEL_ASSET.split("/")} in run["assetSelection"]
    ]
    first = runs[-1] if runs else None
    return first if first and first["status"] in FINISHED_RUN else None


def test_the_replayed_drift_retrains_the_model(page: Page, served: Served) -> None:
    registry = ModelRegistry(lake=served.lake)

    # The drift sensor is on, as it is by default.
    page.goto("/")
    page.get_by_role("link", name=re.compile(r"Automation$")).click()
    page.get_by_role("link", name=re.compile(DRIFT_SENSOR)).click()
    expect(page).to_have_url(re.compile(rf"/sensors/{DRIFT_SENSOR}"))
    expect(page.get_by_role("row").filter(has_text=re.compile(r"^Running"))).to_be_visible()
    expect(page.get_by_role("checkbox").first).to_be_checked()

    run = poll_until(
        lambda: first_drift_retrain(served),
        RETRAIN_TIMEOUT_S,
        f"the replay to bring the days drifted from {DRIFT_START} and the drift sensor to retrain",
        every_s=5,
    )
    assert run["status"] == "SUCCESS", run
    cutoff = run["tags"]["dagster/partition"]
    assert cutoff > DRIFT_START
    assert run["tags"][SENSOR_NAME_TAG] == DRIFT_SENSOR

    # The Runs page shows the run and the sensor that launched it.
    page.get_by_role("link", name=re.compile(r"Runs$")).click()
    run_link = page.get_by_role("link", name=re.compile(run["runId"][:8]))
    sensor_link = page.get_by_role("link", name=re.compile(DRIFT_SENSOR))
    row = page.locator("div").filter(has=run_link).filter(has=sensor_link).last
    expect(row).to_be_visible()
    expect(row.get_by_text(f"partition: {cutoff}").first).to_be_visible()
    expect(row.get_by_text(f"{TRIGGER_TAG}: drift")).to_be_visible()
    screenshot(page, "3-retraining-runs")

    # The model's page: the new version of that cutoff passed the gate and was promoted.
    champion = registry.champion_at(MODEL, date.fromisoformat(cutoff))
    assert champion["version"].startswith(f"{cutoff}.")
    assert registry.record(MODEL, champion["version"])["gate"]["passed"]
    page.goto(f"/assets/{MODEL_ASSET}?view=partitions&partition={cutoff}")
    expect(page.get_by_text(cutoff, exact=True).first).to_be_visible()
    expect(page.get_by_role("cell", name="version", exact=True)).to_be_visible()
    assert metadata_value(page, "version") == champion["version"]
    assert metadata_value(page, "gate_passed").lower() == "true"
    assert metadata_value(page, "promoted").lower() == "true"
    screenshot(page, "3-retraining-model")

    # The terminal said it in a line each; no retrain failed.
    printed = served.printed()
    assert f"{MODEL}: retraining for cutoff {cutoff} (drift)" in printed
    assert f"{MODEL}: {champion['version']} promoted" in printed
    for trigger in RETRAIN_TRIGGERS:
        failed = runs_tagged(served, {TRIGGER_TAG: trigger}, ["FAILURE"])
        assert not failed, f"failed {trigger} retrains: {[r['runId'] for r in failed]}"
