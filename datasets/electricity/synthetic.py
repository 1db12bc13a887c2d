"""Synthetic half-hourly demand with the bundled data's schema and injectable drift.

Every day is generated from its own seeded random streams, so a day's content is the same whether
it is read alone or inside a range, and the same seed always gives the same data. The temperature
follows the southern seasons (hot in January, cold in July) with spells of a few days, a daily
cycle and noise; demand follows the half-hour of the day and whether it is a work day, rises with
heating below about 16 degrees and with cooling above about 22, and has noise of its own.
"""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from datasets.electricity.tables import CONDITIONS, DEMAND, HALF_HOURS
from resources.dataset import RawTable

_STREAM_WEATHER, _STREAM_DEMAND = 1, 2
_EPOCH = date(1970, 1, 1).toordinal()
# Public holidays on fixed dates in Victoria: New Year, Australia Day, Anzac Day, Christmas,
# Boxing Day. They are not work days.
HOLIDAYS = ((1, 1), (1, 26), (4, 25), (12, 25), (12, 26))
SPELL_DAYS = 3  # a day's temperature anomaly is the sum of the shocks of this many days
HOURS = np.arange(HALF_HOURS) / 2  # the start of each half-hour, in hours


class SyntheticElectricity(BaseModel):
    """Generated half-hourly demand for tests and benchmarks; each field is set by
    `PLATFORM_SYNTHETIC_<FIELD>` (`seed` and `drift_start` are shared with the other datasets'
    generators).

    From `drift_start` on, heating and cooling demand react `drift_temperature_factor` times more
    strongly to the temperature, so a model trained before that date loses accuracy after it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=13, description="Seed of every random stream.")
    drift_start: str | None = Field(default=None, description="First drifted day, YYYY-MM-DD.")
    drift_temperature_factor: float = Field(
        default=2.5, gt=0, description="Multiplier of the temperature's effect on demand in drift."
    )

    def rows(self, table: RawTable, first: date | None, last: date | None) -> pd.DataFrame:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        if table.name == CONDITIONS.name:
            work_day, temperature = _conditions(self.seed, days)
            frame = _keys(days).assign(work_day=work_day, temperature=temperature)
            return CONDITIONS.conform(frame)
        if table.name == DEMAND.name:
            return DEMAND.conform(_keys(days).assign(demand=self._demand(days)))
        raise KeyError(f"the synthetic electricity data has no table {table.name!r}")

    def rows_per_day(self) -> int:
        return HALF_HOURS

    def _demand(self, days: list[date]) -> np.ndarray:
        """The demand of every half-hour of `days` (GW), from each day's stream."""
        work_day, temperature = _conditions(self.seed, days)
        drift_start = date.fromisoformat(self.drift_start) if self.drift_start else None
        drifted = np.repeat(
            [drift_start is not None and d >= drift_start for d in days], HALF_HOURS
        )
        # Buildings answer the day's warmth as well as the half-hour's.
        day_mean = np.repeat(temperature.reshape(-1, HALF_HOURS).mean(axis=1), HALF_HOURS)
        felt = 0.5 * temperature + 0.5 * day_mean
        heating = 0.09 * np.clip(16 - felt, 0, None)
        cooling = 0.1 * np.clip(felt - 22, 0, None) + 0.012 * np.clip(felt - 22, 0, None) ** 2
        weather = (heating + cooling) * np.where(drifted, self.drift_temperature_factor, 1.0)
        profile = np.tile(_profile(True), len(days))
        rest_day = np.tile(_profile(False), len(days))
        noise = np.empty(len(days) * HALF_HOURS)
        for i, day in enumerate(days):
            rng = np.random.default_rng([self.seed, day.toordinal(), _STREAM_DEMAND])
            noise[i * HALF_HOURS : (i + 1) * HALF_HOURS] = rng.normal(0, 0.08) + rng.normal(
                0, 0.05, HALF_HOURS
            )
        demand = np.where(work_day, profile, rest_day) + weather + noise
        return np.clip(demand, 0.5, 19.5).round(4)


def _keys(days: list[date]) -> pd.DataFrame:
    """Each day's 48 half-hours, the day column as the contract's date32."""
    ordinals = np.array([d.toordinal() - _EPOCH for d in days], dtype=np.int32)
    dates = pa.array(np.repeat(ordinals, HALF_HOURS), pa.int32()).cast(pa.date32())
    return pd.DataFrame(
        {
            "demand_date": pd.arrays.ArrowExtensionArray(dates),
            "half_hour": np.tile(np.arange(HALF_HOURS, dtype=np.int32), len(days)),
        }
    )


def _shock(seed: int, day: date) -> float:
    """The weather shock of `day`: the first draw of its weather stream."""
    return float(np.random.default_rng([seed, day.toordinal(), _STREAM_WEATHER]).normal())


def _conditions(seed: int, days: list[date]) -> tuple[np.ndarray, np.ndarray]:
    """Whether each half-hour of `days` falls on a work day, and its temperature (Celsius).

    A day's mean temperature is its season plus the shocks of the day and the days before it
    (spells of warm or cold weather); its half-hours add a daily cycle, warmest mid-afternoon and
    wider in summer, and noise from the rest of the day's stream.
    """
    work_day, temperature = [], []
    for day in days:
        rng = np.random.default_rng([seed, day.toordinal(), _STREAM_WEATHER])
        shocks = [rng.normal()] + [
            _shock(seed, day - timedelta(days=k)) for k in range(1, SPELL_DAYS)
        ]
        season = np.cos((day.timetuple().tm_yday - 20) / 365 * 2 * np.pi)  # 1 in mid-January
        mean = 16.5 + 5.5 * season + 1.7 * sum(shocks)
        cycle = (3.5 + 1.5 * season) * np.sin((HOURS - 9) / 24 * 2 * np.pi)
        temperature.append(mean + cycle + rng.normal(0, 0.4, HALF_HOURS))
        work_day.append(day.weekday() < 5 and (day.month, day.day) not in HOLIDAYS)
    if not days:
        return np.empty(0, dtype=bool), np.empty(0)
    temps = np.clip(np.concatenate(temperature), -10, 50).round(1)
    return np.repeat(work_day, HALF_HOURS), temps


def _profile(work_day: bool) -> np.ndarray:
    """The demand of each half-hour of a mild day (GW): low at night with a bump as off-peak
    water heating starts at midnight, a daytime plateau (higher and earlier on work days) and an
    evening peak."""

    def rise(at: float, width: float) -> np.ndarray:
        return 1 / (1 + np.exp(-(HOURS - at) / width))

    start, level = (6.5, 1.7) if work_day else (8.5, 0.8)
    daytime = level * rise(start, 0.5) * (1 - rise(21.0, 0.8))
    evening = 0.4 * np.exp(-(((HOURS - 18.5) / 1.5) ** 2))
    off_peak = 0.7 * (np.exp(-((HOURS / 1.2) ** 2)) + np.exp(-(((HOURS - 24) / 1.2) ** 2)))
    return 3.4 + daytime + evening + off_peak
