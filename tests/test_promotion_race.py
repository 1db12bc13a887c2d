"""Promotions of one model are serialized by the registry itself: two trainings of different
cutoffs gated at the same instant, in two processes, leave a history of consecutive entries in
which each promotion was gated against the champion in force when it was appended.

Each process runs the quality gate as the model asset does (`assets.training.gate_and_store`) on
a candidate it fitted, against a shared local lake; a barrier releases both at once, twenty
times, each time on a model of its own whose history holds one champion. And a gate that loses
the race to a promotion of its own version (the same cutoff trained twice) does not promote it
again.
"""

import dataclasses
import multiprocessing
from datetime import date

import numpy as np
import pandas as pd
from conftest import make_lake

from assets import CATALOG
from resources import promotions
from resources.lake import Lake
from resources.registry import ModelRegistry

TRIES = 20
FIRST = date(2013, 3, 1)
CUTOFFS = (date(2013, 3, 8), date(2013, 3, 15))
BASE = CATALOG.model("flight_delay")
# A gate every candidate passes: what is tested is whom it is compared with, not the verdict.
LIMIT, TOLERANCE = 0.0, 1.0
SECONDS = 120


def model_of_try(attempt: int) -> dataclasses.replace:
    return dataclasses.replace(BASE, name=f"race_{attempt}")


def version_of(cutoff: date) -> str:
    return f"{cutoff.isoformat()}.{cutoff.strftime('%m%d') * 2}00"


def labelled(seed: int, rows: int = 400) -> pd.DataFrame:
    """Random features of the model with a label that depends on one of them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(size=rows) for c in BASE.numeric_features})
    for column in BASE.categorical_features:
        frame[column] = rng.choice(["A", "B"], rows)
    frame["label"] = (frame[BASE.numeric_features[0]] + rng.normal(size=rows) > 0).astype(int)
    return frame


def fitted(seed: int):
    from assets import modeling

    return modeling.fit(BASE, labelled(seed), {**BASE.params, "max_iter": 5})


def trainer(lake_uri: str, cutoff: date, start: multiprocessing.Barrier, done) -> None:
    """One training process: at each try, gate and store its candidate for `cutoff` as the
    model asset does, released at the same instant as the other process; reports how many times
    it read the history (more than once: it lost the race and gated again)."""
    from assets.training import Candidate, gate_and_store, holdout_metrics

    reads = []
    read = promotions.read

    def counted(*args):
        reads.append(1)
        return read(*args)

    promotions.read = counted
    registry = ModelRegistry(lake=Lake(uri=lake_uri, warehouse_path=f"{lake_uri}.duckdb"))
    holdout = labelled(seed=99)
    estimator = fitted(seed=cutoff.day)
    record = {"partition": cutoff.isoformat(), "created_at": cutoff.isoformat()}
    for attempt in range(TRIES):
        spec = model_of_try(attempt)
        metrics = holdout_metrics(spec, holdout, estimator)
        candidate = Candidate(estimator, metrics, holdout, len(holdout), fit_metrics={})
        reads.clear()
        start.wait(timeout=SECONDS)
        trained = gate_and_store(
            spec,
            registry,
            cutoff,
            version_of(cutoff),
            candidate,
            record,
            LIMIT,
            TOLERANCE,
            holdout[spec.features].head(10),
        )
        done.put((attempt, cutoff, trained.promoted, len(reads)))


def test_simultaneous_trainings_promote_against_the_champion_in_force(tmp_path):
    lake = make_lake(tmp_path)
    registry = ModelRegistry(lake=lake)
    champion = fitted(seed=1)
    for attempt in range(TRIES):
        name = model_of_try(attempt).name
        registry.save(name, version_of(FIRST), champion, {"partition": FIRST.isoformat()})
        registry.promote(name, version_of(FIRST), action="promote")

    spawn = multiprocessing.get_context("spawn")
    start, done = spawn.Barrier(len(CUTOFFS)), spawn.Queue()
    workers = [
        spawn.Process(target=trainer, args=(str(lake.root), cutoff, start, done))
        for cutoff in CUTOFFS
    ]
    for worker in workers:
        worker.start()
    reports = [done.get(timeout=SECONDS) for _ in range(TRIES * len(CUTOFFS))]
    for worker in workers:
        worker.join(timeout=SECONDS)
        assert worker.exitcode == 0

    assert all(promoted for _, _, promoted, _ in reports), reports
    for attempt in range(TRIES):
        name = model_of_try(attempt).name
        history = registry.history(name)
        assert [e["seq"] for e in history] == [1, 2, 3], history
        assert {e["version"] for e in history[1:]} == {version_of(c) for c in CUTOFFS}
        for entry in history[1:]:
            in_force = promotions.champion_at(
                history[: entry["seq"] - 1], date.fromisoformat(entry["effective_from"])
            )
            gate = registry.record(name, entry["version"])["gate"]
            assert gate["champion_version"] == in_force["version"], (attempt, history, gate)
    # The processes did race: in some tries one of them lost and gated again.
    regated = [attempt for attempt, _, _, reads in reports if reads > 1]
    assert regated, "no try had the two gates overlap"


class RacedRegistry(ModelRegistry):
    """A registry in which another training promotes `rival` (once) while the gate stores its
    candidate: after the gate read the history, before it appends."""

    rival: str

    def save(self, model, version, estimator, record, reference=None) -> dict:
        stored = super().save(model, version, estimator, record, reference)
        if len(self.history(model)) == 1:
            super().promote(model, self.rival, action="promote", reason="the other training")
        return stored


def test_a_gate_that_loses_the_race_to_its_own_version_does_not_promote_it_twice(tmp_path):
    from assets.training import Candidate, gate_and_store, holdout_metrics

    lake = make_lake(tmp_path)
    spec = model_of_try(0)
    cutoff = CUTOFFS[0]
    registry = RacedRegistry(lake=lake, rival=version_of(cutoff))
    ModelRegistry(lake=lake).save(
        spec.name, version_of(FIRST), fitted(seed=1), {"partition": FIRST.isoformat()}
    )
    ModelRegistry(lake=lake).promote(spec.name, version_of(FIRST), action="promote")
    holdout = labelled(seed=99)
    estimator = fitted(seed=2)
    candidate = Candidate(
        estimator, holdout_metrics(spec, holdout, estimator), holdout, 400, fit_metrics={}
    )

    trained = gate_and_store(
        spec, registry, cutoff, version_of(cutoff), candidate,
        {"partition": cutoff.isoformat()}, LIMIT, TOLERANCE, holdout[spec.features].head(10),
    )  # fmt: skip

    history = registry.history(spec.name)
    assert [(e["seq"], e["version"]) for e in history] == [
        (1, version_of(FIRST)),
        (2, version_of(cutoff)),
    ]
    assert not trained.promoted
    assert trained.record["gate"]["champion_version"] == version_of(cutoff)
