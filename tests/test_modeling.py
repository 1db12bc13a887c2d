"""Estimators, scoring, threads and version ids of a model, without Dagster."""

import dataclasses
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from assets import CATALOG, modeling, tree_tables
from assets.model_spec import Task
from resources import settings

SPEC = CATALOG.model("flight_delay")
# The same features, regressing a number instead of classifying a condition.
REGRESSION = dataclasses.replace(
    SPEC, name="delay_minutes", task=Task.REGRESSION, metrics=(), gate_metric="", gate_limit=30.0
)


def flights(rows: int, seed: int) -> pd.DataFrame:
    """Feature rows of every kind scoring meets: missing numbers and missing categories."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(size=rows) for c in SPEC.numeric_features})
    frame.loc[rng.random(rows) < 0.1, "temp"] = np.nan
    frame["plane_age"] = pd.array(rng.integers(0, 30, rows), dtype="Int64")
    frame.loc[rng.random(rows) < 0.1, "plane_age"] = pd.NA
    frame["carrier"] = rng.choice(["AA", "B6", "DL", "UA"], rows)
    frame["origin"] = rng.choice(["EWR", "JFK", "LGA"], rows)
    frame["dest"] = pd.Series(rng.choice(["ATL", "BOS", "ORD", "SFO"], rows)).where(
        rng.random(rows) > 0.05, None
    )
    signal = frame["dep_hour"] + frame["temp"].fillna(0) + (frame["carrier"] == "B6")
    frame["label"] = (signal + frame["dest"].isna() + rng.normal(size=rows) > 0.5).astype(int)
    return frame


def split_thresholds(pipeline) -> dict[str, float]:
    """A numeric threshold some tree of the fitted pipeline splits on, by feature name."""
    boost = pipeline.named_steps["boost"]
    names = pipeline.named_steps["encode"].get_feature_names_out()
    nodes = np.concatenate([p.nodes for [p] in boost._predictors])
    numeric = nodes[(nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 0)]
    return {names[n["feature_idx"]]: float(n["num_threshold"]) for n in numeric}


@pytest.fixture(scope="module")
def fitted():
    params = {**SPEC.params, "max_iter": 20}
    return modeling.fit(SPEC, flights(2_000, seed=1), params)


def test_scores_are_the_fitted_pipelines_own(fitted):
    """Scoring encodes on Arrow columns instead of through the pipeline's pandas steps; the
    scores must be the pipeline's to the last bit, for categories never seen in fitting, missing
    ones (seen in fitting as a category of their own) and missing numbers alike."""
    rows = flights(1_000, seed=2).iloc[::-1]
    rows.loc[rows.index[:50], "carrier"] = "ZZ"
    rows.loc[rows.index[50:100], "dest"] = "HNL"
    rows.loc[rows.index[100:150], "origin"] = None  # never missing in fitting: unseen
    # The trees are walked on bins: a value equal to a split's threshold, or beyond every bin,
    # must go where the threshold sends it.
    for feature, threshold in split_thresholds(fitted).items():
        rows.loc[rows.index[150:200], feature] = threshold
    rows.loc[rows.index[200:210], "temp"] = np.inf
    rows.loc[rows.index[210:220], "temp"] = -np.inf
    expected = fitted.predict_proba(modeling.design_matrix(SPEC, rows))[:, 1]

    from_pandas = modeling.score(fitted, SPEC, rows)
    from_arrow = modeling.score(fitted, SPEC, pa.Table.from_pandas(rows, preserve_index=False))
    two_threads = modeling.score(fitted, SPEC, rows, threads=2)

    assert len(set(np.round(expected, 6))) > 10, "the model must tell rows apart"
    for scores in (from_pandas, from_arrow, two_threads):
        np.testing.assert_array_equal(scores, expected)


@pytest.mark.parametrize(
    ("leaves", "mask_type"),
    [(15, np.uint16), (31, np.uint32), (63, np.uint64), (100, None)],
)
def test_trees_of_any_size_score_as_the_pipeline_does(monkeypatch, leaves, mask_type):
    """The trees are evaluated as tables of masks as wide as their leaves need, a block of rows
    at a time and the blocks shared among threads; trees with more leaves than 64 are walked
    by scikit-learn. Every way gives the pipeline's scores to the last bit."""
    monkeypatch.setattr(tree_tables, "BLOCK_ROWS", 128)  # blocks cut the rows, unevenly
    params = {**SPEC.params, "max_iter": 15, "max_leaf_nodes": leaves, "min_samples_leaf": 5}
    fitted = modeling.fit(SPEC, flights(3_000, seed=7), params)
    boost = fitted.named_steps["boost"]
    assert max(int(p.nodes["is_leaf"].sum()) for [p] in boost._predictors) > leaves // 2
    forest = tree_tables.forest_tables(boost)
    assert (forest.mask_type if forest else None) is mask_type
    rows = flights(1_000, seed=8)
    expected = fitted.predict_proba(modeling.design_matrix(SPEC, rows))[:, 1]
    for threads in (1, 2):
        np.testing.assert_array_equal(modeling.score(fitted, SPEC, rows, threads), expected)


