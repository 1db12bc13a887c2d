"""Synthetic flights with the bundled data's schema, a controllable size and injectable drift.

Every day is generated from its own seeded random streams, so a day's content is the same whether
it is read alone or inside a range, and the same seed always gives the same data. A range is
generated as whole arrays (the per-day work is only the random draws), so a year at 100 times the
real volume takes seconds, and nothing is cached beyond the timetable and the plane register.
"""

from datetime import date, timedelta
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from datasets.flights.tables import FLIGHTS, OUTCOMES, PLANES, WEATHER
from resources.dataset import RawTable

CARRIERS = [
    "9E",
    "AA",
    "AS",
    "B6",
    "DL",
    "EV",
    "F9",
    "FL",
    "HA",
    "MQ",
    "OO",
    "UA",
    "US",
    "VX",
    "WN",
]
ORIGINS = ["EWR", "JFK", "LGA"]
DESTINATIONS = {
    "ATL": 760, "BOS": 187, "BWI": 184, "CLT": 544, "DCA": 214, "DEN": 1620, "DFW": 1389,
    "DTW": 502, "FLL": 1069, "IAD": 228, "IAH": 1416, "LAX": 2475, "MCO": 944, "MIA": 1089,
    "MSP": 1020, "ORD": 733, "PHL": 94, "PIT": 335, "RDU": 427, "SFO": 2565, "SEA": 2422,
    "STL": 888, "TPA": 1005, "CLE": 404, "MDW": 711,
}  # fmt: skip
_STREAM_WEATHER, _STREAM_FLIGHTS, _STREAM_OUTCOMES = 1, 2, 3
HOURS = 24
_EPOCH = date(1970, 1, 1).toordinal()
WEATHER_VALUES = (
    "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib",
)  # fmt: skip


class SyntheticFlights(BaseModel):
    """Generated flights for tests and scale benchmarks; each field is set by
    `PLATFORM_SYNTHETIC_<FIELD>`.

    From `drift_start` on, delays react `drift_wind_factor` times more strongly to wind and the
    delays of `drift_carrier` double, so a model trained before that date loses accuracy after it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=13, description="Seed of every random stream.")
    flights_per_day: int = Field(default=300, ge=1, description="Scheduled flights per day.")
    drift_start: str | None = Field(default=None, description="First drifted day, YYYY-MM-DD.")
    drift_carrier: str = Field(default="EV", description="Carrier whose delays double in drift.")
    drift_wind_factor: float = Field(default=3.0, description="Wind effect multiplier in drift.")

    def rows(self, table: RawTable, first: date | None, last: date | None) -> pd.DataFrame:
        if table.name == PLANES.name:
            return _planes(self.seed)
        days = _days(first, last)
        if table.name == FLIGHTS.name:
            tailnums = _tailnums(self.seed, self.flights_per_day, days)
            return _scheduled(self.seed, self.flights_per_day, days, tailnums)
        if table.name == WEATHER.name:
            return _weather_frame(self.seed, days)
        if table.name == OUTCOMES.name:
            return self._outcomes(days)
        raise KeyError(f"the synthetic flights have no table {table.name!r}")

    def rows_per_day(self) -> int:
        return self.flights_per_day

    def _outcomes(self, days: list[date]) -> pd.DataFrame:
        n = self.flights_per_day
        schedule = _schedule(self.seed, n)
        weather = _weather(self.seed, days)
        # Each flight's weather: its day, its origin, its scheduled hour (every hour is observed).
        day_index = np.repeat(np.arange(len(days)), n)
        origin_index = np.tile(schedule["origin"].map(ORIGINS.index).to_numpy(), len(days))
        hour = np.tile(schedule["dep_hour"].to_numpy(), len(days))
        at = (day_index * len(ORIGINS) + origin_index) * HOURS + hour
        delays = _delays(
            self.seed,
            n,
            days,
            np.tile(schedule["carrier"].to_numpy(), len(days)),
            hour,
            {name: values[at] for name, values in weather.items()},
            date.fromisoformat(self.drift_start) if self.drift_start else None,
            self.drift_carrier,
            self.drift_wind_factor,
        )
        return _outcomes_frame(schedule, days, *delays)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _dates(days: list[date], repeat: int) -> pd.arrays.ArrowExtensionArray:
    """Each day `repeat` times, as the contract's date32 column."""
    ordinals = np.array([d.toordinal() - _EPOCH for d in days], dtype=np.int32)
    return pd.arrays.ArrowExtensionArray(pa.array(np.repeat(ordinals, repeat), pa.date32()))


