"""Fit, score and evaluate a spec's classifier; scikit-learn is imported only when needed."""

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from assets.model_spec import ModelSpec
from resources.paths import REPO_ROOT

# Gradient boosting spreads fitting and scoring over every core through OpenMP, whose threads
# spin while they wait for each other: when other runs share the cores (`max_concurrent_runs` is
# 2 in platform/dagster.yaml), a fit takes several times longer than with one thread each. So each
# run gets its share of the cores; PLATFORM_MODEL_THREADS overrides it on a machine of its own.
CONCURRENT_RUNS = 2
MODEL_THREADS_ENV = "PLATFORM_MODEL_THREADS"


def model_threads(runs_sharing: int = CONCURRENT_RUNS) -> int:
    """OpenMP threads of one fit or scoring: the environment's choice, else the share of the
    cores of one of `runs_sharing` runs (by default as many as may run at once)."""
    chosen = os.environ.get(MODEL_THREADS_ENV, "").strip()
    if chosen:
        try:
            return max(1, int(chosen))
        except ValueError:
            raise ValueError(f"{MODEL_THREADS_ENV}={chosen!r} is not a number of threads") from None
    return max(1, (os.cpu_count() or 1) // max(1, runs_sharing))


def build_estimator(spec: ModelSpec, params: Mapping[str, float | int]) -> Any:
    """Gradient boosting with native categorical splits; unseen categories score as missing."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    categorical = list(spec.categorical_features)
    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                    encoded_missing_value=np.nan,
                ),
                categorical,
            )
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    boost = HistGradientBoostingClassifier(
        categorical_features=list(range(len(categorical))), early_stopping=False, **params
    )
    return Pipeline([("encode", encode), ("boost", boost)])


def design_matrix(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The spec's feature columns with plain numpy/object dtypes, as scikit-learn expects."""
    matrix = frame[spec.features].copy()
    for column in spec.numeric_features:
        matrix[column] = pd.to_numeric(matrix[column], errors="raise").astype("float64")
    for column in spec.categorical_features:
        matrix[column] = matrix[column].astype(object).where(matrix[column].notna(), None)
    return matrix


def fit(spec: ModelSpec, frame: pd.DataFrame, params: Mapping[str, float | int]) -> Any:
    from threadpoolctl import threadpool_limits

    estimator = build_estimator(spec, params)
    with threadpool_limits(model_threads(), user_api="openmp"):
        estimator.fit(design_matrix(spec, frame), frame["label"].to_numpy())
    return estimator


def score(
    estimator: Any, spec: ModelSpec, rows: pd.DataFrame | pa.Table, threads: int | None = None
) -> np.ndarray:
    """Probability of the positive class for each row: the pipeline's `predict_proba` of
    `design_matrix(rows)`, with its encoding done on Arrow columns (see `encoded_matrix`)."""
    from threadpoolctl import threadpool_limits

    if not len(rows):
        return np.empty(0)
    matrix = encoded_matrix(estimator, spec, rows)
    with threadpool_limits(threads or model_threads(), user_api="openmp"):
        return estimator.named_steps["boost"].predict_proba(matrix)[:, 1]


def encoded_matrix(estimator: Any, spec: ModelSpec, rows: pd.DataFrame | pa.Table) -> np.ndarray:
    """What the pipeline's encoding step makes of `rows`, built column by column from Arrow.

    The same numbers as `encode.transform(design_matrix(rows))`: each category as its index among
    the categories seen in fitting, NaN when unseen or missing; numbers as float64, NaN when
    missing; in the order of the step's output. scikit-learn's way goes through pandas object
    columns and stacks two blocks, which cost more than the trees themselves when scoring a day
    of a hundred times the bundled volume.
    """
    encode = estimator.named_steps["encode"]
    table = (
        rows
        if isinstance(rows, pa.Table)
        else pa.Table.from_pandas(rows[spec.features], preserve_index=False)
    )
    [(_, ordinal, encoded)] = [t for t in encode.transformers_ if t[0] != "remainder"]
    seen = dict(zip(encoded, ordinal.categories_, strict=True))
    names = encode.get_feature_names_out()
    matrix = np.empty((table.num_rows, len(names)), dtype=np.float64)
    for i, name in enumerate(names):
        column = table.column(name)
        if name in seen:
            # A missing value (design_matrix's None) is a category of its own when fitting saw it.
            known = pa.array(list(seen[name]), pa.string())
            column = pc.index_in(column.cast(pa.string()), value_set=known)
        matrix[:, i] = column.cast(pa.float64()).to_numpy()
    return matrix


def classification_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC, log loss, Brier score and positive rate; AUC is NaN when one class is absent.

    The formulas of scikit-learn's `roc_auc_score` (ties share their average rank), `log_loss`
    (probabilities clipped to machine epsilon) and `brier_score_loss`, on arrays: monitoring
    evaluates every day and model version, and scikit-learn's input validation alone costs
    milliseconds per call, forty times the arithmetic.
    """
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    if not len(labels):
        nan = float("nan")
        return {"auc": nan, "log_loss": nan, "brier": nan, "positive_rate": nan, "rows": 0}
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
        "rows": int(len(labels)),
    }


def fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of the rows read for training: the window's features and labels."""
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    ).hexdigest()


# What a version's estimator is fitted on (`assets.training.fit_candidate`). Part of the version
# id, so that a new rule never stores its artifacts under the ids of older ones, which served
# predictions name: until 2026-11-24 a version was fitted on its window minus the holdout days.
FITTED_ON = "the whole window"


def version_id(cutoff: date, data_fingerprint: str, spec: ModelSpec, params: Mapping) -> str:
    """`YYYY-MM-DD.<10 hex>`: same data, features, parameters and fitting rule give the same
    version."""
    recipe = json.dumps([data_fingerprint, spec.features, dict(params), FITTED_ON], sort_keys=True)
    return f"{cutoff.isoformat()}.{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


def code_version() -> str:
    """The git commit of the platform's code, or 'unknown' outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"