def test_a_model_fitted_again_scores_with_its_new_trees():
    """A search's warm start adds trees to the same model between the scores of its stages."""
    rows = flights(1_000, seed=10)
    for iterations, fitted in modeling.fit_in_stages(
        SPEC, rows, {**SPEC.params, "max_iter": 30}, 10
    ):
        expected = fitted.predict_proba(modeling.design_matrix(SPEC, rows))[:, 1]
        np.testing.assert_array_equal(modeling.score(fitted, SPEC, rows), expected, iterations)


def test_a_tree_of_one_leaf_adds_its_value():
    """A target without signal grows trees that are a single leaf."""
    rows = flights(500, seed=9)
    rows["label"] = 7.0
    fitted = modeling.fit(REGRESSION, rows, {**SPEC.params, "max_iter": 5})
    forest = tree_tables.forest_tables(fitted.named_steps["boost"])
    assert all(not tree.tables for [tree] in forest.trees)
    expected = fitted.predict(modeling.design_matrix(REGRESSION, rows))
    np.testing.assert_array_equal(modeling.score(fitted, REGRESSION, rows), expected)


def test_fits_side_by_side_are_the_fits_one_by_one(monkeypatch):
    """A version's gate fit and served fit run at once in threads of their own: each must be
    the fit `fit` makes alone, whether the cores hold both at once or one."""
    monkeypatch.delenv(settings.MODEL_THREADS_ENV, raising=False)
    params = {**SPEC.params, "max_iter": 20}
    frames = [flights(1_500, seed=3), flights(2_500, seed=4)]
    rows = flights(500, seed=5)
    alone = [modeling.score(modeling.fit(SPEC, f, params), SPEC, rows) for f in frames]
    for cores in (2, 1):
        monkeypatch.setattr(modeling.os, "cpu_count", lambda cores=cores: cores)
        together = modeling.fit_side_by_side(SPEC, frames, params)
        for estimator, expected in zip(together, alone, strict=True):
            np.testing.assert_array_equal(modeling.score(estimator, SPEC, rows), expected)


def test_no_rows_score_to_nothing(fitted):
    assert modeling.score(fitted, SPEC, flights(0, seed=3)).shape == (0,)


def test_a_regression_scores_the_fitted_pipelines_predictions():
    rows = flights(1_500, seed=4)
    rows["label"] = rows["dep_hour"] * 10 + rows["temp"].fillna(0) + (rows["carrier"] == "B6") * 5
    params = {**SPEC.params, "max_iter": 30, "min_samples_leaf": 20}
    fitted = modeling.fit(REGRESSION, rows, params)
    assert type(fitted.named_steps["boost"]).__name__ == "HistGradientBoostingRegressor"
    expected = fitted.predict(modeling.design_matrix(REGRESSION, rows))
    np.testing.assert_array_equal(modeling.score(fitted, REGRESSION, rows), expected)
    assert np.corrcoef(expected, rows["label"])[0, 1] > 0.9


