"""End to end: with only `dagster-daemon` running, drifted days are noticed, retrained on, promoted.

A champion is bootstrapped in-process (the session's synthetic pipeline: January 1 to March 10, a
champion from March 1, copied into a temporary DAGSTER_HOME and data folder). Then
`dagster-daemon run` starts, and the test feeds the raw tables of eight drifted days (March 11-18)
as a feed would. From there the daemon alone must: compute their features, drift reports,
predictions and quality (the daily cycle), see the drift persist for three days (the drift
sensor, with its default settings) and launch `flight_delay/model` for the day after them
(2013-03-19 when it sees all eight days at once), whose quality gate promotes it.
The test only watches the instance and the registry, within a deadline, and fails with the runs
and the end of the daemon's log when that does not happen.
"""

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
from conftest import (
    PIPELINE_LAST,
    QUIET,
    SYNTHETIC_FLIGHTS_PER_DAY,
    BuiltPipeline,
    synthetic_sources,
)
from daemon_support import Daemon

from assets import CATALOG
from assets import defs as asset_defs
from resources import platform_resources
from resources.instance_storage import install_instance_config
from resources.lake import Lake
from resources.registry import ModelRegistry
from sensors.run_tags import TRIGGER_TAG, Trigger
from sensors.schedules import DAILY_CYCLE_SENSOR

MODEL = "flight_delay"
RAW_TABLES = ["raw_flights", "raw_weather", "flight_outcomes"]
SEED = 7  # the session pipeline's: the bootstrapped history is the same data
DRIFT_START = date.fromisoformat(PIPELINE_LAST) + timedelta(days=1)
# Enough drifted days for the rolling features to move: the drift share stays above the sensor's
# default threshold on the last three of them.
FED = (DRIFT_START.isoformat(), (DRIFT_START + timedelta(days=7)).isoformat())
RETRAIN_CUTOFF = (DRIFT_START + timedelta(days=8)).isoformat()
STARTUP_SECONDS = 120
DEADLINE_SECONDS = 240
ENVIRONMENT = {
    "PLATFORM_SOURCE": "synthetic",
    "PLATFORM_SYNTHETIC_SEED": str(SEED),
    "PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY": str(SYNTHETIC_FLIGHTS_PER_DAY),
    "PLATFORM_SYNTHETIC_DRIFT_START": DRIFT_START.isoformat(),
    "PLATFORM_AUTOMATION_SECONDS": "2",
    "PLATFORM_RETRAIN_SENSOR_SECONDS": "2",
    # The drift sensor is under test: the quality sensor must not take the retrain first.
    "PLATFORM_FLIGHT_DELAY_QUALITY_LIMIT": "0",
    "PLATFORM_FLIGHT_DELAY_QUALITY_MARGIN": "1",
}


@dataclass
class Deployment:
    """A temporary instance and data folder holding a champion, and the daemon's environment."""

    home: Path
    lake: Lake
    environment: dict[str, str]

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


def copy_materializations(source: dg.DagsterInstance, target: dg.DagsterInstance) -> int:
    """Every materialization of `source`, with its partition and metadata, recorded in `target`."""
    copied = 0
    for key in source.get_asset_keys():
        cursor = None
        while True:
            page = source.fetch_materializations(key, limit=1000, cursor=cursor, ascending=True)
            for record in page.records:
                target.report_runless_asset_event(record.asset_materialization)
                copied += 1
            if not page.has_more:
                break
            cursor = page.cursor
    return copied


@pytest.fixture
def deployment(synthetic_pipeline: BuiltPipeline, tmp_path: Path) -> Deployment:
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    install_instance_config(home)
    shutil.copytree(synthetic_pipeline.platform.lake.root, data / "lake")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert copy_materializations(synthetic_pipeline.platform.instance, instance)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    environment |= ENVIRONMENT | {"DAGSTER_HOME": str(home), "PLATFORM_DATA_DIR": str(data)}
    lake = Lake(uri=str(data / "lake"), warehouse_path=str(data / "warehouse.duckdb"))
    return Deployment(home, lake, environment)


