"""Training one cutoff: fit, evaluate beside the champion on the same rows, gate, promote."""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.model_spec import ModelSpec
from assets.quality_gate import DEFAULT_AUC_FLOOR, DEFAULT_AUC_TOLERANCE, GateDecision, decide
from resources import promotions
from resources.registry import ModelRegistry

# About four times a 60-day window of the bundled data: fitting that many rows takes seconds.
DEFAULT_MAX_TRAINING_ROWS = 200_000
# The features each version keeps for drift monitoring: a seeded sample of its fitting rows, big
# enough for stable drift scores, small enough that comparing one day with it stays fast.
REFERENCE_ROWS = 5_000
REFERENCE_SEED = 2013


class TrainingConfig(dg.Config):
    """Run config of `<model>/model`, set per run in the Launchpad or by a sensor."""

    auc_floor: float = Field(
        default=DEFAULT_AUC_FLOOR, description="Quality gate: the lowest holdout AUC promoted."
    )
    auc_tolerance: float = Field(
        default=DEFAULT_AUC_TOLERANCE,
        description="Quality gate: how much lower than the champion's AUC on the same rows passes.",
    )
    params: dict[str, float] = Field(
        default={},
        description="Hyperparameters replacing the model spec's, e.g. {max_iter: 100}.",
    )
    search_trials: int = Field(
        default=0, description="Hyperparameter search: at most this many trials (0: no limit)."
    )
    search_seconds: float = Field(
        default=0.0,
        description="Hyperparameter search: stop after this many seconds (0: no limit). "
        "The search is off when both budgets are 0.",
    )
    max_training_rows: int = Field(
        default=DEFAULT_MAX_TRAINING_ROWS,
        ge=1_000,
        description="Training reads at most this many labelled rows of its window: above it, "
        "every k-th flight in flight order, the same rows for the same data. Bounds training time "
        "and memory at any volume; the bundled data stays below it.",
    )

    def base_params(self, spec: ModelSpec) -> dict[str, float | int]:
        """The spec's parameters with this run's replacements, each of the spec's type."""
        unknown = sorted(set(self.params) - set(spec.params))
        if unknown:
            raise ValueError(
                f"{spec.name}: unknown parameters {unknown}; known: {list(spec.params)}"
            )
        return {**spec.params, **{k: type(spec.params[k])(v) for k, v in self.params.items()}}


@dataclass(frozen=True)
class Candidate:
    """A version before the gate. `estimator`, fitted on every labelled row of the window, is
    what is stored and served; `metrics` are the gate's evidence: a fit of the same parameters
    without the window's last `holdout_days`, scored on the rows of those days (`holdout`)."""

    estimator: Any
    metrics: dict[str, float]
    holdout: pd.DataFrame
    gate_fit_rows: int


@dataclass(frozen=True)
class Trained:
    record: dict
    decision: GateDecision
    promoted: bool


