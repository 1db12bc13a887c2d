"""What a model declares; the platform builds its assets, sensors, jobs and CLI entries from it.

A model reads declared inputs (raw tables of one dataset, or another model's features), each over
a window of days around the day D being featurized; one SQL query over them makes its features.
Its label is an SQL expression over one table, written once: training joins it on the entity key,
and every input view of that table carries it as a `label` column, so features built from past
labels read the same definition. The task says what is fitted and scored; the metrics say how a
version is judged, the gate metric and its direction decide promotions, the rollout policy says
whether a version that passes the gate serves at once or first proves itself on served days, and
the monitoring settings say when sensors retrain.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.metrics import METRICS, default_metrics
from assets.search_space import Dimension
from resources import settings
from resources.dataset import check_identifier

if TYPE_CHECKING:
    from assets.notebook_spec import Notebook

# The column that holds the label wherever the platform adds it (input views, training rows).
LABEL = "label"


class Task(StrEnum):
    BINARY = "binary_classification"
    REGRESSION = "regression"


@dataclass(frozen=True)
class Input:
    """A table a model's features read, exposed to its SQL under the input's name.

    For a day D the view holds the table's rows of D (when `same_day`) and of the
    `lookback_days` days before D; a table without days (a register) is read whole. The window
    becomes the partition mapping of the lineage, so a backfill knows what each day needs.
    """

    table: str  # a raw table, or another model's features: '<model>/features'
    lookback_days: int = 0
    same_day: bool = True

    def __post_init__(self):
        if self.lookback_days < 0 or (self.lookback_days == 0 and not self.same_day):
            raise ValueError(f"input {self.table}: it must read day D or days before it")


@dataclass(frozen=True)
class Label:
    """What the model learns: `expression`, SQL over the columns of `table`, joined on the
    model's entity key. NULL means the row has no label: it is scored but neither trained nor
    evaluated on (a cancelled flight has no arrival delay)."""

    table: str
    expression: str


# The settings that mean the same whatever a model's metric, so one variable may set them for
# every model (`resources.settings.monitoring_overrides`).
SHARED_MONITORING = (
    "drift_threshold",
    "drift_days",
    "retrain_cooldown_days",
    "quality_days",
    "retrain_sensor_seconds",
)


@dataclass(frozen=True)
class Monitoring:
    """When a model's sensors retrain it, and how its drift is measured.

    Drift: each feature column of a day is compared with the champion's reference sample by a
    distance (normed Wasserstein for numbers, Jensen-Shannon for categories) and counts as drifted
    at `numeric_drift` or `categorical_drift`; a day counts as drifted when more than
    `drift_threshold` of its columns did, and `drift_days` drifted days in a row request a
    retrain. A model with few rows a day pools `drift_pool_days` days (D and the days before it)
    into the sample compared with the reference, so that a distance means something.

    Quality: the mean daily gate metric of the last `quality_days` days served by the champion
    requests a retrain when it is worse than `quality_limit`, or worse than the champion's
    holdout value by more than `quality_margin` (both in the metric's own units; None: not
    checked). No retrain is requested within `retrain_cooldown_days` data days of the newest.
    """

    numeric_drift: float = 1.0
    categorical_drift: float = 0.1
    drift_pool_days: int = 1
    drift_threshold: float = 0.2
    drift_days: int = 3
    retrain_cooldown_days: int = 14
    quality_days: int = 7
    quality_limit: float | None = None
    quality_margin: float | None = None
    retrain_sensor_seconds: int = 30

    def __post_init__(self):
        problems = []
        if not 0 <= self.drift_threshold <= 1:
            problems.append(f"drift_threshold {self.drift_threshold} is not a share (0..1)")
        for name in ("drift_pool_days", "drift_days", "quality_days", "retrain_sensor_seconds"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.retrain_cooldown_days < 0:
            problems.append("retrain_cooldown_days must not be negative")
        if problems:
            raise ValueError("monitoring settings: " + "; ".join(problems))

    def with_environment(self, model: str) -> "Monitoring":
        """These settings with those the environment sets for `model` replacing them."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        found = settings.monitoring_overrides(model, list(fields), list(SHARED_MONITORING))
        values = {}
        for name, (variable, raw) in found.items():
            parse = int if fields[name].type is int else float
            try:
                values[name] = parse(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r} is not a number") from None
        try:
            return dataclasses.replace(self, **values)
        except ValueError as error:
            variables = ", ".join(variable for variable, _ in found.values())
            raise ValueError(f"{error} (set by {variables})") from None


