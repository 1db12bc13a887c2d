"""Fifty more models on the two datasets, as a platform serving many models would declare them.

Registered like any team's declarations (`PLATFORM_DECLARATIONS=bench.fifty_models`), beside the
three of `models/`, so the code location holds 53 models. They are variants of the three: other
labels on the same rows (other delay thresholds, departure delay, cancellation, air time, demand
peaks), other parameters, training windows and monitoring settings. Most read an existing
model's features (`features_from`), as a platform would share one feature set among the models
of one grain; four compute their own, with a longer history, so the daily cycle has more than
one features asset per dataset. Limits are loose: these models exist to load the machinery
(`bench/many_models.py`), and each first version must pass its gate to serve.
"""

import dataclasses
from typing import Any

from assets.model_spec import Label, ModelSpec, Monitoring, Task
from models.arrival_delay import MODEL as ARRIVAL_DELAY
from models.demand_forecast import MODEL as DEMAND_FORECAST
from models.flight_delay import MODEL as FLIGHT_DELAY

OUTCOMES = FLIGHT_DELAY.label.table
DEMAND = DEMAND_FORECAST.label.table
# Loose gates and quality rules for classifiers, whatever their label's share of positives.
BINARY = {
    "metrics": ("auc", "log_loss", "brier", "positive_rate"),
    "gate_metric": "auc",
    "gate_limit": 0.55,
    "gate_tolerance": 0.01,
    "monitoring": Monitoring(quality_margin=0.05),
}
MINUTES = {
    "metrics": ("mae", "rmse", "mean_label"),
    "gate_metric": "mae",
    "gate_limit": 60.0,
    "gate_tolerance": 0.5,
    "monitoring": Monitoring(quality_margin=6.0),
}


def reading(base: ModelSpec, name: str, description: str, **changes: Any) -> ModelSpec:
    """A variant of `base` that reads the features base reads instead of computing its own."""
    return dataclasses.replace(
        base,
        name=name,
        description=description,
        features_sql="",
        inputs={},
        features_from=base.features_from or base.name,
        **changes,
    )


def own_history(base: ModelSpec, name: str, history_days: int) -> ModelSpec:
    """A variant of `base` computing its own features, over `history_days` of past labels."""
    inputs = dict(base.inputs)
    inputs["history"] = dataclasses.replace(inputs["history"], lookback_days=history_days)
    return dataclasses.replace(
        base,
        name=name,
        description=f"{base.description} Features over {history_days} days of history.",
        inputs=inputs,
    )


def late_by(minutes: int, column: str = "arr_delay") -> ModelSpec:
    return reading(
        FLIGHT_DELAY,
        f"{column.split('_')[0]}_late_{minutes}",
        f"Label: {column} above {minutes} minutes.",
        label=Label(OUTCOMES, f"{column} > {minutes}"),
        **BINARY,
    )


def delay_params(name: str, **params: float | int) -> ModelSpec:
    return reading(
        FLIGHT_DELAY,
        name,
        f"flight_delay with {params}.",
        params=dict(FLIGHT_DELAY.params or {}) | params,
    )


def demand(name: str, description: str, **changes: Any) -> ModelSpec:
    return reading(DEMAND_FORECAST, name, description, **changes)