@cache
def _planes(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 0])
    n = 400
    planes = pd.DataFrame(
        {
            "tailnum": [f"N{100 + i}SY" for i in range(n)],
            "year": rng.integers(1985, 2013, n),
            "type": "Fixed wing multi engine",
            "manufacturer": rng.choice(["BOEING", "AIRBUS", "EMBRAER", "BOMBARDIER INC"], n),
            "model": rng.choice(["737-824", "A320-232", "EMB-145LR", "CL-600-2D24"], n),
            "engines": 2,
            "seats": rng.choice([50, 80, 150, 180, 200], n),
            "speed": np.nan,
            "engine": "Turbo-fan",
        }
    )
    return PLANES.conform(planes)


@cache
def _schedule(seed: int, flights_per_day: int) -> pd.DataFrame:
    """The same timetable every day, as airlines fly: unique (carrier, flight, origin)."""
    rng = np.random.default_rng([seed, 1])
    n = flights_per_day
    carrier = rng.choice(CARRIERS, n)
    dest = rng.choice(list(DESTINATIONS), n)
    dep_hour = rng.integers(5, 23, n)
    dep_minute = rng.choice([0, 15, 30, 45], n)
    distance = np.array([DESTINATIONS[d] for d in dest], dtype=float)
    arrive = (dep_hour * 60 + dep_minute + 30 + distance / 8).astype(int) % 1440
    return pd.DataFrame(
        {
            "carrier": carrier,
            "flight": 1 + np.arange(n),
            "origin": rng.choice(ORIGINS, n),
            "dest": dest,
            "sched_dep_time": dep_hour * 100 + dep_minute,
            "sched_arr_time": (arrive // 60) * 100 + arrive % 60,
            "dep_hour": dep_hour,
            "distance": distance,
        }
    )


def _tailnums(seed: int, flights_per_day: int, days: list[date]) -> np.ndarray:
    """The plane of each flight of each day, from the day's own stream."""
    tailnums = _planes(seed)["tailnum"].to_numpy()
    return np.concatenate(
        [
            np.random.default_rng([seed, day.toordinal(), _STREAM_FLIGHTS]).choice(
                tailnums, flights_per_day
            )
            for day in days
        ]
        or [np.empty(0, dtype=object)]
    )


def _scheduled(
    seed: int, flights_per_day: int, days: list[date], tailnums: np.ndarray
) -> pd.DataFrame:
    schedule = _schedule(seed, flights_per_day)
    flights = pd.DataFrame(
        {column: np.tile(schedule[column].to_numpy(), len(days)) for column in schedule.columns}
    )
    flights["flight_date"] = _dates(days, flights_per_day)
    flights["tailnum"] = tailnums
    return FLIGHTS.conform(flights)


def _weather(seed: int, days: list[date]) -> dict[str, np.ndarray]:
    """Hourly weather of each day and origin, in (day, origin, hour) order, from the day's stream.

    The draws of a day come in the order a day-by-day generator makes them, so a day's weather
    does not depend on the range it is generated in.
    """
    hours = np.arange(HOURS)
    daily_cycle = 8 * np.sin((hours - 9) / HOURS * 2 * np.pi)
    values: dict[str, list[np.ndarray]] = {name: [] for name in WEATHER_VALUES}
    for day in days:
        rng = np.random.default_rng([seed, day.toordinal(), _STREAM_WEATHER])
        season = np.cos((day.timetuple().tm_yday - 200) / 365 * 2 * np.pi)
        rainy = rng.random() < 0.3
        for _origin in ORIGINS:
            temp = 55 + 25 * season + daily_cycle + rng.normal(0, 3, HOURS)
            wind = rng.gamma(2.0, 5.0, HOURS)
            showers = rng.random(HOURS) < 0.5
            precip = np.where(rainy & showers, rng.exponential(0.08, HOURS), 0.0)
            values["temp"].append(temp.round(2))
            values["dewp"].append((temp - rng.uniform(5, 20, HOURS)).round(2))
            values["humid"].append(rng.uniform(30, 95, HOURS).round(2))
            values["wind_dir"].append(rng.integers(0, 36, HOURS) * 10.0)
            values["wind_speed"].append(wind.round(3))
            values["wind_gust"].append(np.where(wind > 15, (wind * 1.4).round(3), np.nan))
            values["precip"].append(precip.round(2))
            values["pressure"].append(rng.normal(1015, 7, HOURS).round(1))
            values["visib"].append(
                np.clip(10 - precip * 40 - rng.exponential(0.5, HOURS), 0, 10).round(2)
            )
    return {name: np.concatenate(parts) if parts else np.empty(0) for name, parts in values.items()}


def _weather_frame(seed: int, days: list[date]) -> pd.DataFrame:
    per_day = len(ORIGINS) * HOURS
    weather = pd.DataFrame(
        {
            "obs_date": _dates(days, per_day),
            "origin": np.tile(np.repeat(ORIGINS, HOURS), len(days)),
            "hour": np.tile(np.arange(HOURS), len(days) * len(ORIGINS)),
        }
    )
    for name, values in _weather(seed, days).items():
        weather[name] = values
    return WEATHER.conform(weather)


def _delays(
    seed: int,
    flights_per_day: int,
    days: list[date],
    carrier: np.ndarray,
    dep_hour: np.ndarray,
    weather: dict[str, np.ndarray],
    drift_start: date | None,
    drift_carrier: str,
    drift_wind_factor: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Departure delay, arrival delay and cancellation of every flight, from each day's stream."""
    n = flights_per_day
    drifted = np.repeat([drift_start is not None and day >= drift_start for day in days], n)
    wind_effect = np.where(drifted, 0.6 * drift_wind_factor, 0.6)
    carrier_effect = pd.Series(carrier).map({c: (i % 5) * 2.0 for i, c in enumerate(CARRIERS)})
    risk = (
        1.2 * (dep_hour - 5)
        + 60 * weather["precip"]
        + wind_effect * weather["wind_speed"]
        + 1.5 * (10 - weather["visib"])
        + carrier_effect.to_numpy()
    )
    exponential, normal, uniform = (np.empty(len(days) * n) for _ in range(3))
    for i, day in enumerate(days):
        rng = np.random.default_rng([seed, day.toordinal(), _STREAM_OUTCOMES])
        exponential[i * n : (i + 1) * n] = rng.exponential(12, n)
        normal[i * n : (i + 1) * n] = rng.normal(-5, 10, n)
        uniform[i * n : (i + 1) * n] = rng.random(n)
    dep_delay = np.round(risk + exponential - 22)
    late = drifted & (carrier == drift_carrier) & (dep_delay > 0)
    dep_delay = np.where(late, dep_delay * 2, dep_delay)
    arr_delay = np.round(dep_delay + normal)
    cancelled = uniform < 0.01 + 0.2 * (weather["precip"] > 0.2)
    return dep_delay, arr_delay, cancelled


def _outcomes_frame(
    schedule: pd.DataFrame,
    days: list[date],
    dep_delay: np.ndarray,
    arr_delay: np.ndarray,
    cancelled: np.ndarray,
) -> pd.DataFrame:
    def every_day(column: str) -> np.ndarray:
        return np.tile(schedule[column].to_numpy(), len(days))

    distance = every_day("distance")
    dep_minutes = (
        every_day("dep_hour") * 60 + every_day("sched_dep_time") % 100 + dep_delay
    ) % 1440
    arr_minutes = (dep_minutes + 30 + distance / 8 - 5) % 1440

    def clock(minutes: np.ndarray) -> pd.arrays.IntegerArray:
        """HHMM of a time of day in minutes; missing for cancelled flights."""
        whole = np.round(minutes).astype(int) % 1440
        return pd.arrays.IntegerArray(
            ((whole // 60) * 100 + whole % 60).astype(np.int32), cancelled
        )

    outcomes = pd.DataFrame(
        {
            "flight_date": _dates(days, len(schedule)),
            "carrier": every_day("carrier"),
            "flight": every_day("flight"),
            "origin": every_day("origin"),
            "dest": every_day("dest"),
            "dep_time": clock(dep_minutes),
            "dep_delay": np.where(cancelled, np.nan, dep_delay),
            "arr_time": clock(arr_minutes),
            "arr_delay": np.where(cancelled, np.nan, arr_delay),
            "air_time": np.where(cancelled, np.nan, np.round(distance / 8)),
            "cancelled": cancelled,
        }
    )
    return OUTCOMES.conform(outcomes)
