"""feature_drift: each day against the champion in force that day, evidently's scores, a report."""

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import dagster as dg
import duckdb
import pandas as pd
import pytest
from conftest import (
    PIPELINE_LAST,
    PIPELINE_MODEL_CUTOFF,
    QUIET,
    Platform,
    make_lake,
    platform_instance,
)

from assets import CATALOG, drift
from assets import defs as asset_defs
from assets.plots import PAGE, PLOT
from assets.training import REFERENCE_ROWS
from resources.days import days_between
from resources.reports import report_url

FLIGHT_DELAY = CATALOG.model("flight_delay")

DRIFT = "flight_delay/feature_drift"
SECOND_CUTOFF = "2013-03-06"
MEASURED = days_between(
    date.fromisoformat(PIPELINE_MODEL_CUTOFF), date.fromisoformat(PIPELINE_LAST)
)


@dataclass
class Measured:
    platform: Platform
    result: dg.ExecuteInProcessResult
    first: str  # champion from PIPELINE_MODEL_CUTOFF
    second: str  # champion from SECOND_CUTOFF

    def metadata(self) -> dict[str, dict]:
        events = self.result.asset_materializations_for_node("flight_delay__feature_drift")
        return {event.partition: event.metadata for event in events}


@pytest.fixture(scope="module")
def measured(synthetic_pipeline, tmp_path_factory) -> Iterator[Measured]:
    """A second champion from SECOND_CUTOFF, then drift over the served days in one run, on a copy
    of the shared lake (left untouched)."""
    folder = tmp_path_factory.mktemp("drift")
    shutil.copytree(synthetic_pipeline.platform.lake.root, folder / "lake")
    source = synthetic_pipeline.platform.resources["sources"]
    with platform_instance() as instance:
        platform = Platform(instance, source, make_lake(folder))
        lenient = {"gate_limit": 0.0, "gate_tolerance": 1.0}  # promote whatever it scores
        dg.materialize(
            list(asset_defs.assets),
            selection=["flight_delay/model"],
            instance=instance,
            resources=platform.resources,
            partition_key=SECOND_CUTOFF,
            run_config={**QUIET, "ops": {"flight_delay__model": {"config": lenient}}},
        )
        registry = platform.resources["registry"]
        first, second = (registry.champion_at("flight_delay", date.fromisoformat(d)) for d in
                         (PIPELINE_MODEL_CUTOFF, SECOND_CUTOFF))  # fmt: skip
        result = platform.materialize([DRIFT], PIPELINE_MODEL_CUTOFF, PIPELINE_LAST)
        yield Measured(platform, result, first["version"], second["version"])


def test_each_day_is_compared_with_the_champion_in_force_that_day(measured):
    assert measured.first != measured.second
    expected = {
        day.isoformat(): measured.first if day.isoformat() < SECOND_CUTOFF else measured.second
        for day in MEASURED
    }
    metadata = measured.metadata()
    assert {day: values["champion_version"].value for day, values in metadata.items()} == expected

    rows = measured.platform.lake.read(DRIFT, MEASURED)
    by_day = rows.groupby(rows["flight_date"].dt.date.astype(str))["champion_version"].unique()
    assert {day: list(versions) for day, versions in by_day.items()} == {
        day: [version] for day, version in expected.items()
    }


def test_each_partition_carries_its_drift_the_per_column_table_and_its_report(measured):
    lake = measured.platform.lake
    rows = lake.read(DRIFT, MEASURED)
    for day, values in measured.metadata().items():
        day_rows = rows[rows["flight_date"].dt.date == date.fromisoformat(day)]
        assert list(day_rows["column"]) == FLIGHT_DELAY.features
        tested = day_rows[day_rows["method"].notna() & (day_rows["method"] != "")]
        assert isinstance(values["drift_share"], dg.FloatMetadataValue)
        assert values["drift_share"].value == pytest.approx(tested["drifted"].mean())
        assert values["drifted_columns"].value == int(day_rows["drifted"].sum())
        assert values["columns_tested"].value == len(tested)
        table = values["by_column"].value
        assert all(f"| {column} |" in table for column in FLIGHT_DELAY.features)

        report = lake.root / DRIFT / f"date={day}" / drift.REPORT_FILE
        assert values["report"] == dg.MetadataValue.url(
            report_url(f"{DRIFT}/date={day}/{drift.REPORT_FILE}")
        )
        page = report.read_text()
        assert day in page and values["champion_version"].value in page
        script = next(p for p in page.split('"') if p.startswith(f"../{drift.REPORT_ASSETS}/"))
        assert (report.parent / script).resolve().is_file()


