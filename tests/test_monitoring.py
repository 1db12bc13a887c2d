"""prediction_quality: the metrics equal scikit-learn's on the same rows, without unlabelled flights."""

import shutil
from collections.abc import Iterator
from datetime import date

import dagster as dg
import pandas as pd
import pytest
from conftest import PIPELINE_LAST, PIPELINE_MODEL_CUTOFF, Platform, make_lake, platform_instance

from assets import defs as asset_defs
from datasets.flights.tables import FLIGHT_KEY
from resources.days import days_between

QUALITY = "flight_delay/prediction_quality"
SERVED_DAYS = days_between(
    date.fromisoformat(PIPELINE_MODEL_CUTOFF), date.fromisoformat(PIPELINE_LAST)
)


@pytest.fixture(scope="module")
def judged(
    synthetic_pipeline, tmp_path_factory
) -> Iterator[tuple[Platform, dg.ExecuteInProcessResult]]:
    """Quality over the served days, materialized on a copy of the shared lake (left untouched)."""
    folder = tmp_path_factory.mktemp("monitoring")
    shutil.copytree(synthetic_pipeline.platform.lake.root, folder / "lake")
    source = synthetic_pipeline.platform.resources["sources"]
    with platform_instance() as instance:
        platform = Platform(instance, source, make_lake(folder))
        yield platform, platform.materialize([QUALITY], PIPELINE_MODEL_CUTOFF, PIPELINE_LAST)


def sklearn_quality(platform: Platform) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The expected metrics per (day, version) and per day, computed directly with scikit-learn."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    predictions = platform.lake.read("flight_delay/predictions", SERVED_DAYS)
    outcomes = platform.lake.read("flight_outcomes", SERVED_DAYS)
    joined = predictions.merge(outcomes[[*FLIGHT_KEY, "arr_delay"]], on=list(FLIGHT_KEY))
    assert len(joined) == len(predictions)
    labelled = joined[joined["arr_delay"].notna()].assign(label=lambda f: f["arr_delay"] > 15)
    labelled["flight_date"] = labelled["flight_date"].dt.date

    def metrics(rows: pd.DataFrame) -> pd.Series:
        return pd.Series(
            {
                "auc": roc_auc_score(rows["label"], rows["score"]),
                "log_loss": log_loss(rows["label"], rows["score"], labels=[False, True]),
                "brier": brier_score_loss(rows["label"], rows["score"]),
                "positive_rate": rows["label"].mean(),
                "rows": len(rows),
            }
        )

    judged = ["label", "score"]
    by_version = labelled.groupby(["flight_date", "model_version"])[judged].apply(metrics)
    by_day = labelled.groupby("flight_date")[judged].apply(metrics)
    unlabelled = len(joined) - len(labelled)
    assert unlabelled > 0, "the synthetic days must contain cancelled flights for this test"
    return by_version.reset_index(), by_day.assign(unlabelled=unlabelled)


def test_quality_table_equals_sklearn_on_labelled_rows_only(judged):
    platform, _ = judged
    table = platform.lake.read(QUALITY, SERVED_DAYS)
    expected, by_day = sklearn_quality(platform)

    assert list(table["flight_date"].dt.date) == list(expected["flight_date"])
    assert list(table["model_version"]) == list(expected["model_version"])
    for metric in ("auc", "log_loss", "brier", "positive_rate"):
        assert table[metric].to_list() == pytest.approx(expected[metric].to_list(), rel=1e-9)
    assert table["rows"].to_list() == expected["rows"].astype(int).to_list()
    assert table["unlabelled_rows"].sum() == by_day["unlabelled"].iloc[0]


def test_each_partition_carries_its_days_metrics_as_numbers(judged):
    platform, result = judged
    _, by_day = sklearn_quality(platform)
    events = result.asset_materializations_for_node("flight_delay__prediction_quality")

    assert sorted(e.partition for e in events) == [d.isoformat() for d in SERVED_DAYS]
    for event in events:
        expected = by_day.loc[date.fromisoformat(event.partition)]
        for metric in ("auc", "log_loss", "brier", "positive_rate"):
            assert isinstance(event.metadata[metric], dg.FloatMetadataValue)
            assert event.metadata[metric].value == pytest.approx(expected[metric], rel=1e-9)
        assert event.metadata["rows"] == dg.MetadataValue.int(int(expected["rows"]))
        versions = event.metadata["model_versions"].value.split(", ")
        assert event.metadata["dagster/row_count"].value == len(versions) >= 1
        assert all(version in event.metadata["by_model_version"].value for version in versions)


def test_rematerializing_gives_identical_rows(judged):
    platform, _ = judged
    before = platform.lake.read(QUALITY, SERVED_DAYS)

    platform.materialize([QUALITY], PIPELINE_MODEL_CUTOFF, PIPELINE_LAST)
    pd.testing.assert_frame_equal(platform.lake.read(QUALITY, SERVED_DAYS), before)

    platform.materialize([QUALITY], SERVED_DAYS[3].isoformat())  # one day alone, as a sensor would
    pd.testing.assert_frame_equal(platform.lake.read(QUALITY, SERVED_DAYS), before)


def test_quality_of_a_day_waits_for_that_days_outcomes_and_predictions():
    key = dg.AssetKey.from_user_string(QUALITY)
    quality = next(
        a for a in asset_defs.assets if isinstance(a, dg.AssetsDefinition) and a.key == key
    )
    outcomes, predictions = (
        dg.AssetKey("flight_outcomes"),
        dg.AssetKey(["flight_delay", "predictions"]),
    )

    assert {outcomes, predictions} <= quality.dependency_keys
    assert isinstance(quality.get_partition_mapping(outcomes), dg.IdentityPartitionMapping)
    assert quality.backfill_policy == dg.BackfillPolicy.single_run()
    assert quality.group_names_by_key[quality.key] == "flight_delay"
