"""Hyperparameter search within a budget, on a time-ordered split of the fitting days.

Random search with scikit-learn's `ParameterSampler` over the default estimator's parameters: no
extra dependency, and with a fixed seed and a trial budget the same data gives the same trials,
so a model stays reproducible. The candidate's holdout days are never seen here: the fitting days
are split again, the last `holdout_days` of them validating the parameters fitted on the earlier
ones, judged by the model's gate metric.
"""

import math
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from assets.model_spec import ModelSpec

# Trials drawn when only a time budget is given; the clock stops the search long before.
_MAX_TRIALS = 1000


def search_space() -> dict:
    from scipy.stats import loguniform, randint

    return {
        "learning_rate": loguniform(0.02, 0.3),
        "max_iter": randint(50, 400),
        "max_leaf_nodes": randint(8, 64),
        "min_samples_leaf": randint(10, 200),
        "l2_regularization": loguniform(1e-3, 10.0),
    }


def search(
    spec: ModelSpec,
    fit_rows: pd.DataFrame,
    base_params: Mapping[str, Any],
    trials: int,
    seconds: float,
) -> tuple[dict, list[dict]]:
    """The best parameters on the validation days, and every trial; the base parameters go first.

    Stops after `trials` trials or `seconds` seconds, whichever comes first (0 means no limit
    of that kind; at least one must be set).
    """
    from sklearn.model_selection import ParameterSampler

    from assets import modeling, training

    if trials <= 0 and seconds <= 0:
        raise ValueError("a hyperparameter search needs a budget: trials or seconds")
    if spec.estimator is not None:
        raise ValueError(
            f"{spec.name} declares its own estimator: the search explores the default "
            "estimator's parameters only; set params instead"
        )
    day = spec.day_column
    days = sorted(fit_rows[day].unique())
    validation_first = days[-spec.holdout_days]
    train = fit_rows[fit_rows[day] < validation_first]
    validation = fit_rows[fit_rows[day] >= validation_first]
    sampler = ParameterSampler(
        search_space(), n_iter=_MAX_TRIALS, random_state=int(base_params.get("random_state", 0))
    )
    candidates = [dict(base_params)] + [{**base_params, **drawn} for drawn in sampler]
    limit = trials if trials > 0 else len(candidates)
    started = time.perf_counter()
    results = []
    for params in candidates[:limit]:
        if seconds > 0 and time.perf_counter() - started >= seconds:
            break
        trial_started = time.perf_counter()
        estimator = modeling.fit(spec, train, params)
        value = training.holdout_metrics(spec, validation, estimator)[spec.gate_metric]
        results.append(
            {
                "params": _plain(params),
                f"validation_{spec.gate_metric}": value,
                "seconds": round(time.perf_counter() - trial_started, 3),
            }
        )
    sign = 1 if spec.higher_is_better else -1
    measured = f"validation_{spec.gate_metric}"
    best = max(results, key=lambda r: -math.inf if math.isnan(r[measured]) else sign * r[measured])
    return best["params"], results


def _plain(params: Mapping) -> dict:
    """numpy scalars from the sampler as JSON-friendly Python numbers."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}
