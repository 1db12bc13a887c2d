"""The environment picks the source when data is read, so one code location serves every setup."""

from datetime import date

import pandas as pd
import pytest
from resources.source_choice import EnvironmentSource
from resources.synthetic import SyntheticFlightSource

DAY = date(2013, 5, 2)


def test_synthetic_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PLATFORM_SOURCE", "synthetic")
    monkeypatch.setenv("PLATFORM_SYNTHETIC_SEED", "11")
    monkeypatch.setenv("PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY", "40")
    monkeypatch.setenv("PLATFORM_SYNTHETIC_DRIFT_START", "2013-05-01")

    served = EnvironmentSource().outcomes(DAY, DAY)

    expected = SyntheticFlightSource(seed=11, flights_per_day=40, drift_start="2013-05-01")
    pd.testing.assert_frame_equal(served, expected.outcomes(DAY, DAY))
    assert len(served) == 40


def test_the_choice_is_read_at_each_call_not_at_import(monkeypatch):
    source = EnvironmentSource()
    monkeypatch.setenv("PLATFORM_SOURCE", "synthetic")
    monkeypatch.setenv("PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY", "25")
    assert len(source.flights(DAY, DAY)) == 25
    monkeypatch.setenv("PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY", "30")
    assert len(source.flights(DAY, DAY)) == 30


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("PLATFORM_SOURCE", "kafka", "PLATFORM_SOURCE='kafka'"),
        ("PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY", "many", "PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY='many'"),
    ],
)
def test_a_bad_setting_fails_naming_the_variable(monkeypatch, variable, value, named):
    monkeypatch.setenv("PLATFORM_SOURCE", "synthetic")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=named):
        EnvironmentSource().flights(DAY, DAY)
