"""The worker-pool profile: the steps of a run execute on two Celery workers, separate processes
that share only Redis, PostgreSQL and the S3 lake, and the lake then holds what the single-process
profile writes, row for row.

The deployment's history is built in process on S3 and PostgreSQL: each dataset's registers, raw
tables and features for the shortest window its models train on, then each model's first version
at the end of it. The daily steps of every model of a dataset (its raw tables, the features, predictions,
drift and quality of its models) for the cutoff and the day after then run twice: in process (the
single-process profile, the reference), and, once those partitions are deleted, through
`dagster asset materialize` with PLATFORM_EXECUTOR=celery, one run per dataset, both runs at once
on the pool.

Then the daemon of the deployment, with PLATFORM_BACKFILL_DAYS_PER_RUN=1, fans a backfill out
into runs of one day, concurrent on the pool, that leave the rows of one in-process run; and a
backfill of two trainings of a model runs them one after the other (the training pool).
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import Platform, start_materialize, synthetic_sources
from daemon_support import Daemon

from assets import CATALOG
from assets import defs as asset_defs
from assets.keys import features_key, model_key, served_keys
from assets.model_pipeline import GATE_PASSED, MODEL_VERSION, training_pool
from prod.conftest import Production
from prod.servers import CeleryWorker, RedisServer
from prod.worker_pool import pool_environment, worker_pool
from resources import defs as resource_defs
from resources import promotions, settings
from resources.dataset import Dataset
from resources.days import days_between
from resources.lake import Lake
from resources.registry import ModelRegistry
from sensors.run_tags import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

WORKERS = ("worker-a", "worker-b")
REDIS_DATABASE = 0
SERVED_DAYS = 2
WORKER_METADATA = "Celery worker"  # dagster-celery's engine event naming a step's worker
FLIGHT_DELAY = CATALOG.model("flight_delay")


def cutoff_of(dataset: Dataset) -> date:
    """The earliest cutoff every model of `dataset` can be trained at: a short history to build."""
    return dataset.first_day + timedelta(
        days=max(m.min_window_days for m in CATALOG.models_of(dataset))
    )


def daily_steps(dataset: Dataset) -> list[str]:
    """Every model's daily steps on `dataset`: its raw tables, then each model's features,
    predictions, drift and quality (no training)."""
    models = CATALOG.models_of(dataset)
    keys = [features_key(m) for m in models if not m.features_from]
    keys += [key for m in models for key in served_keys(m)]
    return [t.name for t in dataset.daily_tables] + [k.to_user_string() for k in keys]


def served_days(dataset: Dataset) -> list[date]:
    first = cutoff_of(dataset)
    return days_between(first, first + timedelta(days=SERVED_DAYS - 1))


def partitions_of(lake: Lake, days: list[date]) -> dict[str, pd.DataFrame]:
    """Every table of the lake holding any of `days`, with those days' rows in a stable order."""
    return {
        table: rows_of(lake, table, days)
        for table in lake.tables()
        if lake.missing_partitions(table, days) != days
    }


def rows_of(lake: Lake, table: str, days: list[date]) -> pd.DataFrame:
    """`table`'s rows of `days` in a stable order; fails unless it holds every one of them."""
    missing = lake.missing_partitions(table, days)
    if missing:
        held = [d.isoformat() for d in days if d not in missing]
        pytest.fail(f"{table} holds only {held} of {[d.isoformat() for d in days]}")
    frame = lake.read(table, days)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def delete_partitions(production: Production, lake: Lake, tables: list[str], days: list[date]):
    keys = [lake.store._key(Lake.partition_key(t, d)) for t in tables for d in days]
    production.s3_client().delete_objects(
        Bucket=production.lake_bucket, Delete={"Objects": [{"Key": k} for k in keys]}
    )
    assert all(lake.missing_partitions(t, days) == days for t in tables)


