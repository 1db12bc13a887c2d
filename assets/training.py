"""Training one cutoff: read the labelled window, fit, evaluate beside the champion on the same
rows, gate, then promote or start a challenger, as the rollout policy says."""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.catalog import Catalog
from assets.metrics import evaluate
from assets.model_spec import LABEL, ModelSpec, Policy, Task
from assets.quality_gate import GateDecision, decide
from resources import experiments, promotions
from resources.days import row_chunks
from resources.lake import Lake
from resources.registry import ModelRegistry
from resources.scratch import scratch

# About four times a 60-day window of the bundled flights: fitting that many rows takes seconds.
DEFAULT_MAX_TRAINING_ROWS = 200_000
# The features each version keeps for drift monitoring: a seeded sample of its fitting rows, big
# enough for stable drift scores, small enough that comparing one day with it stays fast.
REFERENCE_ROWS = 5_000
REFERENCE_SEED = 2013


class TrainingConfig(dg.Config):
    """Run config of `<model>/model`, set per run in the Launchpad or by a sensor."""

    gate_limit: float | None = Field(
        default=None,
        description="Quality gate: the worst holdout value of the gate metric that may serve (a "
        "floor when higher is better, a ceiling when lower is). Empty: the model's declaration.",
    )
    gate_tolerance: float | None = Field(
        default=None,
        description="Quality gate: how much worse than the champion's value on the same rows "
        "passes. Empty: the model's declaration.",
    )
    params: dict[str, float] = Field(
        default={},
        description="Hyperparameters replacing the model's, e.g. {max_iter: 100}.",
    )
    search_trials: int = Field(
        default=0, description="Hyperparameter search: at most this many trials (0: no limit)."
    )
    search_seconds: float = Field(
        default=0.0,
        description="Hyperparameter search: stop after this many seconds (0: no limit). "
        "The search is off when both budgets are 0.",
    )
    rollout: str = Field(
        default="",
        description="Rollout of a version that passes the gate: direct (champion at once), "
        "shadow or ab (a challenger the decision sensor judges on served days). Empty: the "
        "model's declaration.",
    )
    ab_share: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Under ab, the share of rows the challenger serves. Empty: the declaration.",
    )
    max_training_rows: int = Field(
        default=DEFAULT_MAX_TRAINING_ROWS,
        ge=1_000,
        description="Training reads at most this many labelled rows of its window: above it, "
        "every k-th row in entity order, the same rows for the same data. Bounds training time "
        "and memory at any volume; the bundled data stays below it.",
    )

    def gate(self, spec: ModelSpec) -> tuple[float, float]:
        """The gate's limit and tolerance for this run."""
        limit = spec.gate_limit if self.gate_limit is None else self.gate_limit
        tolerance = spec.gate_tolerance if self.gate_tolerance is None else self.gate_tolerance
        return limit, tolerance

    def policy(self, spec: ModelSpec) -> tuple[Policy, float | None]:
        """The rollout policy for this run, and the challenger's share of rows under `ab`."""
        try:
            policy = Policy(self.rollout or spec.rollout.policy)
        except ValueError:
            raise ValueError(
                f"{spec.name}: rollout {self.rollout!r}; expected one of "
                f"{[p.value for p in Policy]}"
            ) from None
        share = spec.rollout.ab_share if self.ab_share is None else self.ab_share
        return policy, share if policy == Policy.AB else None

    def base_params(self, spec: ModelSpec, rows: int) -> dict[str, Any]:
        """The model's parameters with this run's replacements, each of the type it replaces.
        A declared estimator takes the declared parameters; the default one takes its defaults
        for `rows` labelled rows, with the declared ones replacing them."""
        from assets import modeling

        declared = dict(spec.params or {})
        if spec.estimator is None:
            declared = modeling.default_params(rows) | declared
        unknown = sorted(set(self.params) - set(declared))
        if unknown:
            raise ValueError(f"{spec.name}: unknown parameters {unknown}; known: {list(declared)}")
        return declared | {k: type(declared[k])(v) for k, v in self.params.items()}


