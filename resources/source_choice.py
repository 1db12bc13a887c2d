"""The flight source named by the environment, chosen when a run reads data (never at import).

`PLATFORM_SOURCE` picks the implementation: `bundled` (default, the real 2013 data), `synthetic`
(seeded generator, sized and drifted by the `PLATFORM_SYNTHETIC_*` variables) or `landing` (daily
files dropped in the folder or S3 prefix `PLATFORM_LANDING_URI`). The same code location serves
`make run`, the daemon tests and the benchmarks; only the environment differs.
"""

import os
from collections.abc import Callable
from datetime import date

import pandas as pd

from resources.landing import LandingFlightSource
from resources.sources import BundledFlightSource, FlightSource
from resources.synthetic import SyntheticFlightSource

SOURCE_ENV = "PLATFORM_SOURCE"
LANDING_URI_ENV = "PLATFORM_LANDING_URI"
# Each SyntheticFlightSource field, and the variable that sets it.
SYNTHETIC_ENV: dict[str, tuple[str, Callable[[str], object]]] = {
    "seed": ("PLATFORM_SYNTHETIC_SEED", int),
    "flights_per_day": ("PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY", int),
    "drift_start": ("PLATFORM_SYNTHETIC_DRIFT_START", str),
    "drift_carrier": ("PLATFORM_SYNTHETIC_DRIFT_CARRIER", str),
    "drift_wind_factor": ("PLATFORM_SYNTHETIC_DRIFT_WIND_FACTOR", float),
}


def source_from_environment() -> FlightSource:
    """The source `PLATFORM_SOURCE` names; a bad name or value fails naming the variable."""
    kind = os.environ.get(SOURCE_ENV, "bundled").strip().lower() or "bundled"
    if kind == "bundled":
        return BundledFlightSource()
    if kind == "synthetic":
        settings = {}
        for field, (variable, parse) in SYNTHETIC_ENV.items():
            raw = os.environ.get(variable, "").strip()
            if not raw:
                continue
            try:
                settings[field] = parse(raw)
            except ValueError as error:
                raise ValueError(f"{variable}={raw!r} is not a valid {field}: {error}") from None
        return SyntheticFlightSource(**settings)
    if kind == "landing":
        uri = os.environ.get(LANDING_URI_ENV, "").strip()
        if not uri:
            raise ValueError(
                f"{SOURCE_ENV}=landing needs {LANDING_URI_ENV}: a folder or s3://bucket/prefix"
            )
        return LandingFlightSource(uri=uri)
    raise ValueError(f"{SOURCE_ENV}={kind!r}: expected 'bundled', 'synthetic' or 'landing'")


class EnvironmentSource(FlightSource):
    """Delegates to the source the environment names at the time of each read."""

    def current(self) -> FlightSource:
        """The source the environment names now."""
        return source_from_environment()

    def flights(self, start: date, end: date) -> pd.DataFrame:
        return source_from_environment().flights(start, end)

    def weather(self, start: date, end: date) -> pd.DataFrame:
        return source_from_environment().weather(start, end)

    def outcomes(self, start: date, end: date) -> pd.DataFrame:
        return source_from_environment().outcomes(start, end)

    def planes(self) -> pd.DataFrame:
        return source_from_environment().planes()

    def typical_flights_per_day(self) -> int:
        return source_from_environment().typical_flights_per_day()