def test_analysts_can_query_the_drift_rows_in_the_warehouse(measured):
    warehouse = measured.platform.lake.warehouse
    with duckdb.connect(str(warehouse), read_only=True) as con:
        drifted = con.sql(
            "SELECT flight_date, count(*) AS columns, sum(drifted::INT) AS drifted "
            "FROM flight_delay_feature_drift GROUP BY ALL ORDER BY flight_date"
        ).df()
    assert len(drifted) == len(MEASURED)
    assert (drifted["columns"] == len(FLIGHT_DELAY.features)).all()
    metadata = measured.metadata()
    assert list(drifted["drifted"]) == [
        metadata[d.isoformat()]["drifted_columns"].value for d in MEASURED
    ]


def test_scores_and_methods_are_evidently_data_drift_presets(measured):
    """The fast path runs the very tests evidently's `DataDriftPreset` runs, with its choice of
    method and the asset's thresholds, on a day's features against the champion's sample."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    lake, registry = measured.platform.lake, measured.platform.resources["registry"]
    day = MEASURED[-1]
    reference = registry.reference_sample("flight_delay", measured.second)
    current = lake.read("flight_delay/features", [day])
    numeric, categorical = ["distance", "engines", "wind_gust", "carrier_late_rate_7d"], ["dest"]
    thresholds = drift.DriftConfig().thresholds(FLIGHT_DELAY)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report(
        [
            DataDriftPreset(
                columns=numeric + categorical,
                num_threshold=thresholds[drift.NUMERIC],
                cat_threshold=thresholds[drift.CATEGORICAL],
            )
        ]
    ).run(
        Dataset.from_pandas(current[numeric + categorical], data_definition=definition),
        Dataset.from_pandas(reference[numeric + categorical], data_definition=definition),
    )
    expected = {
        m["config"]["column"]: (m["config"]["method"], m["value"])
        for m in snapshot.dict()["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }
    rows = lake.read(DRIFT, [day]).set_index("column")
    assert {"Jensen-Shannon distance", "Wasserstein distance (normed)"} <= {
        method for method, _ in expected.values()
    }
    for column, (method, score) in expected.items():
        assert rows.loc[column, "method"] == method, column
        assert rows.loc[column, "score"] == pytest.approx(score, rel=1e-9), column


def test_the_reference_is_a_sample_of_the_fitting_days_stored_with_the_version(measured):
    lake, registry = measured.platform.lake, measured.platform.resources["registry"]
    record = registry.record("flight_delay", measured.first)
    reference = registry.reference_sample("flight_delay", measured.first)
    assert list(reference.columns) == FLIGHT_DELAY.features
    assert len(reference) == record["reference_rows"] == min(REFERENCE_ROWS, record["fit_rows"])

    # Every sampled row is a flight of the days the version was fitted on: its whole window.
    fit_first, fit_last = (date.fromisoformat(d) for d in record["fit_window"])
    fitted = lake.read("flight_delay/features", days_between(fit_first, fit_last))
    matched = reference.merge(
        fitted[FLIGHT_DELAY.features].drop_duplicates(), how="left", indicator=True
    )
    assert (matched["_merge"] == "both").all()


def test_days_without_a_champion_fail_naming_them(measured):
    with pytest.raises(dg.Failure) as failure:
        measured.platform.materialize([DRIFT], "2013-02-10", "2013-02-11")
    assert "2013-02-10, 2013-02-11 not materialized" in failure.value.description
    assert "2013-02-10: lacks a flight_delay champion in force (the first is in force from" in (
        failure.value.description
    )


def test_drift_is_a_daily_monitoring_asset_backfilled_in_one_run():
    key = dg.AssetKey.from_user_string(DRIFT)
    asset = next(
        a for a in asset_defs.assets if isinstance(a, dg.AssetsDefinition) and a.key == key
    )
    assert asset.group_names_by_key[key] == "flight_delay"
    assert asset.backfill_policy == dg.BackfillPolicy.single_run()
    assert {dg.AssetKey(["flight_delay", "features"]), dg.AssetKey(["flight_delay", "model"])} <= (
        asset.dependency_keys
    )


def test_drift_rows_are_identical_when_rematerialized(measured):
    """A day scored alone gives exactly the rows it got inside the range run, to the last bit."""
    before = measured.platform.lake.read(DRIFT, MEASURED)
    measured.platform.materialize([DRIFT], MEASURED[2].isoformat())
    after = measured.platform.lake.read(DRIFT, MEASURED)
    pd.testing.assert_frame_equal(after, before, check_exact=True)


def test_the_history_page_plots_every_days_drift_share(measured):
    page = measured.platform.lake.read_object(f"{DRIFT}/{PAGE}").decode()
    plotted = dict(re.findall(r"<title>(\d{4}-\d\d-\d\d): ([0-9.e-]+) \(against ", page))
    metadata = measured.metadata()
    assert set(plotted) >= set(metadata)
    for day, values in metadata.items():
        assert float(plotted[day]) == pytest.approx(values["drift_share"].value, rel=1e-3), day
        assert values[PLOT] == dg.MetadataValue.url(report_url(f"{DRIFT}/{PAGE}"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distances_equal_evidently_stattests_on_ties_and_unshared_values(seed):
    """The asset's distances on arrays are evidently's tests: numbers with ties and a spread
    below evidently's floor, categories that only one side has, numbers of few values."""
    import numpy as np
    from evidently.legacy.calculations.stattests import (
        jensenshannon_stat_test,
        wasserstein_stat_test,
    )
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(seed)
    reference = {
        "delay": rng.integers(-20, 200, 3000).astype(float),  # many ties
        "flat": np.full(500, 7.0) + rng.integers(0, 2, 500) * 1e-4,  # spread under 0.001
        "dest": rng.choice(["BOS", "LAX", "ORD", "SFO"], 2000).astype(object),
        "engines": rng.choice([1.0, 2.0, 4.0], 900),
    }
    current = {
        "delay": rng.integers(0, 300, 700).astype(float),
        "flat": np.full(90, 7.0) + rng.integers(0, 3, 90) * 1e-4,
        "dest": rng.choice(["BOS", "LAX", "MIA"], 400).astype(object),  # MIA new, ORD, SFO gone
        "engines": rng.choice([2.0, 3.0], 150),
    }
    for column in ("delay", "flat"):
        ref, cur = np.sort(reference[column]), np.sort(current[column])
        spread = max(float(np.std(ref)), drift.LEAST_SPREAD)
        expected = wasserstein_stat_test(pd.Series(ref), pd.Series(cur), ColumnType.Numerical, 0.1)
        assert drift.wasserstein_normed(ref, cur, spread) == pytest.approx(
            expected.drift_score, rel=1e-12
        ), column
    for column, kind in (("dest", ColumnType.Categorical), ("engines", ColumnType.Numerical)):
        ref, cur = reference[column], current[column]
        _, ref_counts, cur_counts = drift.aligned(
            np.unique(ref, return_counts=True), np.unique(cur, return_counts=True)
        )
        expected = jensenshannon_stat_test(pd.Series(ref), pd.Series(cur), kind, 0.1)
        assert drift.jensen_shannon(ref_counts, cur_counts) == pytest.approx(
            expected.drift_score, rel=1e-12
        ), column