@pytest.fixture
def daemon(deployment: Deployment, tmp_path: Path) -> Iterator[Daemon]:
    started = Daemon(deployment.environment, tmp_path / "daemon.log")
    try:
        yield started
    finally:
        started.stop()


def test_daemon_retrains_on_drifted_days_and_promotes(deployment: Deployment, daemon: Daemon):
    registry = ModelRegistry(lake=deployment.lake)
    [bootstrapped] = registry.history(MODEL)
    with deployment.instance() as instance:
        # Data landing before the daily cycle's first evaluation counts as history, not news.
        daemon.wait_until(lambda: cycle_has_ticked(instance), STARTUP_SECONDS, "daily_cycle tick")
        feed(instance, deployment.lake, *FED)
        retrain = daemon.wait_until(
            lambda: finished_drift_retrain(instance), DEADLINE_SECONDS, "drift retrain"
        )
        runs = describe_runs(instance)
    cutoff = retrain.tags["dagster/partition"]
    # The sensor acts on the drifted days it has seen: the day after the last fed one when the
    # daily cycle's eight days are recorded before its tick, earlier when a tick falls between.
    assert FED[0] < cutoff <= RETRAIN_CUTOFF, runs
    settings = CATALOG.model(MODEL).monitoring
    judged = [
        date.fromisoformat(cutoff) - timedelta(days=n) for n in range(1, settings.drift_days + 1)
    ]
    assert all(s > settings.drift_threshold for s in drift_shares(deployment.lake, judged)), runs
    promoted = [e for e in registry.history(MODEL) if e["seq"] > bootstrapped["seq"]]
    assert [(e["action"], e["effective_from"]) for e in promoted] == [("promote", cutoff)], runs
    assert promoted[0]["version"].startswith(f"{cutoff}.")


def drift_shares(lake: Lake, days: list[date]) -> list[float]:
    """Each day's share of drifted columns among those tested, from the drift table."""
    rows = lake.read(f"{MODEL}/feature_drift", days)
    tested = rows[rows["method"] != ""]
    return tested.groupby("flight_date")["drifted"].mean().tolist()


def cycle_has_ticked(instance: dg.DagsterInstance) -> bool:
    states = [s for s in instance.all_instigator_state() if s.instigator_name == DAILY_CYCLE_SENSOR]
    return any(instance.get_ticks(s.instigator_origin_id, s.selector_id, limit=1) for s in states)


def feed(instance: dg.DagsterInstance, lake: Lake, first: str, last: str) -> None:
    """The raw tables of `first`..`last` land, from the synthetic source drifting since the first."""
    sources = synthetic_sources(SEED, drift_start=DRIFT_START.isoformat())
    dg.materialize(
        list(asset_defs.assets),
        selection=RAW_TABLES,
        instance=instance,
        resources=platform_resources(sources=sources, lake=lake),
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        run_config=QUIET,
    )


def finished_drift_retrain(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    """The drift sensor's retraining run of the model once it succeeded; fails at once if it
    failed. Other models' drift sensors retrain theirs beside it."""
    model = dg.AssetKey([MODEL, "model"])
    for run in instance.get_runs(dg.RunsFilter(tags={TRIGGER_TAG: Trigger.DRIFT})):
        if model not in (run.asset_selection or ()):
            continue
        if run.status == dg.DagsterRunStatus.FAILURE:
            pytest.fail(f"retraining run {run.run_id} failed\n{describe_runs(instance)}")
        if run.status == dg.DagsterRunStatus.SUCCESS:
            return run
    return None


def describe_runs(instance: dg.DagsterInstance) -> str:
    return "runs, newest first:\n" + "\n".join(
        f"  {r.job_name} {r.tags.get('dagster/partition', '')}"
        f"{r.tags.get('dagster/asset_partition_range_start', '')} "
        f"{r.tags.get(TRIGGER_TAG, '')} {r.status.value}"
        for r in instance.get_runs(limit=20)
    )
