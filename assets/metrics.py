"""The metrics a model can be judged by, with the direction that makes one value better.

Computed on arrays with numpy: monitoring evaluates every day and model version, and
scikit-learn's input validation alone costs milliseconds per call, forty times the arithmetic.
The formulas are scikit-learn's (`roc_auc_score` with ties sharing their average rank, `log_loss`
with probabilities clipped to machine epsilon, `brier_score_loss`, `mean_absolute_error`, the
root of `mean_squared_error`, `mean_absolute_percentage_error` over nonzero labels).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BINARY, REGRESSION = "binary_classification", "regression"
ROWS = "rows"


@dataclass(frozen=True)
class Metric:
    """A metric: which tasks it applies to, and whether higher is better (None: it describes
    the data and ranks nothing, like the share of positive labels)."""

    name: str
    description: str
    tasks: tuple[str, ...]
    higher_is_better: bool | None

    def worse(self, value: float, than: float, by: float = 0.0) -> bool:
        """Whether `value` is worse than `than` by more than `by`; NaN is worse than anything."""
        if np.isnan(value):
            return True
        return value < than - by if self.higher_is_better else value > than + by


METRICS = {
    metric.name: metric
    for metric in (
        Metric("auc", "area under the ROC curve", (BINARY,), True),
        Metric("log_loss", "mean negative log-likelihood", (BINARY,), False),
        Metric("brier", "mean squared error of the probability", (BINARY,), False),
        Metric("positive_rate", "share of positive labels", (BINARY,), None),
        Metric("mae", "mean absolute error", (REGRESSION,), False),
        Metric("rmse", "root mean squared error", (REGRESSION,), False),
        Metric("mape", "mean absolute error relative to the label", (REGRESSION,), False),
        Metric("mean_label", "mean of the labels", (REGRESSION,), None),
    )
}
DEFAULTS = {
    BINARY: ("auc", "log_loss", "brier", "positive_rate"),
    REGRESSION: ("mae", "rmse", "mape", "mean_label"),
}


def default_metrics(task: str) -> tuple[str, ...]:
    return DEFAULTS[task]


def binary_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC (NaN when one class is absent), log loss, Brier score and positive rate."""
    from scipy.stats import rankdata

    positives = int(labels.sum())
    negatives = len(labels) - positives
    auc = float("nan")
    if positives and negatives:
        ranks = rankdata(scores)[labels == 1].sum()
        auc = float((ranks - positives * (positives + 1) / 2) / (positives * negatives))
    eps = np.finfo(float).eps
    late, on_time = np.clip(scores, eps, 1 - eps), np.clip(1 - scores, eps, 1 - eps)
    likelihood = np.where(labels == 1, late, on_time) / (late + on_time)
    return {
        "auc": auc,
        "log_loss": float(-np.mean(np.log(likelihood))),
        "brier": float(np.mean((labels - scores) ** 2)),
        "positive_rate": positives / len(labels),
    }


def regression_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, MAPE (over the labels that are not zero; NaN when all are) and the mean label."""
    errors = predictions - labels
    nonzero = labels != 0
    return {
        "mae": float(np.mean(np.abs(errors))),
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mape": (
            float(np.mean(np.abs(errors[nonzero]) / np.abs(labels[nonzero])))
            if nonzero.any()
            else float("nan")
        ),
        "mean_label": float(np.mean(labels)),
    }


_EVALUATORS: dict[str, Callable[[np.ndarray, np.ndarray], dict[str, float]]] = {
    BINARY: binary_metrics,
    REGRESSION: regression_metrics,
}
_LABEL_TYPES = {BINARY: int, REGRESSION: float}


def evaluate(task: str, labels, scores) -> dict[str, float]:
    """Every metric of `task` for `scores` against `labels`, and the number of rows; NaN
    metrics when there are no rows."""
    labels = np.asarray(labels, dtype=_LABEL_TYPES[task])
    scores = np.asarray(scores, dtype=float)
    if not len(labels):
        return dict.fromkeys(DEFAULTS[task], float("nan")) | {ROWS: 0}
    return _EVALUATORS[task](labels, scores) | {ROWS: int(len(labels))}