@dataclass
class Served:
    """A dataset's daily steps, in process and on the pool."""

    expected: dict[str, pd.DataFrame]
    actual: dict[str, pd.DataFrame]
    run: dg.DagsterRun


@pytest.fixture(scope="module")
def pool(
    production: Production, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], list[CeleryWorker]]]:
    environment = pool_environment(production, redis_server.url(REDIS_DATABASE))
    with worker_pool(WORKERS, environment, tmp_path_factory.mktemp("pool")) as workers:
        yield environment, workers


@pytest.fixture(scope="module")
def served(
    production: Production, pool, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Served]:
    """Each dataset's history and the single-process reference, then one pool run per dataset,
    both at once."""
    environment, _ = pool
    instance = dg.DagsterInstance.get()  # the production instance, on PostgreSQL
    lake = Lake()  # PLATFORM_LAKE_URI, on S3
    platform = Platform(instance, synthetic_sources(), lake)
    logs = tmp_path_factory.mktemp("runs")
    expected, runs = {}, {}
    for dataset in CATALOG.datasets:
        cutoff, days = cutoff_of(dataset), served_days(dataset)
        if dataset.registers:
            platform.materialize([t.name for t in dataset.registers])
        computed = [
            features_key(m).to_user_string()
            for m in CATALOG.models_of(dataset)
            if not m.features_from
        ]
        history = (dataset.first_day.isoformat(), (cutoff - timedelta(days=1)).isoformat())
        platform.materialize([t.name for t in dataset.daily_tables] + computed, *history)
        models = [model_key(m).to_user_string() for m in CATALOG.models_of(dataset)]
        platform.materialize(models, cutoff.isoformat())
        span = f"{days[0]}...{days[-1]}"
        platform.materialize(daily_steps(dataset), days[0].isoformat(), days[-1].isoformat())
        expected[dataset.name] = partitions_of(lake, days)
        delete_partitions(production, lake, list(expected[dataset.name]), days)
        log = logs / f"{dataset.name}.log"
        runs[dataset.name] = (
            start_materialize(
                environment, ",".join(daily_steps(dataset)), "--partition-range", span, log=log
            ),
            log,
        )
    outcome = {}
    for dataset in CATALOG.datasets:
        command, log = runs[dataset.name]
        assert command.wait(timeout=900) == 0, log.read_text()[-5000:]
        [record] = instance.get_run_records(
            dg.RunsFilter(tags={RANGE_START_TAG: served_days(dataset)[0].isoformat()}), limit=1
        )
        outcome[dataset.name] = Served(
            expected[dataset.name], partitions_of(lake, served_days(dataset)), record.dagster_run
        )
    return outcome


def step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """The worker each step of a run executed on, from the run's engine events."""
    found = {}
    for record in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=10_000
    ).records:
        event = record.event_log_entry.dagster_event
        worker = event.engine_event_data.metadata.get(WORKER_METADATA)
        if worker is not None:
            found[event.step_key] = worker.value
    return found


def test_every_step_of_each_run_executes_on_a_worker_of_the_pool_and_both_take_steps(
    served: dict[str, Served], pool
):
    _, workers = pool
    instance = dg.DagsterInstance.get()
    nodes = {w.node for w in workers}
    for name, outcome in served.items():
        run = outcome.run
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags.get("dagster/partition") is None  # one run over the range
        executed = step_workers(instance, run.run_id)
        dataset = next(d for d in CATALOG.datasets if d.name == name)
        steps = {k.replace("/", "__") for k in daily_steps(dataset)}
        assert set(executed) == steps, f"{name}: steps without a Celery worker"
        assert set(executed.values()) == nodes, f"{name}: steps per worker {executed}"


def test_the_lake_holds_the_single_process_rows(served: dict[str, Served]):
    for name, outcome in served.items():
        assert set(outcome.actual) == set(outcome.expected), name
        for table, frame in outcome.expected.items():
            assert len(frame) > 0, table
            pd.testing.assert_frame_equal(outcome.actual[table], frame, obj=table)


