"""The hyperparameter search: Optuna's seeded TPE sampler, the declared search space, pruning."""

import dataclasses
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from assets import CATALOG, modeling, tuning
from assets.search_space import Choice, Integer, Real

SPEC = CATALOG.model("flight_delay")
# A narrow space of short fits keeps each search to a few seconds.
SMALL = dataclasses.replace(
    SPEC,
    search_space={
        "learning_rate": Real(0.03, 0.3, log=True),
        "max_iter": Integer(100, 200),
        "max_leaf_nodes": Integer(4, 32),
    },
)
BASE = {**SPEC.params, "max_iter": 150}


def fit_rows(rows: int = 3_000, days: int = 21, seed: int = 3) -> pd.DataFrame:
    """Labelled flights over `days` days, the label following a few features and noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(size=rows) for c in SPEC.numeric_features})
    frame["carrier"] = rng.choice(["AA", "B6", "DL", "UA"], rows)
    frame["origin"] = rng.choice(["EWR", "JFK", "LGA"], rows)
    frame["dest"] = rng.choice(["ATL", "BOS", "ORD"], rows)
    frame["flight_date"] = [date(2013, 1, 1) + timedelta(days=i % days) for i in range(rows)]
    signal = frame["dep_hour"] * frame["temp"] + (frame["carrier"] == "B6") + frame["wind_speed"]
    frame["label"] = (signal + rng.normal(size=rows) > 0.5).astype(int)
    return frame


def without_times(study: dict) -> list[dict]:
    return [{k: v for k, v in t.items() if k != "seconds"} for t in study["trials"]]


@pytest.fixture(scope="module")
def searched():
    rows = fit_rows()
    first = tuning.search(SMALL, rows, BASE, trials=10, seconds=0)
    second = tuning.search(SMALL, rows, BASE, trials=10, seconds=0)
    return first, second


def test_the_same_data_and_budget_give_the_same_trials_and_parameters(searched):
    (first_best, first), (second_best, second) = searched
    assert len(first["trials"]) == 10
    assert without_times(first) == without_times(second)
    assert first_best == second_best
    assert first["best_trial"] == second["best_trial"]
    values = {t["params"]["learning_rate"] for t in first["trials"]}
    assert len(values) == 10, "every trial draws new parameters"


def test_the_models_own_parameters_are_the_first_trial_and_the_best_is_chosen(searched):
    best, study = searched[0]
    assert study["trials"][0]["params"] == BASE
    assert study["sampler"] == "tpe" and study["seed"] == BASE["random_state"]
    complete = [t for t in study["trials"] if t["state"] == "COMPLETE"]
    chosen = max(complete, key=lambda t: t["validation_auc"])
    assert best == chosen["params"] and study["best_trial"] == chosen["number"]
    for trial in study["trials"]:
        searched_values = {name: trial["params"][name] for name in SMALL.search_space}
        assert 0.03 <= searched_values["learning_rate"] <= 0.3
        assert 100 <= searched_values["max_iter"] <= 200
        assert trial["params"]["random_state"] == BASE["random_state"]


def test_hopeless_trials_are_pruned_before_their_last_iteration(searched):
    study = searched[0][1]
    pruned = [t for t in study["trials"] if t["state"] == "PRUNED"]
    assert pruned, "with 10 trials of unequal worth the median pruner stops some"
    for trial in pruned:
        assert trial["iterations"] < trial["params"]["max_iter"]
        assert trial["validation_auc"] is not None
    complete = [t for t in study["trials"] if t["state"] == "COMPLETE"]
    assert all(t["iterations"] == t["params"]["max_iter"] for t in complete)


def test_a_staged_fit_ends_as_the_plain_fit():
    """A trial's value must be that of the version its parameters make: the last stage of a
    warm-started fit scores exactly as one fit of all its iterations."""
    rows = fit_rows(rows=1_500)
    params = {**BASE, "max_iter": 120}
    *_, (iterations, staged) = modeling.fit_in_stages(SPEC, rows, params, step=50)
    plain = modeling.fit(SPEC, rows, params)
    assert iterations == 120
    np.testing.assert_array_equal(
        modeling.score(staged, SPEC, rows), modeling.score(plain, SPEC, rows)
    )


def test_the_random_sampler_searches_the_same_space_without_pruning():
    best, study = tuning.search(
        SMALL, fit_rows(rows=1_500), BASE, trials=4, seconds=0, sampler="random"
    )
    assert study["sampler"] == "random" and study["pruning"] is False
    assert {t["state"] for t in study["trials"]} == {"COMPLETE"}
    assert best in [t["params"] for t in study["trials"]]


def test_tpe_models_the_space_within_a_small_budget(searched):
    """Past its random start, TPE proposes trials of its own: at ten trials it is not the random
    search under another name (Optuna's default start of ten random trials would make it so)."""
    first, _ = searched
    _, random_study = tuning.search(SMALL, fit_rows(), BASE, trials=10, seconds=0, sampler="random")
    # The random start counts the model's own parameters (the first trial) among its trials.
    start = tuning.tpe_startup_trials(10)
    tpe_params = [t["params"] for t in first[1]["trials"]]
    random_params = [t["params"] for t in random_study["trials"]]
    assert tpe_params[:start] == random_params[:start]
    assert all(p not in random_params for p in tpe_params[start:])


def test_a_declared_estimator_is_searched_over_its_declared_space_only():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    numeric = dataclasses.replace(
        SPEC,
        categorical_features=(),
        carried=(),
        estimator=lambda p: make_pipeline(StandardScaler(), LogisticRegression(**p)),
        params={"C": 1.0, "max_iter": 200},
        search_space=None,
    )
    rows = fit_rows(rows=1_000)
    with pytest.raises(ValueError, match="declares its own estimator but no search_space"):
        tuning.search(numeric, rows, {"C": 1.0, "max_iter": 200}, trials=2, seconds=0)
    declared = dataclasses.replace(numeric, search_space={"C": Real(0.01, 10.0, log=True)})
    best, study = tuning.search(declared, rows, {"C": 1.0, "max_iter": 200}, trials=3, seconds=0)
    assert study["pruning"] is False and len(study["trials"]) == 3
    assert [t["params"]["C"] for t in study["trials"]][0] == 1.0
    unknown = dataclasses.replace(numeric, search_space={"alpha": Real(0.1, 1.0)})
    with pytest.raises(ValueError, match=r"search_space names \['alpha'\]"):
        tuning.search(unknown, rows, {"C": 1.0, "max_iter": 200}, trials=2, seconds=0)


def test_a_search_space_must_be_made_of_ranges():
    with pytest.raises(ValueError, match=r"search_space\['max_iter'\] is \(50, 400\)"):
        dataclasses.replace(SPEC, search_space={"max_iter": (50, 400)})
    with pytest.raises(ValueError, match="empty range"):
        Integer(10, 10)
    with pytest.raises(ValueError, match="at least two options"):
        Choice(("only",))
