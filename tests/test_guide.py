"""docs/add-a-dataset.md and docs/add-a-model.md followed literally: a dataset and a model declared
in one module outside the core (`guide_bakery`), registered through PLATFORM_DECLARATIONS, run
through ingestion, features, training, predictions, drift, quality and the sensors on a real
Dagster instance. Three rows a day: the platform's defaults must hold at that volume."""

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import guide_bakery
import pandas as pd
import pytest
from conftest import DAGSTER, QUIET, REPO_ROOT, make_lake, platform_instance

from assets import CATALOG, build_assets
from assets.catalog import Catalog, load_catalog
from assets.model_spec import Task
from resources import platform_resources
from resources.days import days_between
from resources.sources import Sources
from sensors import build_sensor_definitions
from sensors.retrain import drift_sensor_name, quality_sensor_name

MODEL = "bakery_loaves"
FIRST, LAST = "2024-01-01", "2024-04-30"
CUTOFF = "2024-03-01"
SERVED = days_between(date(2024, 3, 1), date(2024, 4, 30))
CORE = ("assets", "resources", "sensors", "platform", "datasets", "models")


@dataclass
class Bakery:
    catalog: Catalog
    instance: dg.DagsterInstance
    lake: object
    runs: list[dg.ExecuteInProcessResult]
    ticks: dict[str, dg.SensorResult | dg.SkipReason]


@pytest.fixture(scope="module")
def bakery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bakery]:
    catalog = load_catalog(extra=["guide_bakery"])
    every_asset = build_assets(catalog)
    lake = make_lake(tmp_path_factory.mktemp("bakery"))
    resources = platform_resources(sources=Sources(kind="bundled"), lake=lake)
    with platform_instance() as instance:

        def run(keys: list[str], first: str, last: str | None = None):
            return dg.materialize(
                every_asset,
                selection=keys,
                instance=instance,
                resources=resources,
                tags={
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last or first,
                },
                run_config=QUIET,
            )

        runs = [
            run(["bakery_plan", "bakery_sales"], FIRST, LAST),
            run([f"{MODEL}/features"], FIRST, LAST),
            run([f"{MODEL}/model"], CUTOFF),
            run([f"{MODEL}/predictions", f"{MODEL}/feature_drift"], CUTOFF, LAST),
            run([f"{MODEL}/prediction_quality"], CUTOFF, LAST),
        ]
        sensors = {s.name: s for s in build_sensor_definitions(catalog).sensors}
        ticks = {
            name: sensors[name](dg.build_sensor_context(instance=instance))
            for name in (drift_sensor_name(MODEL), quality_sensor_name(MODEL))
        }
        yield Bakery(catalog, instance, lake, runs, ticks)


def test_the_declarations_live_outside_the_core_and_the_core_knows_nothing_of_them():
    module = Path(guide_bakery.__file__).resolve()
    assert module.parent == REPO_ROOT / "tests"
    assert not any(module.is_relative_to(REPO_ROOT / package) for package in CORE)
    assert "bakery" not in {d.name for d in CATALOG.datasets}
    assert MODEL not in {m.name for m in CATALOG.models}


def test_every_step_of_the_platform_runs_on_the_new_dataset_and_model(bakery: Bakery):
    assert all(result.success for result in bakery.runs)
    plan = bakery.lake.read("bakery_plan", days_between(date(2024, 1, 1), date(2024, 4, 30)))
    assert len(plan) == 3 * 121
    predictions = bakery.lake.read(f"{MODEL}/predictions", SERVED)
    assert len(predictions) == 3 * len(SERVED)
    assert list(predictions.columns) == ["sale_date", "store", "score", "model_version", "arm"]
    quality = bakery.lake.read(f"{MODEL}/prediction_quality", SERVED)
    assert quality["mae"].notna().all() and (quality["rows"] == 3).all()