def test_nothing_a_step_needs_is_kept_on_the_launching_machine_or_a_worker(
    served: dict[str, Served], production: Production, pool
):
    _, workers = pool
    # No step output was stored under the launcher's instance folder, nor a lake on any disk.
    assert not (production.dagster_home / "storage").exists()
    for worker in workers:
        assert not (worker.folder / "data" / "lake").exists()
    assert not (Path(production.env["PLATFORM_DATA_DIR"]) / "lake").exists()


# --- Fan-out: a backfill split into runs of a declared number of days, run by the daemon --------

FANNED_OUT_DAYS = 3
DAYS_PER_RUN = 1
BACKFILL_TAG = "dagster/backfill"
BACKFILL_SECONDS = 600


@dataclass
class FannedOut:
    """Two backfills the daemon split into runs: flight_delay's features of a few days (and their
    single-run rows), and flight_delay trained at two cutoffs."""

    expected: pd.DataFrame
    actual: pd.DataFrame
    days: list[date]
    features: list[dg.RunRecord]
    trainings: list[dg.RunRecord]


def add_backfill(instance: dg.DagsterInstance, keys: list[str], days: list[date]) -> str:
    """An asset backfill of `keys` over `days`, as the UI's *Materialize selected* creates it."""
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    graph = dg.Definitions.merge(asset_defs, resource_defs).resolve_asset_graph()
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=graph,
        partition_names=[d.isoformat() for d in days],
        asset_selection=[dg.AssetKey.from_user_string(k) for k in keys],
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def backfill_ended(instance: dg.DagsterInstance, backfill_id: str) -> bool:
    from dagster._core.execution.backfill import BulkActionStatus

    status = instance.get_backfill(backfill_id).status
    assert status not in (BulkActionStatus.FAILED, BulkActionStatus.CANCELED), status
    return status in (BulkActionStatus.COMPLETED, BulkActionStatus.COMPLETED_SUCCESS)


@pytest.fixture(scope="module")
def fanned_out(
    production: Production, pool, served, tmp_path_factory: pytest.TempPathFactory
) -> FannedOut:
    """After the days served above: flight_delay's features of the next days in one in-process
    run (the single-run reference), deleted, then backfilled by the daemon in runs of one day on
    the pool; at the same time, flight_delay trained at the two cutoffs after its first.

    Features are what a split could change: each day reads the outcomes of the week before it,
    across the runs' boundaries. (A backfill that also selects the raw tables targets as well the
    features of the week after the range, whose windows read it: Dagster's asset backfills follow
    the lineage downstream.) Only the features are compared: the daemon's daily cycle may start
    computing the assets downstream of those days meanwhile, and stops with the daemon."""
    environment, _ = pool
    instance = dg.DagsterInstance.get()
    lake = Lake()
    flights = CATALOG.dataset_of(FLIGHT_DELAY)
    after = served_days(flights)[-1]
    days = days_between(after + timedelta(days=1), after + timedelta(days=FANNED_OUT_DAYS))
    features = features_key(FLIGHT_DELAY).to_user_string()
    platform = Platform(instance, synthetic_sources(), lake)
    raw = [t.name for t in flights.daily_tables]
    platform.materialize([*raw, features], days[0].isoformat(), days[-1].isoformat())
    expected = rows_of(lake, features, days)
    delete_partitions(production, lake, [features], days)
    cutoffs = days_between(cutoff_of(flights) + timedelta(days=1), after + timedelta(days=1))
    # As an operator does once per model on a new instance: the pool holds from its first run.
    for spec in CATALOG.models:
        instance.event_log_storage.initialize_concurrency_limit_to_default(training_pool(spec))

    daemon = Daemon(
        environment | {settings.BACKFILL_DAYS_PER_RUN_ENV: str(DAYS_PER_RUN)},
        tmp_path_factory.mktemp("daemon") / "daemon.log",
    )
    try:
        fanned = add_backfill(instance, [features], days)
        trainings = add_backfill(instance, [model_key(FLIGHT_DELAY).to_user_string()], cutoffs)
        for backfill_id in (fanned, trainings):
            daemon.wait_until(
                lambda b=backfill_id: backfill_ended(instance, b), BACKFILL_SECONDS, "backfill"
            )
    finally:
        daemon.stop()

    def records(backfill_id: str) -> list[dg.RunRecord]:
        found = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
        return sorted(found, key=lambda r: r.start_time or 0.0)

    actual = rows_of(lake, features, days)
    return FannedOut(expected, actual, days, records(fanned), records(trainings))


