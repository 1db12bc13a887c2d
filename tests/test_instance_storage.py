"""The instance storage of `make run` writes a range run's events in batches and reads back what
Dagster's own SQLite storage reads: each day's materialization and metadata, partition status
(materialized and failed days), planned materializations, asset records and check evaluations.

Both storages run the same runs of a small daily graph (a range run that succeeds, then one
that fails after recording some of its days, as `assets/per_day.py` does); every read a sensor or
the UI makes must then agree between them.
"""

from collections.abc import Iterator

import dagster as dg
import pytest
from conftest import platform_instance
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from resources.instance_storage import BatchingSqliteEventLogStorage, install_instance_config

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-01")
FIRST, LAST = "2024-01-01", "2024-01-20"
FAILING_FIRST, FAILING_LAST = "2024-01-21", "2024-01-25"
# Days of the failing run that are computed before it fails; the others lack their inputs.
COMPUTED_BEFORE_FAILING = ["2024-01-21", "2024-01-22"]
ROWS = "rows"


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def upstream(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    for day in context.partition_keys:
        context.add_asset_metadata({ROWS: int(day[-2:])}, partition_key=day)
    return dg.MaterializeResult()


@dg.asset(
    partitions_def=DAYS,
    deps=[upstream],
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("rows_positive", asset="downstream")],
)
def downstream(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    days = context.partition_keys
    if days[0] == FAILING_FIRST:
        for day in COMPUTED_BEFORE_FAILING:
            context.log_event(
                dg.AssetMaterialization("downstream", partition=day, metadata={ROWS: 1})
            )
        raise dg.Failure("days without inputs", allow_retries=False)
    for day in days:
        context.add_asset_metadata({ROWS: 2 * int(day[-2:])}, partition_key=day)
    return dg.MaterializeResult(
        check_results=[dg.AssetCheckResult(check_name="rows_positive", passed=True)]
    )


def run_days(instance: dg.DagsterInstance, first: str, last: str) -> bool:
    return dg.materialize(
        [upstream, downstream],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        raise_on_error=False,
    ).success


def what_readers_see(instance: dg.DagsterInstance) -> dict:
    """What the UI and sensors read of both assets, free of run ids and times."""
    seen = {}
    every_day = DAYS.get_partition_keys()
    for asset in ("upstream", "downstream"):
        key = dg.AssetKey(asset)
        materializations = instance.fetch_materializations(key, limit=1000).records
        seen[asset] = {
            "metadata by day": sorted(
                (r.partition_key, r.asset_materialization.metadata[ROWS].value)
                for r in materializations
            ),
            "materialized": sorted(instance.get_materialized_partitions(key)),
            "status": {
                day: str(status)
                for day, status in instance.get_status_by_partition(key, every_day, DAYS).items()
            },
            "planned": len(instance.fetch_planned_materializations(key, limit=1000).records),
            "latest": instance.get_latest_materialization_event(key).dagster_event.partition,
            "indexed tags are the event's own": all(
                instance.event_log_storage.get_event_tags_for_asset(
                    key, filter_event_id=r.storage_id
                )
                == [indexed_tags(r.asset_materialization)]
                for r in materializations
            ),
            "record is the latest event": (
                instance.get_asset_records([key])[0].asset_entry.last_materialization_record
                == materializations[0]
            ),
        }
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("downstream"), "rows_positive"), limit=1000
    )
    seen["check by day"] = sorted((str(r.partition), str(r.status)) for r in history)
    return seen


def indexed_tags(materialization: dg.AssetMaterialization) -> dict[str, str]:
    """The tags of a materialization Dagster's event storage indexes by event id."""
    return {k: v for k, v in (materialization.tags or {}).items() if k == DATA_VERSION_TAG}


@pytest.fixture
def plain_instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def batching_instance() -> Iterator[dg.DagsterInstance]:
    with platform_instance() as instance:
        yield instance


def test_make_runs_instance_writes_a_range_runs_events_in_batches(
    batching_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
):
    storage = batching_instance.event_log_storage
    assert isinstance(storage, BatchingSqliteEventLogStorage)
    one_by_one = []
    original = BatchingSqliteEventLogStorage.store_event
    monkeypatch.setattr(
        BatchingSqliteEventLogStorage,
        "store_event",
        lambda self, event: one_by_one.append(event) or original(self, event),
    )
    assert run_days(batching_instance, FIRST, LAST)
    per_day = {
        dg.DagsterEventType.ASSET_MATERIALIZATION,
        dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    }
    assert not [e for e in one_by_one if e.dagster_event_type in per_day]
    run_id = batching_instance.get_run_records(limit=1)[0].dagster_run.run_id
    stored = storage.get_records_for_run(run_id, of_type=per_day, limit=10_000).records
    days = len(DAYS.get_partition_keys_in_range(dg.PartitionKeyRange(FIRST, LAST)))
    assert len(stored) == 2 * 2 * days  # two assets, planned and materialized each day


def test_readers_see_what_dagsters_sqlite_storage_shows(
    plain_instance: dg.DagsterInstance, batching_instance: dg.DagsterInstance
):
    for instance in (plain_instance, batching_instance):
        assert run_days(instance, FIRST, LAST)
        assert not run_days(instance, FAILING_FIRST, FAILING_LAST)
    seen = what_readers_see(batching_instance)
    assert seen == what_readers_see(plain_instance)
    status = seen["downstream"]["status"]
    assert [d for d, s in status.items() if "FAILED" in s] == [
        "2024-01-23",
        "2024-01-24",
        "2024-01-25",
    ]
    assert len(seen["upstream"]["metadata by day"]) == 25


def test_an_installed_instance_opens_by_its_folder_whatever_dagster_home_says(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    home, elsewhere = tmp_path / "dagster_home", tmp_path / "elsewhere"
    install_instance_config(home)
    monkeypatch.setenv("DAGSTER_HOME", str(elsewhere))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert run_days(instance, FIRST, FIRST)
        assert isinstance(instance.event_log_storage, BatchingSqliteEventLogStorage)
    assert (home / "history" / "runs" / "index.db").exists()  # Dagster's default layout
    assert not elsewhere.exists()
