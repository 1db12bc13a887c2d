"""The environment picks each dataset's source when the code location loads."""

from datetime import date

import pyarrow as pa
import pytest

from assets import CATALOG
from assets.catalog import Catalog, DeclarationError
from datasets.flights.synthetic import SyntheticFlights
from datasets.flights.tables import OUTCOMES
from resources.sources import sources_from_settings

DAY = date(2013, 5, 2)
FLIGHTS = CATALOG.tables["raw_flights"][0]


def test_synthetic_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PLATFORM_SOURCE", "synthetic")
    monkeypatch.setenv("PLATFORM_SYNTHETIC_SEED", "11")
    monkeypatch.setenv("PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY", "40")
    monkeypatch.setenv("PLATFORM_SYNTHETIC_DRIFT_START", "2013-05-01")

    served = sources_from_settings().deliver(FLIGHTS, OUTCOMES, DAY, DAY).rows

    expected = SyntheticFlights(seed=11, flights_per_day=40, drift_start="2013-05-01")
    generated = pa.Table.from_pandas(expected.rows(OUTCOMES, DAY, DAY), preserve_index=False)
    assert served.select(list(OUTCOMES.columns)).equals(generated)
    assert served.num_rows == 40


def test_one_dataset_can_have_a_source_of_its_own(monkeypatch):
    monkeypatch.setenv("PLATFORM_SOURCE", "bundled")
    monkeypatch.setenv("PLATFORM_SOURCE_FLIGHTS", "synthetic")
    sources = sources_from_settings()
    assert sources.kind_of(FLIGHTS) == "synthetic"
    other = [d for d in CATALOG.datasets if d is not FLIGHTS]
    assert all(sources.kind_of(d) == "bundled" for d in other)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("PLATFORM_SOURCE", "kafka", "PLATFORM_SOURCE='kafka'"),
        ("PLATFORM_SOURCE_FLIGHTS", "ftp", "PLATFORM_SOURCE_FLIGHTS='ftp'"),
        ("PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY", "many", "PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY='many'"),
        ("PLATFORM_SYNTHETIC_FLIGHT_PER_DAY", "9", "PLATFORM_SYNTHETIC_FLIGHT_PER_DAY"),
    ],
)
def test_a_bad_setting_fails_at_load_naming_the_variable(monkeypatch, variable, value, named):
    monkeypatch.setenv("PLATFORM_SOURCE", "synthetic")
    monkeypatch.setenv(variable, value)
    with pytest.raises((ValueError, DeclarationError), match=named):
        sources_from_settings()
        Catalog(CATALOG.datasets, CATALOG.models)
