"""A dataset and a model declared outside the platform's core, exactly as docs/add-a-dataset.md
and docs/add-a-model.md show: three bakeries' daily plan and sales, and a forecast of the loaves
each sells in a day. Registered with `PLATFORM_DECLARATIONS=guide_bakery` (this folder on the
Python path); `tests/test_guide.py` runs it through the whole platform.

Three rows a day: the volume at which flight-sized defaults fail (leaves of 100 rows, p-value
drift tests), so the model relies on the platform's small-volume defaults and pools a week of
days for its drift.
"""

from datetime import date, timedelta

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from assets.model_spec import Input, Label, ModelSpec, Monitoring, Task
from resources.dataset import CodeList, Dataset, RawTable

STORES = ("north", "harbour", "station")

PLAN = RawTable(
    name="bakery_plan",
    description="What each store plans for the day, known the evening before: promotion, forecast.",
    columns={
        "sale_date": "date32[pyarrow]",
        "store": "string",
        "promotion": "bool",
        "temperature": "float64",
    },
    key=("sale_date", "store"),
    day_column="sale_date",
    required=("promotion", "temperature"),
    ranges={"temperature": (-30, 50)},
    codes={"store": CodeList("store", lambda: STORES)},
)
SALES = RawTable(
    name="bakery_sales",
    description="Loaves each store sold in the day: known after it closes.",
    columns={"sale_date": "date32[pyarrow]", "store": "string", "loaves": "int32"},
    key=("sale_date", "store"),
    day_column="sale_date",
    required=("loaves",),
    ranges={"loaves": (0, 10_000)},
    codes={"store": CodeList("store", lambda: STORES)},
)


class BakeryDays(BaseModel):
    """The three stores' days, generated from a seed: each day from its own random stream, so a
    day is the same whatever range it is read in. From `drift_start` on, promotions sell twice
    as well."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 1
    drift_start: str | None = None

    def rows(self, table: RawTable, first: date | None, last: date | None) -> pd.DataFrame:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        frames = [self._day(day) for day in days]
        return table.conform(pd.concat(frames, ignore_index=True))

    def rows_per_day(self) -> int:
        return len(STORES)

    def _day(self, day: date) -> pd.DataFrame:
        rng = np.random.default_rng([self.seed, day.toordinal()])
        season = np.cos((day.timetuple().tm_yday - 200) / 365 * 2 * np.pi)
        temperature = np.round(12 + 10 * season + rng.normal(0, 3, len(STORES)), 1)
        promotion = rng.random(len(STORES)) < 0.25
        lift = 2.0 if self.drift_start and day >= date.fromisoformat(self.drift_start) else 1.4
        base = np.array([120.0, 80.0, 200.0]) * (1.3 if day.weekday() >= 5 else 1.0)
        expected = base * np.where(promotion, lift, 1.0) * (1 - 0.01 * (temperature - 12))
        return pd.DataFrame(
            {
                "sale_date": pd.Series([day] * len(STORES), dtype="date32[pyarrow]"),
                "store": STORES,
                "promotion": promotion,
                "temperature": temperature,
                "loaves": rng.poisson(expected).astype("int32"),
            }
        )


DATASET = Dataset(
    name="bakery",
    description="Three bakeries: each day's plan, and the loaves sold.",
    tables=(PLAN, SALES),
    first_day=date(2024, 1, 1),
    last_day=date(2024, 6, 30),
    replay_from=date(2024, 4, 1),
    bundled=BakeryDays(),
    synthetic=BakeryDays,
)

FEATURES_SQL = """
SELECT p.sale_date, p.store,
       isodow(p.sale_date) AS day_of_week,
       CAST(p.promotion AS INTEGER) AS promotion,
       p.temperature,
       avg(h.label) AS loaves_7d
FROM plan p
LEFT JOIN history h
  ON h.store = p.store AND h.sale_date >= p.sale_date - {history_days} AND h.sale_date < p.sale_date
GROUP BY ALL
ORDER BY p.sale_date, p.store
"""

MODEL = ModelSpec(
    name="bakery_loaves",
    description="Loaves a store sells in a day.",
    entity_key=("sale_date", "store"),
    label=Label(table="bakery_sales", expression="loaves"),
    task=Task.REGRESSION,
    features_sql=FEATURES_SQL,
    inputs={
        "plan": Input("bakery_plan"),
        "history": Input("bakery_sales", lookback_days=7, same_day=False),
    },
    numeric_features=("day_of_week", "promotion", "temperature", "loaves_7d"),
    categorical_features=("store",),
    metrics=("mae", "rmse", "mape"),
    gate_metric="mae",
    gate_limit=40.0,
    gate_tolerance=2.0,
    window_days=42,
    min_window_days=21,
    first_cutoff=date(2024, 3, 1),
    monitoring=Monitoring(drift_pool_days=7, quality_limit=45.0, quality_margin=10.0),
)
