"""The electricity dataset on its bundled data: a day's demand features are the same to the bit
whether the day is materialized in a run of eleven weeks or in a run of its own, the promise of
idempotent partitions that a backfill and the daily cycle rely on."""

from datetime import date

import pandas as pd
from conftest import Platform, make_lake

from assets import CATALOG
from assets.keys import features_key
from resources.sources import Sources

DEMAND = CATALOG.model("demand_forecast")
FEATURES = features_key(DEMAND).to_user_string()
RAW = [table.name for table in CATALOG.dataset_of(DEMAND).daily_tables]
FIRST_DAY, FIRST_FEATURES, LAST_DAY = "2014-01-01", "2014-01-08", "2014-03-28"
ALONE = ["2014-01-15", "2014-01-22", "2014-02-12", "2014-03-19"]


def features(platform: Platform, days: list[date]) -> pd.DataFrame:
    rows = platform.lake.read(FEATURES, days)
    return rows.sort_values(list(DEMAND.entity_key), ignore_index=True)


def test_a_days_demand_features_are_equal_from_a_range_run_and_from_a_run_of_that_day(
    tmp_path, instance
):
    platform = Platform(instance, Sources(kind="bundled"), make_lake(tmp_path))
    platform.materialize(RAW, FIRST_DAY, LAST_DAY)
    platform.materialize([FEATURES], FIRST_FEATURES, LAST_DAY)
    days = [date.fromisoformat(day) for day in ALONE]
    from_range = features(platform, days)
    assert len(from_range) == 48 * len(days)

    for day in ALONE:
        platform.materialize([FEATURES], day)
    alone = features(platform, days)

    pd.testing.assert_frame_equal(alone, from_range, check_exact=True)
