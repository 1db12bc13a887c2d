"""Hyperparameter search within a budget, on a time-ordered split of the fitting days.

Optuna's TPE sampler, seeded from the model's `random_state` and run one trial at a time, so
the same data and budget give the same trials and the same chosen parameters, and a version stays
reproducible. The model's own parameters are the first trial. Where the estimator grows by stages
(the default gradient boosting), each trial is scored every `STAGE_ITERATIONS` iterations and a
median pruner stops trials that fall behind the others at the same stage. The candidate's
holdout days are never seen here: the fitting days are split again, the last `holdout_days` of
them validating the parameters fitted on the earlier ones, judged by the model's gate metric.
"""

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from assets.model_spec import ModelSpec

SAMPLERS = ("tpe", "random")
# Boosting iterations between two reports of a trial to the pruner.
STAGE_ITERATIONS = 50
# The pruner judges a trial only once this many trials completed, and from this stage on.
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_ITERATIONS = 100
# TPE draws its first trials at random before it models the space. Optuna's default (10) would
# leave nothing to TPE at the budgets a daily retrain affords (10 to 20 trials), so a trial budget
# gives a third of itself to the random start, at least 3 and at most Optuna's 10.
TPE_STARTUP_TRIALS = 10


def tpe_startup_trials(trials: int) -> int:
    """Random trials before TPE models the space, for a budget of `trials` (0: time only)."""
    if trials <= 0:
        return TPE_STARTUP_TRIALS
    return min(TPE_STARTUP_TRIALS, max(3, trials // 3))


def search(
    spec: ModelSpec,
    fit_rows: pd.DataFrame,
    base_params: Mapping[str, Any],
    trials: int,
    seconds: float,
    sampler: str = "tpe",
) -> tuple[dict, dict]:
    """The best parameters on the validation days, and the study: every trial (number, state,
    parameters, validation value, seconds, iterations fitted) with how it was searched.

    Stops after `trials` trials or `seconds` seconds, whichever comes first (0 means no limit
    of that kind; at least one must be set). `sampler` "random" draws from the same space with
    Optuna's seeded random sampler and no pruning: the plain random search, for comparison.
    """
    import optuna

    from assets import modeling, training

    if trials <= 0 and seconds <= 0:
        raise ValueError("a hyperparameter search needs a budget: trials or seconds")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
    space = modeling.search_space(spec)
    unknown = sorted(set(space) - set(base_params))
    if unknown:
        raise ValueError(
            f"{spec.name}: search_space names {unknown}, which are not parameters of its "
            f"estimator ({sorted(base_params)})"
        )
    day = spec.day_column
    days = sorted(fit_rows[day].unique())
    validation_first = days[-spec.holdout_days]
    train = fit_rows[fit_rows[day] < validation_first]
    validation = fit_rows[fit_rows[day] >= validation_first]
    seed = int(base_params.get("random_state", 0))
    staged = sampler == "tpe" and modeling.stages_allowed(spec) and "max_iter" in base_params
    metric = spec.gate_metric

    def objective(trial: "optuna.Trial") -> float:
        params = dict(base_params) | {
            name: dimension.suggest(trial, name) for name, dimension in space.items()
        }
        trial.set_user_attr("params", _plain(params))
        if not staged:
            estimator = modeling.fit(spec, train, params)
            return training.holdout_metrics(spec, validation, estimator)[metric]
        for iterations, estimator in modeling.fit_in_stages(spec, train, params, STAGE_ITERATIONS):
            value = training.holdout_metrics(spec, validation, estimator)[metric]
            trial.set_user_attr("iterations", iterations)
            if math.isnan(value):
                return value
            trial.report(value, iterations)
            if iterations < params["max_iter"] and trial.should_prune():
                raise optuna.TrialPruned()
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if spec.higher_is_better else "minimize",
        sampler=(
            optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup_trials(trials))
            if sampler == "tpe"
            else optuna.samplers.RandomSampler(seed=seed)
        ),
        pruner=(
            optuna.pruners.MedianPruner(
                n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_ITERATIONS
            )
            if staged
            else optuna.pruners.NopPruner()
        ),
    )
    study.enqueue_trial({name: base_params[name] for name in space}, skip_if_exists=True)
    study.optimize(objective, n_trials=trials or None, timeout=seconds or None)

    measured = f"validation_{metric}"
    kept = [
        {
            "number": t.number,
            "state": t.state.name,
            "params": t.user_attrs["params"],
            measured: _value(t),
            "iterations": t.user_attrs.get("iterations"),
            "seconds": round(t.duration.total_seconds(), 3) if t.duration else None,
        }
        for t in study.trials
        if "params" in t.user_attrs
    ]
    complete = [t for t in kept if t["state"] == "COMPLETE"]
    best = next(t for t in kept if t["number"] == study.best_trial.number) if complete else kept[0]
    summary = {
        "sampler": sampler,
        "seed": seed,
        "pruning": staged,
        "budget_trials": trials,
        "budget_seconds": seconds,
        "validation_window": [validation_first.isoformat(), days[-1].isoformat()],
        "best_trial": best["number"],
        "space": {name: repr(dimension) for name, dimension in space.items()},
        "trials": kept,
    }
    return best["params"], summary


def study_table(record: Mapping[str, Any]) -> pd.DataFrame:
    """A version's search as a table: a row per trial, with the searched parameters' values."""
    search, trials = record["search"], record["search_trials"]
    searched = list(search["space"])
    measured = next(k for k in trials[0] if k.startswith("validation_"))
    return pd.DataFrame(
        [
            {
                "trial": t["number"],
                "state": t["state"] + (" (chosen)" if t["number"] == search["best_trial"] else ""),
                measured: None if t[measured] is None else round(t[measured], 4),
                "iterations": t["iterations"],
                "seconds": t["seconds"],
            }
            | {name: _rounded(t["params"].get(name)) for name in searched}
            for t in trials
        ]
    )


def _rounded(value: Any) -> Any:
    return float(f"{value:.4g}") if isinstance(value, float) else value


def _value(trial: Any) -> float | None:
    """A trial's validation value: its final one, or the last reported before it was pruned."""
    if trial.value is not None:
        return float(trial.value)
    if trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return None


def _plain(params: Mapping) -> dict:
    """numpy scalars as JSON-friendly Python numbers."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}
