"""Scoring, threads and version ids of a spec's classifier, without Dagster."""

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from assets.flight_delay import FLIGHT_DELAY as SPEC

from assets import modeling


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
    expected = fitted.predict_proba(modeling.design_matrix(SPEC, rows))[:, 1]

    from_pandas = modeling.score(fitted, SPEC, rows)
    from_arrow = modeling.score(fitted, SPEC, pa.Table.from_pandas(rows, preserve_index=False))
    two_threads = modeling.score(fitted, SPEC, rows, threads=2)

    assert len(set(np.round(expected, 6))) > 10, "the model must tell rows apart"
    for scores in (from_pandas, from_arrow, two_threads):
        np.testing.assert_array_equal(scores, expected)


def test_no_rows_score_to_nothing(fitted):
    assert modeling.score(fitted, SPEC, flights(0, seed=3)).shape == (0,)


def test_a_run_takes_its_share_of_the_cores(monkeypatch):
    monkeypatch.delenv(modeling.MODEL_THREADS_ENV, raising=False)
    monkeypatch.setattr(modeling.os, "cpu_count", lambda: 4)
    assert modeling.model_threads(1) == 4, "a run alone uses every core"
    assert modeling.model_threads(2) == 2
    assert modeling.model_threads(8) == 1
    assert modeling.model_threads() == 4 // modeling.CONCURRENT_RUNS

    monkeypatch.setenv(modeling.MODEL_THREADS_ENV, "3")
    assert modeling.model_threads(1) == 3, "the environment's choice wins"
    monkeypatch.setenv(modeling.MODEL_THREADS_ENV, "many")
    with pytest.raises(ValueError, match=modeling.MODEL_THREADS_ENV):
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