def test_a_model_without_categorical_features_scores_like_its_pipeline():
    numeric_only = dataclasses.replace(SPEC, name="numbers", categorical_features=())
    rows = flights(800, seed=6)
    fitted = modeling.fit(numeric_only, rows, {**SPEC.params, "max_iter": 10})
    np.testing.assert_array_equal(
        modeling.score(fitted, numeric_only, rows),
        fitted.predict_proba(modeling.design_matrix(numeric_only, rows))[:, 1],
    )


def test_any_scikit_learn_pipeline_can_be_the_estimator():
    """A declared estimator gets the design matrix (numbers as floats, categories as objects)."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    def logistic(params):
        encode = make_column_transformer(
            (SimpleImputer(), list(SPEC.numeric_features)),
            (
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="none"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                list(SPEC.categorical_features),
            ),
        )
        return make_pipeline(encode, LogisticRegression(**params))

    custom = dataclasses.replace(SPEC, estimator=logistic, params={"C": 1.0, "max_iter": 500})
    rows = flights(1_000, seed=5)
    fitted = modeling.fit(custom, rows, custom.params)
    scores = modeling.score(fitted, custom, pa.Table.from_pandas(rows, preserve_index=False))
    np.testing.assert_array_equal(
        scores, fitted.predict_proba(modeling.design_matrix(custom, rows))[:, 1]
    )
    assert 0.0 < scores.min() < scores.max() < 1.0
    # Its description enters the version id: another estimator never takes a version's id.
    day, data = date(2013, 3, 1), "f" * 64
    assert modeling.version_id(day, data, custom, custom.params) != modeling.version_id(
        day, data, custom, {"C": 0.5, "max_iter": 500}
    )


@pytest.mark.parametrize(("rows", "leaf"), [(180, 5), (2_880, 11), (55_000, 100)])
def test_default_trees_follow_the_rows_of_a_window(rows, leaf):
    """Leaves of 100 rows suit 50,000 flights; at 3 rows a day they would leave one leaf."""
    assert modeling.default_params(rows)["min_samples_leaf"] == leaf


def test_a_run_takes_its_share_of_the_cores(monkeypatch):
    monkeypatch.delenv(settings.MODEL_THREADS_ENV, raising=False)
    monkeypatch.setattr(modeling.os, "cpu_count", lambda: 4)
    assert modeling.model_threads(1) == 4, "a run alone uses every core"
    assert modeling.model_threads(2) == 2
    assert modeling.model_threads(8) == 1
    assert modeling.model_threads() == 4 // modeling.CONCURRENT_RUNS

    monkeypatch.setenv(settings.MODEL_THREADS_ENV, "3")
    assert modeling.model_threads(1) == 3, "the environment's choice wins"
    monkeypatch.setenv(settings.MODEL_THREADS_ENV, "many")
    with pytest.raises(ValueError, match=settings.MODEL_THREADS_ENV):
        modeling.model_threads()


def test_a_version_id_names_its_data_parameters_and_fitting_rule(monkeypatch):
    """Served predictions name a version: a new fitting rule must not reuse the ids, and so the
    stored artifacts, of versions fitted by an older one."""
    cutoff, data = date(2013, 3, 1), "f" * 64
    version = modeling.version_id(cutoff, data, SPEC, SPEC.params)
    assert version == modeling.version_id(cutoff, data, SPEC, dict(SPEC.params))
    assert version.startswith("2013-03-01.")
    assert version != modeling.version_id(cutoff, "e" * 64, SPEC, SPEC.params)
    assert version != modeling.version_id(cutoff, data, SPEC, {**SPEC.params, "max_iter": 1})
    monkeypatch.setattr(modeling, "FITTED_ON", "the window minus its holdout days")
    assert version != modeling.version_id(cutoff, data, SPEC, SPEC.params)
