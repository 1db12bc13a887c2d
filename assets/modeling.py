"""Fit and score a model's estimator; scikit-learn is imported only when needed."""

import copy
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from assets.model_spec import ModelSpec, Task
from assets.search_space import Dimension, Integer, Real
from assets.tree_tables import add_leaf_values, forest_tables
from resources import settings

# Gradient boosting spreads fitting and scoring over every core through OpenMP, whose threads
# spin while they wait for each other: when other runs share the cores (`max_concurrent_runs` is
# 2 in platform/dagster.yaml), a fit takes several times longer than with one thread each. So each
# run gets its share of the cores; PLATFORM_MODEL_THREADS overrides it on a machine of its own.
CONCURRENT_RUNS = 2
# The default estimator's parameters when a model declares none. Leaves hold a share of the
# window's rows (at least 5, at most 100), so a model of a few rows a day still splits and a
# model of a thousand does not overfit.
BOOSTING_DEFAULTS: dict[str, float | int] = {
    "learning_rate": 0.05,
    "max_iter": 250,
    "max_leaf_nodes": 15,
    "l2_regularization": 1.0,
    "random_state": 2013,
}
ROWS_PER_LEAF_SHARE = 250
MIN_SAMPLES_LEAF = (5, 100)
# What a search explores of the default estimator when a model declares no space of its own:
# around the defaults, from few large steps to many small ones, shallow to bushy trees.
BOOSTING_SPACE: dict[str, Dimension] = {
    "learning_rate": Real(0.02, 0.3, log=True),
    "max_iter": Integer(50, 400),
    "max_leaf_nodes": Integer(8, 64),
    "min_samples_leaf": Integer(10, 200),
    "l2_regularization": Real(1e-3, 10.0, log=True),
}


