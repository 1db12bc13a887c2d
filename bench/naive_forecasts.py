"""The naive forecasts a regression must beat, and each day's error of a model beside them.

A model's holdout and daily metrics say little alone: a mean absolute error of 20 minutes is good
or bad only against what a forecaster gets for free. Each model compared here has the simplest
forecast its users would otherwise use, written as SQL over its label table (benchmark code,
keyed by model name; the platform knows none of them):

- `arrival_delay`: each route's (origin, destination) mean arrival delay over the 7 days before
  the flight's day; all flights' mean of those days when the route flew none of them.
- `demand_forecast`: the seasonal naive forecast, the same half-hour one week earlier.

`daily_errors` scores the model's predictions from one or more lakes (the model as the sensors
served it, the never-retrained one) and the naive forecast on the same rows, day by day, with the
model's gate metric (`assets.metrics.evaluate`, as `<model>/prediction_quality` computes it).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import pandas as pd
import pyarrow as pa

from assets.keys import predictions_key
from assets.metrics import evaluate
from assets.model_spec import LABEL, ModelSpec
from resources.days import days_between
from resources.lake import Lake

NAIVE = "naive"
# The views the naive SQL reads: `history` (the label table from `lookback_days` before the first
# day to the last, with the model's label as `label`) and `days` (one `day` per evaluated day).
HISTORY, DAYS = "history", "days"


@dataclass(frozen=True)
class NaiveForecast:
    """A forecast from past labels only: `sql` returns the model's entity key and `naive` for
    every row of `history` on the days of `days`."""

    description: str
    lookback_days: int
    sql: str


FORECASTS = {
    "arrival_delay": NaiveForecast(
        description=(
            "each route's mean arrival delay over its previous 7 days (all flights' mean when "
            "the route has none)"
        ),
        lookback_days=7,
        sql="""
            WITH past AS (
                SELECT d.day, h.origin, h.dest, h.label
                FROM days d JOIN history h
                  ON h.flight_date >= d.day - 7 AND h.flight_date < d.day
                WHERE h.label IS NOT NULL
            ),
            by_route AS (
                SELECT day, origin, dest, avg(label) AS route_mean FROM past GROUP BY ALL
            ),
            every_flight AS (SELECT day, avg(label) AS all_mean FROM past GROUP BY day)
            SELECT h.flight_date, h.carrier, h.flight, h.origin,
                   coalesce(r.route_mean, a.all_mean) AS naive
            FROM history h
            JOIN days d ON h.flight_date = d.day
            LEFT JOIN by_route r
              ON r.day = h.flight_date AND r.origin = h.origin AND r.dest = h.dest
            LEFT JOIN every_flight a ON a.day = h.flight_date
        """,
    ),
    "demand_forecast": NaiveForecast(
        description="the same half-hour one week earlier (seasonal naive)",
        lookback_days=7,
        sql="""
            SELECT h.demand_date, h.half_hour, w.label AS naive
            FROM history h
            JOIN days d ON h.demand_date = d.day
            LEFT JOIN history w
              ON w.demand_date = h.demand_date - 7 AND w.half_hour = h.half_hour
        """,
    ),
}


def daily_errors(
    label_lake: Lake, served: Mapping[str, Lake], spec: ModelSpec, first: str, last: str
) -> pd.DataFrame:
    """One row per day of first..last: the labelled rows that have a naive forecast, the gate
    metric of the naive forecast and of the predictions of each lake in `served` on those rows,
    and how many labelled rows had no naive forecast (left out)."""
    forecast = FORECASTS[spec.name]
    evaluated = days_between(date.fromisoformat(first), date.fromisoformat(last))
    window = days_between(evaluated[0] - timedelta(days=forecast.lookback_days), evaluated[-1])
    con = duckdb.connect()
    label_lake.register(con, "labelled", spec.label.table, window)
    con.execute(f"CREATE VIEW {HISTORY} AS SELECT *, {spec.label_sql} AS {LABEL} FROM labelled")
    con.register(DAYS, pa.table({"day": pa.array(evaluated, pa.date32())}))
    con.execute(f"CREATE VIEW {NAIVE} AS {forecast.sql}")
    key = ", ".join(f'"{c}"' for c in spec.entity_key)
    joins, scores = "", []
    for name, lake in served.items():
        lake.register(con, f"predictions_{name}", predictions_key(spec).to_user_string(), evaluated)
        joins += f' JOIN (SELECT {key}, score AS "{name}" FROM predictions_{name}) USING ({key})'
        scores.append(f'"{name}"')
    rows = con.sql(
        f"""
        SELECT "{spec.day_column}" AS day, {LABEL}, {NAIVE}, {", ".join(scores)}
        FROM {HISTORY} JOIN {NAIVE} USING ({key}){joins}
        WHERE {LABEL} IS NOT NULL
        """
    ).df()
    con.close()
    rows["day"] = pd.to_datetime(rows["day"]).dt.date
    metric = spec.gate_metric
    daily = []
    for day, group in rows.groupby("day", sort=True):
        known = group[group[NAIVE].notna()]
        daily.append(
            {
                "day": day.isoformat(),
                "rows": len(known),
                "rows_without_naive": len(group) - len(known),
                NAIVE: evaluate(spec.task, known[LABEL], known[NAIVE])[metric],
            }
            | {name: evaluate(spec.task, known[LABEL], known[name])[metric] for name in served}
        )
    return pd.DataFrame(daily)


def by_month(daily: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The mean daily value of `columns` in each month, and the days each mean is over."""
    months = daily.assign(month=daily["day"].str[:7])
    table = months.groupby("month")[columns].mean()
    return table.assign(days=months.groupby("month").size()).reset_index()
