"""Journey 3: drifted days arrive, the drift sensor retrains the model, the new version is promoted.

The feed lands the raw tables of the days up to DRIFT_LAST (drifted from DRIFT_START on); the
daily cycle computes their features and drift reports; the drift sensor, on by default, requests
`flight_delay/model` for the day after the last drifted day. The user sees the sensor running,
the run it launched on the Runs page, and the new version that passed the quality gate on the
model's page.
"""

import re
from datetime import date, timedelta

from playwright.sync_api import Page, expect

from e2e.browser import metadata_value, screenshot
from e2e.facts import lake_days, runs_tagged
from e2e.server import DRIFT_LAST, MODEL, DagsterDev, deliver_raw_days, poll_until
from resources.registry import ModelRegistry
from sensors.replay import TRIGGER_TAG
from sensors.retrain import drift_sensor_name

DRIFT_SENSOR = drift_sensor_name(MODEL)
MODEL_ASSET = f"{MODEL}/model"
FINISHED_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
RETRAIN_TIMEOUT_S = 600


def finished_drift_retrain(dev: DagsterDev) -> dict | None:
    """The run the drift sensor launched, once it finished; None until then."""
    runs = runs_tagged(dev, {TRIGGER_TAG: "drift"})
    assert len(runs) <= 1, f"the drift sensor launched {len(runs)} runs"
    return runs[0] if runs and runs[0]["status"] in FINISHED_RUN else None


def test_drift_sensor_retrains_the_model(page: Page, dagster_dev: DagsterDev) -> None:
    registry = ModelRegistry(lake=dagster_dev.lake)
    cutoff = (date.fromisoformat(DRIFT_LAST) + timedelta(days=1)).isoformat()
    champion_before = registry.champion_at(MODEL, date.fromisoformat(cutoff))["version"]
    assert not runs_tagged(dagster_dev, {TRIGGER_TAG: "drift"})

    # The drift sensor is on, as it is by default.
    page.goto("/")
    page.get_by_role("link", name=re.compile(r"Automation$")).click()
    page.get_by_role("link", name=re.compile(DRIFT_SENSOR)).click()
    expect(page).to_have_url(re.compile(rf"/sensors/{DRIFT_SENSOR}"))
    expect(page.get_by_role("row").filter(has_text=re.compile(r"^Running"))).to_be_visible()
    expect(page.get_by_role("checkbox").first).to_be_checked()

    # Drifted days arrive (after whatever the feed delivered before).
    newest = max(lake_days(dagster_dev, "raw_flights"))
    first = (date.fromisoformat(newest) + timedelta(days=1)).isoformat()
    deliver_raw_days(dagster_dev, first, DRIFT_LAST)
    run = poll_until(
        lambda: finished_drift_retrain(dagster_dev),
        RETRAIN_TIMEOUT_S,
        f"the drift sensor to request and finish a retrain after {first}..{DRIFT_LAST} arrived",
        every_s=5,
    )
    assert run["status"] == "SUCCESS", run
    assert run["tags"]["dagster/partition"] == cutoff
    assert run["tags"]["dagster/sensor_name"] == DRIFT_SENSOR

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
    assert champion["version"] != champion_before
    assert champion["version"].startswith(f"{cutoff}.")
    assert registry.record(MODEL, champion["version"])["gate"]["passed"]
    page.goto(f"/assets/{MODEL_ASSET}?view=partitions&partition={cutoff}")
    expect(page.get_by_text(cutoff, exact=True).first).to_be_visible()
    expect(page.get_by_role("cell", name="version", exact=True)).to_be_visible()
    assert metadata_value(page, "version") == champion["version"]
    assert metadata_value(page, "gate_passed").lower() == "true"
    assert metadata_value(page, "promoted").lower() == "true"
    screenshot(page, "3-retraining-model")