def model_threads(runs_sharing: int = CONCURRENT_RUNS) -> int:
    """OpenMP threads of one fit or scoring: the environment's choice, else the share of the
    cores of one of `runs_sharing` runs (by default as many as may run at once)."""
    chosen = settings.model_threads()
    if chosen is not None:
        return chosen
    return max(1, (os.cpu_count() or 1) // max(1, runs_sharing))


def default_params(rows: int) -> dict[str, float | int]:
    """Parameters of the default estimator for a window of `rows` labelled rows."""
    low, high = MIN_SAMPLES_LEAF
    return BOOSTING_DEFAULTS | {
        "min_samples_leaf": max(low, min(high, rows // ROWS_PER_LEAF_SHARE))
    }


def build_estimator(spec: ModelSpec, params: Mapping[str, Any]) -> Any:
    """The model's own estimator when it declares one; else gradient boosting of its task's kind
    with native categorical splits, where unseen categories score as missing."""
    if spec.estimator is not None:
        return spec.estimator(params)
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
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
    boosting = (
        HistGradientBoostingClassifier
        if spec.task == Task.BINARY
        else HistGradientBoostingRegressor
    )
    boost = boosting(
        categorical_features=list(range(len(categorical))), early_stopping=False, **params
    )
    return Pipeline([("encode", encode), ("boost", boost)])


def search_space(spec: ModelSpec) -> dict[str, Dimension]:
    """The ranges a search explores for `spec`: its own, else those of the default estimator."""
    if spec.search_space is not None:
        return dict(spec.search_space)
    if spec.estimator is not None:
        raise ValueError(
            f"{spec.name} declares its own estimator but no search_space: declare the ranges "
            "to search (assets.search_space), or set params instead of searching"
        )
    return dict(BOOSTING_SPACE)


def stages_allowed(spec: ModelSpec) -> bool:
    """Whether `fit_in_stages` can fit `spec`: the default estimator grows its trees by stages."""
    return spec.estimator is None


def fit_in_stages(
    spec: ModelSpec, frame: pd.DataFrame, params: Mapping[str, Any], step: int
) -> Iterator[tuple[int, Any]]:
    """The default estimator fitted `step` boosting iterations at a time (warm start), up to the
    iterations of `params`: after each stage, the iterations so far and the estimator. A search
    scores each stage and stops a hopeless fit early; the last stage is the fit `fit` makes."""
    from threadpoolctl import threadpool_limits

    estimator = build_estimator(spec, params)
    matrix, labels = design_matrix(spec, frame), frame["label"].to_numpy()
    total = int(params["max_iter"])
    for done in range(step, total + step, step):
        iterations = min(done, total)
        estimator.set_params(boost__max_iter=iterations, boost__warm_start=True)
        with threadpool_limits(model_threads(), user_api="openmp"):
            estimator.fit(matrix, labels)
        yield iterations, estimator


def design_matrix(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The spec's feature columns with plain numpy/object dtypes, as scikit-learn expects."""
    matrix = frame[spec.features].copy()
    for column in spec.numeric_features:
        matrix[column] = pd.to_numeric(matrix[column], errors="raise").astype("float64")
    for column in spec.categorical_features:
        matrix[column] = matrix[column].astype(object).where(matrix[column].notna(), None)
    return matrix


def fit(spec: ModelSpec, frame: pd.DataFrame, params: Mapping[str, Any]) -> Any:
    from threadpoolctl import threadpool_limits

    estimator = build_estimator(spec, params)
    with threadpool_limits(model_threads(), user_api="openmp"):
        estimator.fit(design_matrix(spec, frame), frame["label"].to_numpy())
    return estimator


def fit_side_by_side(
    spec: ModelSpec, frames: Sequence[pd.DataFrame], params: Mapping[str, Any]
) -> list[Any]:
    """`fit` of each frame, as many at once as the cores hold fits of `model_threads` threads
    each: a version's gate fit and served fit are independent, and on a machine whose cores
    are shared between runs each fit has one thread, leaving the others idle."""
    from concurrent.futures import ThreadPoolExecutor

    at_once = max(1, min(len(frames), (os.cpu_count() or 1) // model_threads()))
    with ThreadPoolExecutor(at_once) as pool:  # each thread sets its own OpenMP threads in `fit`
        return list(pool.map(lambda frame: fit(spec, frame, params), frames))


def score(
    estimator: Any, spec: ModelSpec, rows: pd.DataFrame | pa.Table, threads: int | None = None
) -> np.ndarray:
    """Each row's score: the probability of the positive class for a classifier, the predicted
    value for a regression. The default pipeline's encoding is done on Arrow columns (see
    `encoded_matrix`) and its trees walked on bins (`boosted_scores`); any other estimator gets
    `design_matrix(rows)`."""
    from threadpoolctl import threadpool_limits

    if not len(rows):
        return np.empty(0)
    threads = threads or model_threads()
    if spec.estimator is None:
        matrix = encoded_matrix(estimator, spec, rows)
        return boosted_scores(estimator.named_steps["boost"], matrix, spec.task, threads)
    matrix = design_matrix(spec, rows.to_pandas() if isinstance(rows, pa.Table) else rows)
    with threadpool_limits(threads, user_api="openmp"):
        if spec.task == Task.BINARY:
            return estimator.predict_proba(matrix)[:, 1]
        return np.asarray(estimator.predict(matrix), dtype=float)


def boosted_scores(boost: Any, matrix: np.ndarray, task: Task, threads: int) -> np.ndarray:
    """`score` of gradient boosting on the encoded matrix, its trees evaluated on its bins.

    The trees split on bins (the fitted bin of each threshold), and a value's bin is at most a
    split's bin exactly when the value is at most its threshold; missing values and unseen
    categories (missing after the encoding) fall in the missing bin, which goes where the split
    sends missing values. So the scores are `predict_proba`'s to the last bit, but the trees read
    one byte a feature instead of a float with a NaN check. scikit-learn takes this path itself
    for its training scores; its public `predict` does not. The trees are evaluated as tables of
    their bins (`tree_tables`), or, with more leaves than those hold, walked by scikit-learn.
    """
    mapper = copy.copy(boost._bin_mapper)  # binned with this call's threads, not the fit's
    mapper.n_threads = threads
    binned = mapper.transform(matrix)
    raw = np.zeros(
        (len(binned), boost.n_trees_per_iteration_),
        dtype=boost._baseline_prediction.dtype,
        order="F",
    )
    raw += boost._baseline_prediction
    forest = forest_tables(boost)
    if forest is None:
        boost._predict_iterations(binned, boost._predictors, raw, is_binned=True, n_threads=threads)
    else:
        add_leaf_values(forest, binned, raw, threads)
    if task == Task.BINARY:
        return boost._loss.predict_proba(raw)[:, 1]
    return np.asarray(boost._loss.link.inverse(raw.ravel()), dtype=float)


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
    # Without categorical features scikit-learn leaves the encoder unfitted: nothing to look up.
    seen = dict(zip(encoded, ordinal.categories_, strict=True)) if encoded else {}
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


def fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of the rows read for training: the window's features and labels."""
    return hashlib.sha256(
        pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    ).hexdigest()


# What a version's estimator is fitted on (`assets.training.fit_candidate`). Part of the version
# id, so that a new rule never stores its artifacts under the ids of older ones, which served
# predictions name.
FITTED_ON = "the whole window"


def version_id(cutoff: date, data_fingerprint: str, spec: ModelSpec, params: Mapping) -> str:
    """`YYYY-MM-DD.<10 hex>`: same data, features, parameters, estimator and fitting rule give
    the same version. A declared estimator enters the recipe by its description (its class and
    the parameters it was built with); the default one by its task, through the labels in the
    data fingerprint."""
    recipe = [data_fingerprint, spec.features, dict(params), FITTED_ON]
    if spec.estimator is not None:
        recipe.append(repr(build_estimator(spec, params)))
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"{cutoff.isoformat()}.{digest[:10]}"


def code_version() -> str:
    """The git commit of the platform's code, or 'unknown' outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=settings.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"