def run_span(instance: dg.DagsterInstance, record: dg.RunRecord) -> tuple[float, float]:
    """When a run was in progress: from its launch by the queue (its process starting) to its
    end."""
    [starting] = instance.get_records_for_run(
        record.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_STARTING
    ).records
    return starting.event_log_entry.timestamp, record.end_time


def run_days(record: dg.RunRecord) -> list[str]:
    """The days a run covered, from its partition tags."""
    tags = record.dagster_run.tags
    if PARTITION_TAG in tags:
        return [tags[PARTITION_TAG]]
    first, last = date.fromisoformat(tags[RANGE_START_TAG]), date.fromisoformat(tags[RANGE_END_TAG])
    return [d.isoformat() for d in days_between(first, last)]


def test_a_backfill_fans_out_into_concurrent_runs_of_the_declared_days_with_single_run_rows(
    fanned_out: FannedOut, pool
):
    _, workers = pool
    instance = dg.DagsterInstance.get()
    runs = fanned_out.features
    assert {r.dagster_run.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert all(len(run_days(r)) == DAYS_PER_RUN for r in runs)
    assert sorted(d for r in runs for d in run_days(r)) == [d.isoformat() for d in fanned_out.days]
    spans = sorted(run_span(instance, r) for r in runs)
    overlapping = [(a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]
    assert overlapping, f"the runs of the backfill never ran at the same time: {spans}"
    for record in runs:
        executed = step_workers(instance, record.dagster_run.run_id)
        assert executed and set(executed.values()) <= {w.node for w in workers}
    pd.testing.assert_frame_equal(fanned_out.actual, fanned_out.expected)


def test_the_training_pool_serializes_a_model_s_runs_and_each_gate_sees_the_champion_before_it(
    fanned_out: FannedOut,
):
    runs = fanned_out.trainings
    assert len(runs) == 2
    assert [run_days(r) for r in runs] == sorted(run_days(r) for r in runs)
    instance = dg.DagsterInstance.get()
    first, second = (run_span(instance, r) for r in runs)
    assert first[1] <= second[0], f"two trainings of a model ran at once: {first}, {second}"
    # Each cutoff was gated against the champion in force before it, as in one run over both; a
    # rejected candidate is not a failed run (the champion keeps serving), and each run's
    # materialization records its own gate's outcome.
    registry = ModelRegistry(lake=Lake())
    history = registry.history(FLIGHT_DELAY.name)
    for run in runs:
        assert run.dagster_run.status == dg.DagsterRunStatus.SUCCESS, run_days(run)
        cutoff = run_days(run)[0]
        [record] = [r for r in registry.versions(FLIGHT_DELAY.name) if r["partition"] == cutoff]
        before = [e for e in history if e["version"] != record["version"]]
        champion = promotions.champion_at(before, date.fromisoformat(cutoff))
        assert record["gate"]["champion_version"] == champion["version"]
        [materialized] = instance.get_records_for_run(
            run.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        metadata = materialized.event_log_entry.asset_materialization.metadata
        assert metadata[MODEL_VERSION].value == record["version"]
        assert metadata[GATE_PASSED].value is record["gate"]["passed"]
    assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