FLIGHT_MODELS = [
    *(late_by(m) for m in (0, 5, 10, 20, 30, 45, 60, 90, 120)),
    *(late_by(m, "dep_delay") for m in (0, 15, 30, 60)),
    reading(
        FLIGHT_DELAY,
        "cancelled",
        "Label: the flight is cancelled.",
        label=Label(OUTCOMES, "cancelled"),
        **BINARY,
    ),
    delay_params("flight_delay_big_trees", learning_rate=0.08, max_leaf_nodes=31),
    delay_params("flight_delay_small_trees", max_leaf_nodes=7),
    delay_params("flight_delay_slow", learning_rate=0.02),
    reading(FLIGHT_DELAY, "flight_delay_w30", "flight_delay on 30 days.", window_days=30),
    reading(FLIGHT_DELAY, "flight_delay_w90", "flight_delay on 90 days.", window_days=90),
    own_history(FLIGHT_DELAY, "flight_delay_h14", 14),
    own_history(FLIGHT_DELAY, "flight_delay_h28", 28),
    reading(ARRIVAL_DELAY, "arrival_delay_squared", "arrival_delay, squared error.", params={}),
    reading(ARRIVAL_DELAY, "arrival_delay_w30", "arrival_delay on 30 days.", window_days=30),
    reading(ARRIVAL_DELAY, "arrival_delay_w90", "arrival_delay on 90 days.", window_days=90),
    reading(
        ARRIVAL_DELAY,
        "arrival_delay_capped",
        "Label: arrival delay, capped at 3 hours.",
        label=Label(OUTCOMES, "least(arr_delay, 180)"),
        **MINUTES,
    ),
    reading(
        ARRIVAL_DELAY,
        "departure_delay",
        "Label: departure delay in minutes.",
        label=Label(OUTCOMES, "dep_delay"),
        **MINUTES,
    ),
    reading(
        ARRIVAL_DELAY,
        "air_time",
        "Label: minutes in the air.",
        label=Label(OUTCOMES, "air_time"),
        **MINUTES,
    ),
]

DEMAND_MODELS = [
    *(
        demand(f"demand_w{days}", f"demand_forecast on {days} days.", window_days=days)
        for days in (28, 42, 90, 120)
    ),
    *(
        demand(f"demand_{name}", f"demand_forecast with {params}.", params=params)
        for name, params in {
            "fast": {"learning_rate": 0.1},
            "slow": {"learning_rate": 0.02, "max_iter": 500},
            "small_trees": {"max_leaf_nodes": 7},
            "big_trees": {"max_leaf_nodes": 31},
            "absolute": {"loss": "absolute_error"},
            "no_l2": {"l2_regularization": 0.0},
            "l2_5": {"l2_regularization": 5.0},
            "short": {"max_iter": 100},
            "fine_leaves": {"min_samples_leaf": 20},
        }.items()
    ),
    demand(
        "demand_mae",
        "demand_forecast gated on the mean absolute error (GW).",
        gate_metric="mae",
        gate_limit=0.5,
        gate_tolerance=0.02,
        monitoring=dataclasses.replace(
            DEMAND_FORECAST.monitoring, quality_limit=0.4, quality_margin=0.15
        ),
    ),
    demand(
        "demand_log",
        "Label: the natural logarithm of the demand.",
        label=Label(DEMAND, "ln(demand)"),
        metrics=("mae", "rmse", "mean_label"),
        gate_metric="mae",
        gate_limit=0.2,
        gate_tolerance=0.005,
        monitoring=dataclasses.replace(
            DEMAND_FORECAST.monitoring, quality_limit=None, quality_margin=0.03
        ),
    ),
    *(
        demand(
            f"demand_peak_{str(gw).replace('.', '_')}",
            f"Label: demand above {gw} GW in the half-hour.",
            label=Label(DEMAND, f"demand > {gw}"),
            task=Task.BINARY,
            metrics=BINARY["metrics"],
            gate_metric="auc",
            gate_limit=0.55,
            gate_tolerance=0.01,
            monitoring=dataclasses.replace(
                DEMAND_FORECAST.monitoring, quality_limit=None, quality_margin=0.05
            ),
        )
        for gw in (4.5, 5.0, 5.5)
    ),
    demand("demand_holdout_14", "demand_forecast judged on 14 held-out days.", holdout_days=14),
    demand(
        "demand_quality_14",
        "demand_forecast whose quality sensor judges 14 days.",
        monitoring=dataclasses.replace(DEMAND_FORECAST.monitoring, quality_days=14),
    ),
    demand(
        "demand_sensitive",
        "demand_forecast whose drift sensor reacts to smaller moves.",
        monitoring=dataclasses.replace(
            DEMAND_FORECAST.monitoring, numeric_drift=0.5, drift_threshold=0.3
        ),
    ),
    own_history(DEMAND_FORECAST, "demand_h14", 14),
    own_history(DEMAND_FORECAST, "demand_h21", 21),
]

MODELS = [*FLIGHT_MODELS, *DEMAND_MODELS]