def train_cutoff(
    spec: ModelSpec,
    config: TrainingConfig,
    registry: ModelRegistry,
    day: date,
    window: list[date],
    labelled: pd.DataFrame,
) -> Trained:
    """Train the model for cutoff `day` on the `labelled` rows of its `window` and gate it.

    The candidate (`fit_candidate`) and the champion in force on `day` are both scored on the
    window's held-out days. A passing version becomes champion from `day` on, unless it already
    is, or a rollback withdrew it (then only a person may promote it again).
    """
    from assets import modeling, tuning

    started = time.perf_counter()
    frame = labelled[labelled["flight_date"].between(window[0], window[-1])]
    params = config.base_params(spec)
    trials = None
    if config.search_trials > 0 or config.search_seconds > 0:
        fit_rows, _ = holdout_split(spec, frame, window)
        params, trials = tuning.search(
            spec, fit_rows, params, config.search_trials, config.search_seconds
        )
    candidate = fit_candidate(spec, frame, window, params)
    metrics, holdout = candidate.metrics, candidate.holdout
    data_fingerprint = modeling.fingerprint(frame)
    version = modeling.version_id(day, data_fingerprint, spec, params)

    history = registry.history(spec.name)
    champion = promotions.champion_at(history, day)
    champion_auc = None
    if champion is not None:
        champion_auc = (
            metrics["auc"]
            if champion["version"] == version
            else modeling.classification_metrics(
                holdout["label"],
                modeling.score(registry.load(spec.name, champion["version"]), spec, holdout),
            )["auc"]
        )
    decision = decide(metrics["auc"], champion_auc, config.auc_floor, config.auc_tolerance)
    record = registry.save(
        spec.name,
        version,
        candidate.estimator,
        {
            "partition": day.isoformat(),
            "training_window": [window[0].isoformat(), window[-1].isoformat()],
            "fit_window": [window[0].isoformat(), window[-1].isoformat()],
            "gate_fit_window": [
                window[0].isoformat(),
                window[-spec.holdout_days - 1].isoformat(),
            ],
            "holdout_window": [window[-spec.holdout_days].isoformat(), window[-1].isoformat()],
            "fit_rows": len(frame),
            "gate_fit_rows": candidate.gate_fit_rows,
            "window_rows": labelled.attrs.get("window_rows", len(frame)),
            "sampled_every": labelled.attrs.get("sampled_every", 1),
            "data_fingerprint": data_fingerprint,
            "features": spec.features,
            "params": params,
            "search_trials": trials,
            "metrics": metrics,
            "gate": {
                "passed": decision.passed,
                "reason": decision.reason,
                "auc_floor": config.auc_floor,
                "auc_tolerance": config.auc_tolerance,
                "champion_version": champion["version"] if champion else None,
                "champion_auc": champion_auc,
            },
            "training_seconds": round(time.perf_counter() - started, 3),
            "code_version": modeling.code_version(),
            "created_at": datetime.now(UTC).isoformat(),
        },
        reference=reference_sample(spec, frame),
    )
    promote = (
        decision.passed
        and (champion is None or champion["version"] != version)
        and version not in promotions.rolled_back(history)
    )
    if promote:
        registry.promote(spec.name, version, day, action="promote", reason=decision.reason)
    return Trained(record, decision, promote)


def fit_candidate(
    spec: ModelSpec, rows: pd.DataFrame, window: list[date], params: dict[str, float | int]
) -> Candidate:
    """The version of `window` and the gate's evidence about it. The stored version is fitted on
    the whole window, held-out days included: under drift the newest days tell the most, and a
    model served without them would start a week old. The gate therefore judges a fit of the
    same parameters without the held-out days, scored on them."""
    from assets import modeling

    fit_rows, holdout = holdout_split(spec, rows, window)
    evaluated = modeling.fit(spec, fit_rows, params)
    metrics = modeling.classification_metrics(
        holdout["label"], modeling.score(evaluated, spec, holdout)
    )
    return Candidate(modeling.fit(spec, rows, params), metrics, holdout, len(fit_rows))


def holdout_split(
    spec: ModelSpec, rows: pd.DataFrame, window: list[date]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled `rows` of `window` the gate's fit sees, and its holdout: the window's last
    `spec.holdout_days` days."""
    held_out = rows["flight_date"] >= window[-spec.holdout_days]
    return rows[~held_out], rows[held_out]


def reference_sample(spec: ModelSpec, fit_rows: pd.DataFrame) -> pd.DataFrame:
    """Up to `REFERENCE_ROWS` of the rows a version was fitted on, its features only, in their
    original order; the same rows give the same sample."""
    rows = fit_rows[spec.features]
    if len(rows) > REFERENCE_ROWS:
        rows = rows.sample(n=REFERENCE_ROWS, random_state=REFERENCE_SEED).sort_index()
    return rows.reset_index(drop=True)
