"""The platform on S3 and PostgreSQL, configured by environment variables alone, gives the same
rows as the local profile: a range backfill, the daily cycle of a few days, and a retrain that the
drift sensor requests.

The local reference is the session's `synthetic_pipeline` (PIPELINE_STEPS on a local lake and a
SQLite instance: January 1 to March 10, a champion from March 1). The production run covers the
same days the way a deployment would: a backfill up to March 8, then the daily cycle of March 9
in-process and of March 10 through the `dagster asset materialize` command of
docs/deployment.md. The drift sensor, reading the drift metadata from PostgreSQL, then requests a
model for March 11, and the daily cycle of March 11 follows; the local reference does the same on
a copy of its lake.
"""

import dataclasses
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import (
    FLIGHT_MODELS,
    PIPELINE_FIRST,
    PIPELINE_LAST,
    PIPELINE_MODEL_CUTOFF,
    SYNTHETIC_FLIGHTS_PER_DAY,
    BuiltPipeline,
    Platform,
    asset_graph,
    make_lake,
    platform_instance,
    synthetic_sources,
)

from assets import CATALOG
from assets.notebooks import NOTEBOOK_STAGE
from assets.tags import STAGE_TAG
from prod.conftest import Production, environment_of
from prod.servers import REPO_ROOT
from resources.days import days_between
from resources.lake import Lake
from resources.sources import Sources
from sensors.retrain import build_retrain_sensors, drift_sensor_name

MODEL = "flight_delay"
FLIGHT_DELAY = CATALOG.model(MODEL)
FLIGHTS = CATALOG.dataset_of(FLIGHT_DELAY)
MODEL_KEY, PREDICTIONS = f"{MODEL}/model", f"{MODEL}/predictions"
SEED = 7
BACKFILL_LAST = "2013-03-08"
CYCLE_IN_PROCESS, CYCLE_BY_COMMAND = "2013-03-09", PIPELINE_LAST
RETRAIN_CUTOFF = "2013-03-11"
# The synthetic source injects no drift here, so its daily drift share stays low (0.07 to 0.21):
# the sensor counts any drifted column, and a retrain 10 days after the first model is allowed.
SENSITIVE = dataclasses.replace(
    FLIGHT_DELAY.monitoring, drift_threshold=0.0, retrain_cooldown_days=7
)
DAGSTER = Path(sys.executable).with_name("dagster")


def iso_days(first: str, last: str) -> list[date]:
    return days_between(date.fromisoformat(first), date.fromisoformat(last))


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def daily_cycle_keys() -> list[str]:
    """Every daily asset of the flights except the models and the notebooks (each follows a
    trained version, and `test_notebooks` runs them): what the daily cycle materializes for a
    day."""
    graph = asset_graph()
    return sorted(
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).partitions_def == FLIGHTS.partitions
        and key.path[-1] != "model"
        and graph.get(key).tags.get(STAGE_TAG) != NOTEBOOK_STAGE
    )


def history_without_times(registry) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "created_at"} for e in registry.history(MODEL)]


def synthetic_source() -> Sources:
    return synthetic_sources(SEED)


def retrain_and_next_day(platform: Platform, keys: list[str], cutoff: str) -> None:
    """The retrain run (`keys` for the day `cutoff`), then the daily cycle of that day."""
    platform.materialize(keys, cutoff)
    platform.materialize(daily_cycle_keys(), cutoff)


@dataclass
class Deployed:
    platform: Platform
    predictions_before_retrain: pd.DataFrame
    history_before_retrain: list[dict]
    retrain_request: dg.RunRequest