class Policy(StrEnum):
    """How a version that passes the gate reaches the served predictions."""

    DIRECT = "direct"  # champion from its cutoff on
    SHADOW = "shadow"  # challenger scoring every served row beside the champion, never served
    AB = "ab"  # challenger serving a share of the rows, chosen by a hash of their key


@dataclass(frozen=True)
class Rollout:
    """Whether a version that passes the gate becomes champion at once (`direct`) or a challenger
    judged on the days it then scores (`shadow`, `ab` with `ab_share` of the rows), and how the
    decision sensor judges it.

    The decision compares the challenger's daily gate metric with the champion's on the days both
    scored (the same rows under `shadow`, their own arms under `ab`): after at least `min_days`
    such days it promotes the challenger when the mean daily difference is in its favour and a
    paired bootstrap over the days (`bootstrap_samples` resamples, seeded with `seed`) puts the
    difference above zero with `confidence`; it retires it when the bootstrap puts it below zero
    with that confidence, or when `max_days` days have been judged without a decision.

    `min_days` is 14 by default, the days of service over which a promotion proves right or
    wrong: in the 2013 and 2014 replays, judging 7 days promoted two versions that then served
    worse for two weeks, judging 14 none (docs/benchmarks.md, rollout policies).
    """

    policy: Policy = Policy.DIRECT
    ab_share: float = 0.5
    min_days: int = 14
    max_days: int = 28
    confidence: float = 0.9
    bootstrap_samples: int = 2000
    seed: int = 2013
    decision_sensor_seconds: int = 30

    def __post_init__(self):
        problems = []
        if self.policy not in set(Policy):
            problems.append(f"policy {self.policy!r}: expected one of {[p.value for p in Policy]}")
        if not 0 < self.ab_share < 1:
            problems.append(f"ab_share {self.ab_share} is not a share strictly between 0 and 1")
        if not 1 <= self.min_days <= self.max_days:
            problems.append("expected 1 <= min_days <= max_days")
        if not 0.5 < self.confidence < 1:
            problems.append(f"confidence {self.confidence} must be above 0.5 and below 1")
        for name in ("bootstrap_samples", "decision_sensor_seconds"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if problems:
            raise ValueError("rollout settings: " + "; ".join(problems))
        object.__setattr__(self, "policy", Policy(self.policy))


@dataclass(frozen=True)
class ModelSpec:
    """A model of the platform.

    Features: `features_sql`, one DuckDB query over the `inputs` views, returns one row per
    entity with the `entity_key` columns (the day column first), the features and any
    `carried` columns; `{<input>_days}` in it is replaced by that input's lookback. Or
    `features_from` names a model whose features this one reads instead of computing its own.
    The query must never read the label of day D itself: label inputs look back only.

    Training: a version per cutoff D is fitted on the labelled rows of the `window_days` before
    D (at least `min_window_days`); the gate judges a fit without the last `holdout_days`,
    scored on them beside the champion, by `gate_metric`. `estimator(params)` builds an unfitted
    scikit-learn estimator or pipeline from `params`; by default gradient boosting of the task's
    kind, whose defaults (which follow the rows a window holds) `params` replace one by one.

    Search: `search_space` maps parameters to the ranges a hyperparameter search explores
    (`assets.search_space`); the default estimator searches `modeling.BOOSTING_SPACE` unless
    the model names its own. A declared estimator is searched only over a space it declares.

    Rollout: `rollout` says how a version that passes the gate starts serving (`Rollout`).

    Notebooks: `notebooks` run as steps of their own, per trained version or per day
    (`assets.notebook_spec`).
    """

    name: str
    description: str
    entity_key: tuple[str, ...]
    label: Label
    task: Task
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...] = ()
    features_sql: str = ""
    inputs: Mapping[str, Input] = field(default_factory=dict)
    features_from: str = ""
    carried: tuple[str, ...] = ()
    estimator: Callable[[Mapping[str, Any]], Any] | None = None
    params: Mapping[str, Any] | None = None
    trusted_types: tuple[str, ...] = ()
    search_space: Mapping[str, Dimension] | None = None
    metrics: tuple[str, ...] = ()
    gate_metric: str = ""
    gate_limit: float = math.nan
    gate_tolerance: float = 0.0
    window_days: int = 60
    min_window_days: int = 28
    holdout_days: int = 7
    first_cutoff: date | None = None
    monitoring: Monitoring = field(default_factory=Monitoring)
    rollout: Rollout = field(default_factory=Rollout)
    notebooks: tuple["Notebook", ...] = ()

    def __post_init__(self):
        check_identifier("model", self.name)
        for column in (*self.entity_key, *self.features, *self.carried):
            check_identifier(f"column of {self.name}", column)
        problems = []
        if bool(self.features_sql) == bool(self.features_from):
            problems.append("declare features_sql (with inputs) or features_from, not both")
        if self.features_sql and not self.inputs:
            problems.append("features_sql needs inputs")
        if not self.entity_key:
            problems.append("entity_key needs at least the day column")
        if not self.features:
            problems.append("no features declared")
        both = set(self.numeric_features) & set(self.categorical_features)
        if both:
            problems.append(f"features both numeric and categorical: {sorted(both)}")
        if LABEL in (*self.features, *self.carried):
            problems.append("'label' is the platform's name for the label; rename the column")
        if not self.metrics:
            object.__setattr__(self, "metrics", default_metrics(self.task))
        if not self.gate_metric:
            object.__setattr__(self, "gate_metric", self.metrics[0])
        for name in self.metrics:
            metric = METRICS.get(name)
            if metric is None:
                problems.append(f"unknown metric {name!r}; known: {sorted(METRICS)}")
            elif self.task not in metric.tasks:
                problems.append(f"metric {name} does not apply to a {self.task} model")
        gate = METRICS.get(self.gate_metric)
        if self.gate_metric not in self.metrics:
            problems.append(f"gate metric {self.gate_metric} is not among metrics {self.metrics}")
        elif gate is not None and gate.higher_is_better is None:
            problems.append(f"gate metric {self.gate_metric} has no better direction")
        if math.isnan(self.gate_limit):
            problems.append("gate_limit: the worst gate metric a version may serve with")
        if not 0 < self.holdout_days < self.min_window_days <= self.window_days:
            problems.append("expected 0 < holdout_days < min_window_days <= window_days")
        for name, dimension in (self.search_space or {}).items():
            if not isinstance(dimension, Dimension):
                problems.append(
                    f"search_space[{name!r}] is {dimension!r}: expected Real, Integer or Choice "
                    "(assets.search_space)"
                )
        if problems:
            raise ValueError(f"model {self.name}: " + "; ".join(problems))

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]

    @property
    def day_column(self) -> str:
        return self.entity_key[0]

    @property
    def features_table(self) -> str:
        """The lake table (and asset key) of the features this model reads."""
        return f"{self.features_from or self.name}/features"

    @property
    def higher_is_better(self) -> bool:
        return bool(METRICS[self.gate_metric].higher_is_better)

    @property
    def label_sql(self) -> str:
        """The label as SQL over the label table's columns: an integer 0/1 for a classifier, a
        number for a regression."""
        kind = "INTEGER" if self.task == Task.BINARY else "DOUBLE"
        return f"CAST(({self.label.expression}) AS {kind})"

    @property
    def lookback(self) -> dict[str, int]:
        """`{<input>_days}` placeholders of the features SQL."""
        return {f"{name}_days": spec.lookback_days for name, spec in self.inputs.items()}


def sql_file(module_file: str, name: str) -> str:
    """The text of `name` beside the declaring module (`sql_file(__file__, 'features.sql')`)."""
    return (Path(module_file).parent / name).read_text(encoding="utf-8")
