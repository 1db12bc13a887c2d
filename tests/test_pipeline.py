"""The flight_delay graph on the synthetic source: idempotent, leak-free, set-wise, one run per range."""

from datetime import date, timedelta

import dagster as dg
import pandas as pd
import pytest
from conftest import (
    PIPELINE_LAST,
    PIPELINE_MODEL_CUTOFF,
    PIPELINE_STEPS,
    ROLLING_FEATURES,
    BuiltPipeline,
    Platform,
    make_lake,
    synthetic_sources,
)

from assets import CATALOG
from datasets.flights.tables import FLIGHT_KEY
from resources.days import days_between
from resources.lake import PART_FILE, Lake

MODEL = "flight_delay"
FEATURES, MODEL_KEY, PREDICTIONS = f"{MODEL}/features", f"{MODEL}/model", f"{MODEL}/predictions"
RAW = ["raw_flights", "raw_weather", "flight_outcomes"]


def iso_days(first: str, last: str) -> list[date]:
    return days_between(date.fromisoformat(first), date.fromisoformat(last))


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Row order carries no meaning: sort by every column."""
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def read_table(lake: Lake, table: str, days: list[date] | None = None) -> pd.DataFrame:
    if days is None and not lake.table_file(table).exists():
        folder = lake.root / table
        days = sorted(date.fromisoformat(p.parent.name[5:]) for p in folder.glob(f"*/{PART_FILE}"))
    return canonical(lake.read(table, days))


def snapshot(lake: Lake) -> dict[str, pd.DataFrame]:
    """The content of every table in the lake."""
    return {table: read_table(lake, table) for table in lake.tables()}


def registry_versions(platform: Platform) -> list[str]:
    return sorted(r["version"] for r in platform.resources["registry"].versions(MODEL))


def materialize_all(platform: Platform) -> None:
    for keys, first, last in PIPELINE_STEPS:
        platform.materialize(keys, first, last)


@pytest.fixture(scope="module")
def built(synthetic_pipeline: BuiltPipeline) -> BuiltPipeline:
    return synthetic_pipeline


def test_a_range_materialization_is_one_run(built: BuiltPipeline):
    # One run per step of PIPELINE_STEPS, however many partitions the step covers.
    assert len(built.run_ids_after_build) == len(PIPELINE_STEPS)
    instance = built.platform.instance
    for keys, first, last in PIPELINE_STEPS:
        if first is None:
            continue
        wanted = {d.isoformat() for d in iso_days(first, last or first)}
        for key in keys:
            asset_key = dg.AssetKey.from_user_string(key)
            records = instance.fetch_materializations(asset_key, limit=1000).records
            build_records = [r for r in records if r.run_id in built.run_ids_after_build]
            assert {r.partition_key for r in build_records} == wanted, key
            assert len(build_records) == len(wanted), key
            assert len({r.run_id for r in build_records}) == 1, f"{key} took several runs"


def test_predictions_score_every_scheduled_flight_once(built: BuiltPipeline):
    lake = built.platform.lake
    days = iso_days(PIPELINE_MODEL_CUTOFF, PIPELINE_LAST)
    flights = lake.read("raw_flights", days)
    predictions = lake.read(PREDICTIONS, days)
    key = list(FLIGHT_KEY)
    assert not predictions.duplicated(key).any()
    assert len(predictions) == len(flights)
    scheduled = set(flights[key].itertuples(index=False, name=None))
    scored = set(predictions[key].itertuples(index=False, name=None))
    assert scored == scheduled
    assert predictions["score"].notna().all()
    assert predictions["score"].between(0.0, 1.0).all()
    assert predictions["score"].nunique() > 10, "scores do not depend on the flight"
    assert predictions["model_version"].notna().all()

    registry = built.platform.resources["registry"]
    cutoffs = {}
    for version in predictions["model_version"].unique():
        cutoffs[version] = date.fromisoformat(registry.record(MODEL, version)["partition"])
    flight_days = pd.to_datetime(predictions["flight_date"]).dt.date
    for version, day in zip(predictions["model_version"], flight_days, strict=True):
        assert cutoffs[version] <= day, f"{version} scores {day}, before its training cutoff"


def test_predictions_before_any_model_fail_naming_the_days(built: BuiltPipeline):
    platform, lake = built.platform, built.platform.lake
    served_before = read_table(lake, PREDICTIONS, iso_days("2013-03-01", "2013-03-02"))
    with pytest.raises(Exception) as error:
        platform.materialize([PREDICTIONS], "2013-02-26", "2013-03-02")
    message = str(error.value)
    assert "2013-02-26" in message and "2013-02-28" in message, message
    # Nothing was written: the early days stay missing, the served days keep their rows.
    assert lake.missing_partitions(PREDICTIONS, iso_days("2013-02-26", "2013-02-28")) == (
        iso_days("2013-02-26", "2013-02-28")
    )
    after = read_table(lake, PREDICTIONS, iso_days("2013-03-01", "2013-03-02"))
    pd.testing.assert_frame_equal(after, served_before)


def test_a_model_cutoff_with_too_little_history_fails_clearly(built: BuiltPipeline):
    versions = registry_versions(built.platform)
    with pytest.raises(Exception) as error:
        built.platform.materialize([MODEL_KEY], "2013-01-10")
    message = str(error.value)
    assert "2013-01-10" in message, message
    assert "history" in message.lower() or "days" in message.lower(), message
    assert registry_versions(built.platform) == versions


def test_rematerializing_every_asset_changes_nothing(built: BuiltPipeline):
    platform = built.platform
    content_after_build = snapshot(platform.lake)
    expected_tables = {"raw_planes", *RAW, FEATURES, PREDICTIONS}
    assert expected_tables <= set(content_after_build)
    versions = registry_versions(platform)
    assert len(versions) == 1

    materialize_all(platform)

    again = snapshot(platform.lake)
    assert set(again) == set(content_after_build)
    for table, before in content_after_build.items():
        pd.testing.assert_frame_equal(again[table], before, check_exact=True, obj=table)
    assert registry_versions(platform) == versions


# --- Separate small lakes: leakage and range-versus-day-by-day -----------------------------------

SMALL_FIRST, SMALL_LAST = "2013-01-01", "2013-01-12"


def ingest(platform: Platform) -> None:
    platform.materialize(["raw_planes"])
    platform.materialize(RAW, SMALL_FIRST, SMALL_LAST)


def test_features_of_a_day_never_use_that_days_outcomes(platform: Platform):
    ingest(platform)
    platform.materialize([FEATURES], SMALL_FIRST, SMALL_LAST)
    lake = platform.lake
    day, next_day = date(2013, 1, 8), date(2013, 1, 9)
    features_day = read_table(lake, FEATURES, [day])
    features_next = read_table(lake, FEATURES, [next_day])
    assert features_day[ROLLING_FEATURES].notna().any().all(), (
        "rolling statistics should exist by D"
    )

    outcomes = lake.read("flight_outcomes", [day])
    outcomes["flight_date"] = pd.to_datetime(outcomes["flight_date"]).dt.date
    altered = outcomes.assign(
        arr_delay=outcomes["arr_delay"] + 90, dep_delay=outcomes["dep_delay"] + 90
    )
    lake.write_partitions("flight_outcomes", altered, "flight_date", [day])
    rewritten = read_table(lake, "flight_outcomes", [day])
    assert rewritten["arr_delay"].sum() > outcomes["arr_delay"].sum() + 1000

    # D alone, then D and D+1 in one run (where D's outcomes are in the run's history).
    platform.materialize([FEATURES], day.isoformat())
    pd.testing.assert_frame_equal(read_table(lake, FEATURES, [day]), features_day, check_exact=True)
    platform.materialize([FEATURES], day.isoformat(), next_day.isoformat())
    pd.testing.assert_frame_equal(read_table(lake, FEATURES, [day]), features_day, check_exact=True)

    changed = read_table(lake, FEATURES, [next_day])
    assert not changed[ROLLING_FEATURES].equals(features_next[ROLLING_FEATURES]), (
        "D+1 ignores the outcomes of D"
    )
    # Later delays on D can only raise D+1's late rates and mean delays, never lower them.
    for column in ["carrier_late_rate_7d", "carrier_dep_delay_7d", "origin_dep_delay_7d"]:
        new, old = changed[column], features_next[column]
        assert new.notna().equals(old.notna()), column
        assert (new.fillna(0) >= old.fillna(0)).all(), column
        assert (new.fillna(0) > old.fillna(0)).any(), column
    other = [c for c in changed.columns if c not in ROLLING_FEATURES]
    pd.testing.assert_frame_equal(changed[other], features_next[other], check_exact=True)


def test_range_backfill_equals_day_by_day(instance, synthetic_source, tmp_path, monkeypatch):
    """A range run computes features a month or a million flights at a time; here pieces of two
    days (250 flights), against one run per day."""
    from resources import days as day_ranges

    days = iso_days("2013-01-06", "2013-01-10")
    ranged = Platform(instance, synthetic_source, make_lake(tmp_path / "range"))
    ingest(ranged)
    monkeypatch.setattr(day_ranges, "CHUNK_ROWS", 250)
    assert day_ranges.row_chunks(days, 120 * len(days)) == [days[0:2], days[2:4], days[4:]]
    ranged.materialize([FEATURES], days[0].isoformat(), days[-1].isoformat())
    monkeypatch.undo()

    daily = Platform(instance, synthetic_source, make_lake(tmp_path / "daily"))
    ingest(daily)
    for day in days:
        daily.materialize([FEATURES], day.isoformat())

    for day in days:
        one_run = read_table(ranged.lake, FEATURES, [day])
        one_day = read_table(daily.lake, FEATURES, [day])
        assert len(one_run) > 0
        pd.testing.assert_frame_equal(one_run, one_day, check_exact=True, obj=str(day))
    # The other days were never asked for.
    outside = [days[0] - timedelta(days=1), days[-1] + timedelta(days=1)]
    assert ranged.lake.missing_partitions(FEATURES, outside) == outside


def test_ingesting_a_range_in_pieces_gives_the_rows_of_one_piece(
    instance, synthetic_source, tmp_path, monkeypatch
):
    """A range is read from a generated source a month or a million flights at a time; where
    it is cut must not change a row. Pieces of two days here, against the whole range at once."""
    from resources import sources
    from resources.days import chunked

    first, last = "2013-01-06", "2013-01-10"
    whole = Platform(instance, synthetic_source, make_lake(tmp_path / "whole"))
    monkeypatch.setattr(sources, "chunked", lambda days, size: [days])
    whole.materialize(RAW, first, last)

    pieces = Platform(instance, synthetic_source, make_lake(tmp_path / "pieces"))
    cut: list[list[list[date]]] = []

    def in_pairs(days: list[date], size: int) -> list[list[date]]:
        cut.append(chunked(days, 2))
        return cut[-1]

    monkeypatch.setattr(sources, "chunked", in_pairs)
    pieces.materialize(RAW, first, last)

    assert [len(pieces) for pieces in cut] == [3] * len(RAW), "every raw table is cut in three"
    for table in RAW:
        expected = read_table(whole.lake, table, iso_days(first, last))
        assert len(expected) > 0
        pd.testing.assert_frame_equal(
            read_table(pieces.lake, table, iso_days(first, last)), expected, check_exact=True
        )


def test_a_generated_source_is_read_a_month_or_a_quarter_million_flights_at_a_time():
    flights = CATALOG.tables["raw_flights"][0]
    quarter = iso_days("2013-01-01", "2013-03-31")
    busy = synthetic_sources(flights_per_day=100_000)
    assert [len(piece) for piece in busy.delivery_chunks(flights, quarter)] == [2] * 45
    usual = synthetic_sources(flights_per_day=300)
    assert [len(piece) for piece in usual.delivery_chunks(flights, quarter)] == [31, 31, 28]
    assert sum(busy.delivery_chunks(flights, quarter), []) == quarter