def test_at_three_rows_a_day_the_default_trees_still_learn(bakery: Bakery):
    """Leaves of 100 rows would make a constant model of 120 rows; the defaults follow the rows."""
    registry = platform_resources(lake=bakery.lake)["registry"]
    [record] = registry.versions(MODEL)
    assert record["params"]["min_samples_leaf"] == 5
    assert record["gate"]["passed"], record["gate"]
    predictions = bakery.lake.read(f"{MODEL}/predictions", SERVED)
    assert predictions["score"].nunique() > 30, "the model tells days and stores apart"
    sales = bakery.lake.read("bakery_sales", SERVED)
    joined = predictions.merge(sales, on=["sale_date", "store"])
    assert joined[["score", "loaves"]].corr().iloc[0, 1] > 0.7


def test_drift_pools_a_week_and_measures_distances_at_any_volume(bakery: Bakery):
    """evidently switches to p-value tests below 1,000 reference rows, under which a distance
    threshold flags every column; the platform keeps the distances, over a week of rows."""
    drift = bakery.lake.read(f"{MODEL}/feature_drift", SERVED)
    assert set(drift["method"]) <= {"Wasserstein distance (normed)", "Jensen-Shannon distance"}
    assert (drift.loc[drift["sale_date"].dt.date >= date(2024, 3, 7), "current_rows"] == 21).all()
    shares = drift.groupby("sale_date")["drifted"].mean()
    assert shares.min() < 1.0 and shares.mean() < 0.5, shares.describe()


def test_the_models_sensors_tick_on_its_metadata(bakery: Bakery):
    """Both sensors read the model's own metadata: drift shares by day, daily MAE beside the
    champion's holdout MAE (lower is better)."""

    def said(result: dg.SensorResult | dg.SkipReason) -> str:
        if isinstance(result, dg.SkipReason):
            return result.skip_message
        return result.run_requests[0].tags["platform/trigger_reason"]

    assert "2024-04-30: " in said(bakery.ticks[drift_sensor_name(MODEL)])
    quality = said(bakery.ticks[quality_sensor_name(MODEL)])
    assert "mean daily mae" in quality and "over 2024-04-24..2024-04-30" in quality


def test_the_code_location_registers_the_module_named_by_platform_declarations(tmp_path: Path):
    env = os.environ | {
        "PLATFORM_DECLARATIONS": "guide_bakery",
        "PYTHONPATH": str(REPO_ROOT / "tests"),
        "DAGSTER_HOME": str(tmp_path),
        "PLATFORM_DATA_DIR": str(tmp_path / "data"),
    }
    listed = subprocess.run(
        [str(DAGSTER), "asset", "list", "-f", "platform/definitions.py", "-d", "."],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    for key in ("bakery_plan", "bakery_sales", f"{MODEL}/model", "flight_delay/model"):
        assert key in listed.stdout, listed.stdout[-3000:]
    frame = pd.Series(listed.stdout.split())
    assert frame.str.startswith(f"{MODEL}/").sum() == 5


def test_a_classifier_whose_label_is_no_condition_fails_at_its_first_step(bakery: Bakery):
    """A whole-number label passes the load (its type could hold 0 and 1); its values cannot."""
    busy = dataclasses.replace(
        guide_bakery.MODEL,
        name="bakery_busy",
        task=Task.BINARY,
        features_sql="",
        inputs={},
        features_from=MODEL,
        metrics=(),
        gate_metric="",
        gate_limit=0.6,
    )
    catalog = Catalog(bakery.catalog.datasets, (*bakery.catalog.models, busy))
    result = dg.materialize(
        build_assets(catalog),
        selection=["bakery_busy/model"],
        partition_key=CUTOFF,
        instance=bakery.instance,
        resources=platform_resources(sources=Sources(kind="bundled"), lake=bakery.lake),
        run_config=QUIET,
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.event_specific_data.error.message
    assert "label 'loaves' takes" in message and "needs 0 and 1" in message, message
