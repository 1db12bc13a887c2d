"""A run over a range of days: each day gets its own metadata, and its own outcome.

On a copy of the session's synthetic lake, in an instance of its own: the daily graph of the
flights' models over three days in one run, then the same days one run each, must record the same
metadata per day; a range whose days lack inputs materializes the others and fails naming them.
"""

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import dagster as dg
import pytest
from conftest import FLIGHT_MODELS, QUIET, Platform, make_lake, platform_instance

from assets import defs as asset_defs
from assets.metadata import PREVIEW_ROWS
from assets.per_day import FAILED_DAYS, MATERIALIZED_DAYS
from assets.plots import PAGE
from resources.days import days_between

RAW = ["raw_flights", "raw_weather", "flight_outcomes"]
DAILY = [
    *RAW,
    *(f"{m.name}/features" for m in FLIGHT_MODELS if not m.features_from),
    *(f"{m.name}/{a}" for m in FLIGHT_MODELS for a in ("predictions", "feature_drift")),
    *(f"{m.name}/prediction_quality" for m in FLIGHT_MODELS),
]
DAYS = ["2013-03-08", "2013-03-09", "2013-03-10"]
# Shown on the newest day of a run only (see assets.metadata.with_preview).
PREVIEW = {"preview", "dagster/column_schema"}


@dataclass
class Copy:
    platform: Platform

    def run(self, keys: list[str], first: str, last: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            list(asset_defs.assets),
            selection=keys,
            instance=self.platform.instance,
            resources=self.platform.resources,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
            run_config=QUIET,
            raise_on_error=False,
        )

    def remove(self, table: str, day: str) -> None:
        shutil.rmtree(self.platform.lake.partition_file(table, date.fromisoformat(day)).parent)

    def materialized(self, result: dg.ExecuteInProcessResult) -> list[dg.AssetMaterialization]:
        """What the run recorded as materialized, as the instance has it (a failed step's
        materializations are not among the result's events)."""
        records = self.platform.instance.get_records_for_run(
            result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        return [r.event_log_entry.asset_materialization for r in records]

    def per_day(self, result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dict]:
        """The metadata of each (asset, day) the run materialized, values unwrapped."""
        return {
            (event.asset_key.to_user_string(), event.partition): {
                name: value.value for name, value in event.metadata.items()
            }
            for event in self.materialized(result)
        }


@pytest.fixture
def copy(synthetic_pipeline, tmp_path) -> Iterator[Copy]:
    """The session's lake copied (it stays untouched), with an instance of its own."""
    shutil.copytree(synthetic_pipeline.platform.lake.root, tmp_path / "lake")
    source = synthetic_pipeline.platform.resources["sources"]
    with platform_instance() as instance:
        yield Copy(Platform(instance, source, make_lake(tmp_path)))


def test_a_range_run_records_for_each_day_what_a_run_of_that_day_records(copy: Copy):
    ranged = copy.run(DAILY, DAYS[0], DAYS[-1])
    assert ranged.success
    singles = {}
    for day in DAYS:
        single = copy.run(DAILY, day, day)
        assert single.success
        singles |= copy.per_day(single)
    in_range = copy.per_day(ranged)
    assert set(in_range) == set(singles) == {(asset, day) for asset in DAILY for day in DAYS}
    for (asset, day), metadata in in_range.items():
        alone = singles[(asset, day)]
        if day != DAYS[-1]:
            alone = {name: value for name, value in alone.items() if name not in PREVIEW}
        assert metadata.keys() == alone.keys(), (asset, day)
        for name, value in metadata.items():
            assert str(value) == str(alone[name]), (asset, day, name)  # str: NaN equals NaN
    flights = copy.platform.lake.read("raw_flights", [date.fromisoformat(DAYS[0])])
    assert in_range[("raw_flights", DAYS[0])]["dagster/row_count"] == len(flights)
    preview = in_range[("raw_flights", DAYS[-1])]["preview"]
    assert preview.count(DAYS[-1]) == PREVIEW_ROWS, "the newest day's preview shows that day"
    quality = "flight_delay/prediction_quality"
    page = copy.platform.lake.read_object(f"{quality}/{PAGE}").decode()
    for day in DAYS:
        auc = in_range[(quality, day)]["auc"]
        assert f"<title>{day}: {auc:.4g} (served by " in page, "the history page plots each day"


def test_days_without_their_inputs_fail_by_name_and_the_others_are_materialized(copy: Copy):
    copy.remove("flight_outcomes", "2013-03-02")
    features = "flight_delay/features"
    result = copy.run([features], "2013-03-01", "2013-03-10")
    assert not result.success
    materialized = sorted(e.partition for e in copy.materialized(result))
    assert materialized == ["2013-03-01", "2013-03-02", "2013-03-10"]
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.user_failure_data
    lacking = [d.isoformat() for d in days_between(date(2013, 3, 3), date(2013, 3, 9))]
    assert error.metadata[FAILED_DAYS].value == lacking
    assert error.metadata[MATERIALIZED_DAYS].value == materialized
    assert "2013-03-05: lacks flight_outcomes 2013-03-02" in error.description
    assert set(
        copy.platform.instance.get_materialized_partitions(dg.AssetKey.from_user_string(features))
    ) == set(materialized)


def test_each_cutoff_of_a_range_is_trained_or_failed_on_its_own(copy: Copy):
    copy.remove("flight_delay/features", "2013-01-08")  # in the window of 03-09, not of 03-10
    result = copy.run(["flight_delay/model"], "2013-03-09", "2013-03-10")
    assert not result.success
    [event] = copy.materialized(result)
    assert event.partition == "2013-03-10"
    metadata = event.metadata
    record = copy.platform.resources["registry"].record("flight_delay", metadata["version"].value)
    assert record["partition"] == "2013-03-10"
    assert metadata["training_window"].value == " .. ".join(record["training_window"])
    assert metadata["holdout_auc"].value == record["metrics"]["auc"]
    page = copy.platform.lake.read_object(f"flight_delay/model/{PAGE}").decode()
    assert f"2013-03-10: {record['metrics']['auc']:.4g} ({record['version']}, " in page
    [failure] = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert "2013-03-09: lacks flight_delay/features 2013-01-08" in description
    champion = copy.platform.resources["registry"].champion_at("flight_delay", date(2013, 3, 9))
    assert f"{champion['version']} keeps serving from 2013-03-09" in description