@pytest.fixture(scope="module")
def deployed(production: Production) -> Deployed:
    """The graph materialized against S3 and PostgreSQL, then the retrain the sensor asks for."""
    instance = dg.DagsterInstance.get()  # DAGSTER_HOME holds platform/production/dagster.yaml
    platform = Platform(instance, synthetic_source(), Lake())  # the lake of PLATFORM_LAKE_URI
    platform.materialize(["raw_planes"])
    raw_and_features = ["raw_flights", "raw_weather", "flight_outcomes", f"{MODEL}/features"]
    platform.materialize(raw_and_features, PIPELINE_FIRST, BACKFILL_LAST)
    platform.materialize([f"{m.name}/model" for m in FLIGHT_MODELS], PIPELINE_MODEL_CUTOFF)
    monitored = [
        k
        for k in daily_cycle_keys()
        if k.split("/")[0] in {m.name for m in FLIGHT_MODELS} and not k.endswith("/features")
    ]
    platform.materialize(monitored, PIPELINE_MODEL_CUTOFF, BACKFILL_LAST)
    platform.materialize(daily_cycle_keys(), CYCLE_IN_PROCESS)
    env = environment_of(production) | {
        "PLATFORM_SOURCE": "synthetic",
        "PLATFORM_SYNTHETIC_SEED": str(SEED),
        "PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY": str(SYNTHETIC_FLIGHTS_PER_DAY),
    }
    command = subprocess.run(
        [
            str(DAGSTER), "asset", "materialize", "-f", "platform/definitions.py", "-d", ".",
            "--select", ",".join(daily_cycle_keys()), "--partition", CYCLE_BY_COMMAND,
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert command.returncode == 0, command.stdout + command.stderr
    registry = platform.resources["registry"]
    days = iso_days(PIPELINE_MODEL_CUTOFF, PIPELINE_LAST)
    before = canonical(platform.lake.read(PREDICTIONS, days))
    history = history_without_times(registry)

    sensor = next(
        s
        for s in build_retrain_sensors(
            CATALOG, dataclasses.replace(FLIGHT_DELAY, monitoring=SENSITIVE)
        )
        if s.name == drift_sensor_name(MODEL)
    )
    result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SensorResult), result
    (request,) = result.run_requests
    keys = [key.to_user_string() for key in request.asset_selection]
    retrain_and_next_day(platform, keys, request.partition_key)
    return Deployed(platform, before, history, request)


@pytest.fixture(scope="module")
def local_retrained(
    synthetic_pipeline: BuiltPipeline, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The local reference after the same retrain and next day, on a copy of its lake."""
    folder = tmp_path_factory.mktemp("local_retrain")
    shutil.copytree(synthetic_pipeline.platform.lake.root, folder / "lake")
    with platform_instance() as instance:
        platform = Platform(instance, synthetic_source(), make_lake(folder))
        retrain_and_next_day(platform, [MODEL_KEY], RETRAIN_CUTOFF)
        yield platform


def test_backfill_and_daily_cycle_on_s3_predict_like_the_local_profile(
    deployed: Deployed, synthetic_pipeline: BuiltPipeline
):
    local = synthetic_pipeline.platform
    days = iso_days(PIPELINE_MODEL_CUTOFF, PIPELINE_LAST)
    expected = canonical(local.lake.read(PREDICTIONS, days))
    assert len(expected) > 0
    pd.testing.assert_frame_equal(deployed.predictions_before_retrain, expected)
    assert deployed.history_before_retrain == history_without_times(local.resources["registry"])


def test_a_retrain_on_s3_gives_the_local_version_and_predictions(
    deployed: Deployed, local_retrained: Platform
):
    request = deployed.retrain_request
    assert (request.asset_selection, request.partition_key) == (
        [dg.AssetKey.from_user_string(MODEL_KEY)],
        RETRAIN_CUTOFF,
    )
    production, local = deployed.platform, local_retrained
    registry, local_registry = production.resources["registry"], local.resources["registry"]
    assert [r["version"] for r in registry.versions(MODEL)] == [
        r["version"] for r in local_registry.versions(MODEL)
    ]
    assert len(registry.versions(MODEL)) == 2
    assert history_without_times(registry) == history_without_times(local_registry)
    day = [date.fromisoformat(RETRAIN_CUTOFF)]
    pd.testing.assert_frame_equal(
        canonical(production.lake.read(PREDICTIONS, day)),
        canonical(local.lake.read(PREDICTIONS, day)),
    )


def test_runs_and_partitions_are_recorded_in_postgres(deployed: Deployed):
    instance = deployed.platform.instance
    records = instance.get_run_records()
    # Planes, raw and features, the first model, its predictions and monitoring, two days of the
    # cycle, the retrain, the cycle of the day after.
    assert len(records) == 8
    assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
    materialized = instance.get_materialized_partitions(dg.AssetKey.from_user_string(PREDICTIONS))
    wanted = {d.isoformat() for d in iso_days(PIPELINE_MODEL_CUTOFF, RETRAIN_CUTOFF)}
    assert materialized == wanted


def test_compute_logs_and_the_lake_live_on_s3_and_nothing_on_local_disk(
    deployed: Deployed, production: Production
):
    client = production.s3_client()
    logs = client.list_objects_v2(Bucket=production.logs_bucket, Prefix="flightdesk/compute-logs/")
    assert logs.get("KeyCount", 0) > 0, "no compute log reached S3"
    lake = client.list_objects_v2(Bucket=production.lake_bucket, Prefix="lake/registry/")
    assert lake.get("KeyCount", 0) > 0
    data_dir = Path(production.env["PLATFORM_DATA_DIR"])
    assert not (data_dir / "lake").exists()
    assert not (data_dir / "warehouse.duckdb").exists()


def test_the_models_command_reads_the_s3_registry(deployed: Deployed, production: Production):
    result = subprocess.run(
        [sys.executable, "-m", "resources.models_cli", "--model", MODEL, "history"],
        cwd=REPO_ROOT,
        env=environment_of(production),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for entry in deployed.platform.resources["registry"].history(MODEL):
        assert entry["version"] in result.stdout


def test_analysts_read_the_s3_predictions_through_duckdb(deployed: Deployed):
    lake = deployed.platform.lake
    view = lake.connect().execute("SELECT * FROM flight_delay_predictions").df()
    stored = lake.read(PREDICTIONS, iso_days(PIPELINE_MODEL_CUTOFF, RETRAIN_CUTOFF))
    pd.testing.assert_frame_equal(canonical(view), canonical(stored))