@dataclass(frozen=True)
class Candidate:
    """A version before the gate. `estimator`, fitted on every labelled row of the window, is
    what is stored and served; `metrics` are the gate's evidence: a fit of the same parameters
    without the window's last `holdout_days`, scored on the rows of those days (`holdout`)."""

    estimator: Any
    metrics: dict[str, float]
    holdout: pd.DataFrame
    gate_fit_rows: int
    fit_metrics: dict[str, float]


@dataclass(frozen=True)
class Trained:
    record: dict
    decision: GateDecision
    promoted: bool
    challenger: bool = False  # started as a challenger instead of promoted


def labelled_rows(
    lake: Lake, catalog: Catalog, spec: ModelSpec, days: list[date], max_rows: int | None = None
) -> pd.DataFrame:
    """Features of `days` joined with their labels, in entity order; rows without a label are
    left out. Above `max_rows`, every k-th of them in that order is kept (the smallest k that
    fits), so the same data always gives the same rows; `frame.attrs` says how many there were
    and which k was used.

    A window that may hold more than `max_rows` is counted and read a piece of days at a time
    (`row_chunks`), numbering its rows across the pieces: the entity key starts with the day, so
    the rows kept are the same, and the join and the numbering hold one piece in memory, not
    the window (at 100 times the bundled flights, 1.1 GiB for a 59-day window)."""
    con = scratch()
    lake.register(con, "features", spec.features_table, days)
    lake.register(con, "labelled", spec.label.table, days)
    key = ", ".join(f'"{c}"' for c in spec.entity_key)

    def labelled(piece: list[date]) -> str:
        inside = f"\"{spec.day_column}\" BETWEEN DATE '{piece[0]}' AND DATE '{piece[-1]}'"
        return f"""
            WITH labels AS (
                SELECT {key}, {spec.label_sql} AS {LABEL}
                FROM labelled WHERE ({spec.label.expression}) IS NOT NULL AND {inside}
            )
            SELECT f.*, labels.{LABEL} FROM features f JOIN labels USING ({key})
            WHERE f.{inside}
        """

    [(features_rows,)] = con.sql("SELECT count(*) FROM features").fetchall()  # from the footers
    if not max_rows or features_rows <= max_rows:
        frame = con.sql(f"{labelled(days)} ORDER BY {key}").df()
        total, every = len(frame), 1
    else:
        pieces = row_chunks(days, features_rows)
        counts = [con.sql(f"SELECT count(*) FROM ({labelled(p)})").fetchall()[0][0] for p in pieces]
        total = sum(counts)
        every = -(-total // max_rows)
        frames, offset = [], 0
        for piece, count in zip(pieces, counts, strict=True):
            number = f"{offset} + row_number() OVER (ORDER BY {key}) - 1"
            kept = f"SELECT * FROM ({labelled(piece)}) QUALIFY ({number}) % {every} = 0"
            frames.append(con.sql(f"{kept} ORDER BY {key}").df())
            offset += count
        frame = pd.concat(frames, ignore_index=True)
    frame[spec.day_column] = frame[spec.day_column].dt.date
    if spec.task == Task.BINARY:
        check_binary_labels(spec, frame)
    frame.attrs.update(window_rows=total, sampled_every=every)
    return frame


def check_binary_labels(spec: ModelSpec, frame: pd.DataFrame) -> None:
    """A classifier's labels are 0 and 1; anything else means the label is not a condition."""
    values = set(frame[LABEL].unique().tolist())
    if not values <= {0, 1}:
        shown = sorted(values)[:5]
        raise dg.Failure(
            f"{spec.name}: label {spec.label.expression!r} takes {len(values)} values "
            f"({shown}...), but a binary classifier needs 0 and 1. Write a condition or declare "
            "task=Task.REGRESSION"
        )


def train_cutoff(
    spec: ModelSpec,
    config: TrainingConfig,
    registry: ModelRegistry,
    day: date,
    window: list[date],
    labelled: pd.DataFrame,
    run_id: str = "",
) -> Trained:
    """Train the model for cutoff `day` on the `labelled` rows of its `window`, gate it and store
    it (`gate_and_store`); `run_id` is the Dagster run that trains it."""
    from assets import modeling, tuning

    started = time.perf_counter()
    frame = labelled[labelled[spec.day_column].between(window[0], window[-1])]
    params = config.base_params(spec, len(frame))
    study: dict = {}
    if config.search_trials > 0 or config.search_seconds > 0:
        fit_rows, _ = holdout_split(spec, frame, window)
        params, study = tuning.search(
            spec, fit_rows, params, config.search_trials, config.search_seconds
        )
    candidate = fit_candidate(spec, frame, window, params)
    data_fingerprint = modeling.fingerprint(frame)
    version = modeling.version_id(day, data_fingerprint, spec, params)
    record = {
        "partition": day.isoformat(),
        "task": str(spec.task),
        "training_window": [window[0].isoformat(), window[-1].isoformat()],
        "fit_window": [window[0].isoformat(), window[-1].isoformat()],
        "gate_fit_window": [window[0].isoformat(), window[-spec.holdout_days - 1].isoformat()],
        "holdout_window": [window[-spec.holdout_days].isoformat(), window[-1].isoformat()],
        "fit_rows": len(frame),
        "gate_fit_rows": candidate.gate_fit_rows,
        "window_rows": labelled.attrs.get("window_rows", len(frame)),
        "sampled_every": labelled.attrs.get("sampled_every", 1),
        "data_fingerprint": data_fingerprint,
        "features": spec.features,
        "params": params,
        "search_trials": study.pop("trials", None),
        "search": study or None,
        "metrics": candidate.metrics,
        "fit_metrics": candidate.fit_metrics,
        "training_seconds": round(time.perf_counter() - started, 3),
        "code_version": modeling.code_version(),
        "dagster_run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(),
    }
    limit, tolerance = config.gate(spec)
    reference = reference_sample(spec, frame)
    return gate_and_store(
        spec,
        registry,
        day,
        version,
        candidate,
        record,
        limit,
        tolerance,
        reference,
        config.policy(spec),
    )


def gate_and_store(
    spec: ModelSpec,
    registry: ModelRegistry,
    day: date,
    version: str,
    candidate: Candidate,
    record: dict,
    limit: float,
    tolerance: float,
    reference: pd.DataFrame,
    rollout: tuple[Policy, float | None] = (Policy.DIRECT, None),
) -> Trained:
    """Store `candidate` as `version`, with `record`, its drift `reference` and the verdict of
    the gate against the champion in force on `day`. A
    passing version becomes champion from `day` on under the `direct` policy, or when there is no
    champion to challenge; under `shadow` and `ab` (`rollout`: the policy and the share of rows)
    it becomes the challenger of that champion from `day` on. Neither happens when it already is
    the champion, when a rollback withdrew it (then only a person may promote it again) or when it
    has been a challenger before (its experiment decided).

    The promotion or challenge is appended only to the history the verdict was reached on: when another
    promotion of the model lands in between, the champion in force is looked up again and the
    candidate gated against it, so no version is promoted against a champion that was no longer
    in force, however many trainings run at once.
    """

    policy, share = rollout

    def judge(history: list[dict]) -> tuple[GateDecision, dict, bool]:
        """The gate's decision on `history`, the record's account of it, and whether the version
        starts serving (promoted, or challenger)."""
        metric = spec.gate_metric
        champion = promotions.champion_at(history, day)
        champion_value = None
        if champion is not None:
            champion_value = (
                candidate.metrics[metric]
                if champion["version"] == version
                else holdout_metrics(
                    spec,
                    candidate.holdout,
                    registry.load(spec.name, champion["version"], spec.trusted_types),
                )[metric]
            )
        decision = decide(metric, candidate.metrics[metric], champion_value, limit, tolerance)
        gate = {
            "passed": decision.passed,
            "reason": decision.reason,
            "metric": metric,
            "higher_is_better": spec.higher_is_better,
            "limit": limit,
            "tolerance": tolerance,
            "champion_version": champion["version"] if champion else None,
            "champion_value": champion_value,
            "rollout": policy.value if champion is not None else Policy.DIRECT.value,
            "ab_share": share if champion is not None else None,
        }
        serve = (
            decision.passed
            and (champion is None or champion["version"] != version)
            and version not in promotions.rolled_back(history)
            and version not in experiments.challenged(history)
        )
        return decision, gate, serve

    history = registry.history(spec.name)
    decision, gate, serve = judge(history)
    stored = registry.save(
        spec.name, version, candidate.estimator, record | {"gate": gate}, reference
    )
    while serve:
        try:
            if gate["rollout"] == Policy.DIRECT:
                registry.promote(
                    spec.name, version, day, "promote", decision.reason, decided_on=history
                )
                return Trained(stored, decision, promoted=True)
            registry.start_challenger(
                spec.name,
                version,
                gate["champion_version"],
                gate["rollout"],
                gate["ab_share"],
                day,
                decision.reason,
                decided_on=history,
            )
            return Trained(stored, decision, promoted=False, challenger=True)
        except promotions.HistoryChanged:
            history = registry.history(spec.name)
            decision, gate, serve = judge(history)
            stored = registry.write_record(spec.name, version, stored | {"gate": gate})
    return Trained(stored, decision, promoted=False)


def holdout_metrics(spec: ModelSpec, holdout: pd.DataFrame, estimator: Any) -> dict[str, float]:
    """The model's metrics of `estimator` on the labelled `holdout` rows."""
    from assets import modeling

    scores = modeling.score(estimator, spec, holdout)
    measured = evaluate(spec.task, holdout[LABEL], scores)
    return {name: measured[name] for name in (*spec.metrics, "rows")}


def fit_candidate(
    spec: ModelSpec, rows: pd.DataFrame, window: list[date], params: dict[str, Any]
) -> Candidate:
    """The version of `window` and the gate's evidence about it. The stored version is fitted on
    the whole window, held-out days included: under drift the newest days tell the most, and a
    model served without them would start a week old. The gate therefore judges a fit of the
    same parameters without the held-out days, scored on them. The served fit's own metrics,
    on the rows it was fitted on, are kept beside them: in-sample, so no evidence for the gate,
    but a gap between the two shows overfitting."""
    from assets import modeling

    fit_rows, holdout = holdout_split(spec, rows, window)
    evaluated, served = modeling.fit_side_by_side(spec, [fit_rows, rows], params)
    metrics = holdout_metrics(spec, holdout, evaluated)
    return Candidate(served, metrics, holdout, len(fit_rows), holdout_metrics(spec, rows, served))


def holdout_split(
    spec: ModelSpec, rows: pd.DataFrame, window: list[date]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled `rows` of `window` the gate's fit sees, and its holdout: the window's last
    `spec.holdout_days` days."""
    held_out = rows[spec.day_column] >= window[-spec.holdout_days]
    return rows[~held_out], rows[held_out]


def reference_sample(spec: ModelSpec, fit_rows: pd.DataFrame) -> pd.DataFrame:
    """Up to `REFERENCE_ROWS` of the rows a version was fitted on, its features only, in their
    original order; the same rows give the same sample."""
    rows = fit_rows[spec.features]
    if len(rows) > REFERENCE_ROWS:
        rows = rows.sample(n=REFERENCE_ROWS, random_state=REFERENCE_SEED).sort_index()
    return rows.reset_index(drop=True)
