"""How flight_delay's parameters fare over the bundled year: the evidence behind its `PARAMS`.

On a fresh temporary lake (the raw tables and features of 2013, in-process runs as in
`bench/replay_retraining.py`), for cutoffs on the 1st and 16th of every month from March to
December: each parameter set is fitted for the cutoff as the model asset fits it
(`bench/fitting.py`), giving its holdout AUC (what the quality gate sees) and the AUC of the
version on the 30 days it would then serve. Prints the mean AUC of each set over the cutoffs, how
many holdouts fall below the gate's floor, and writes `.data/bench/model_params.json`.

    .venv/bin/python -m bench.model_params        # about five minutes
"""

import argparse
import statistics
import sys
import time
from datetime import date, timedelta

from bench.fitting import Year
from bench.harness import DailyGraph, Figure, info, report, stop_cleanly_on_sigterm, workspace
from bench.inprocess import InProcess, ingest_and_featurize

MODEL = "flight_delay"
# The parameters `models/flight_delay.PARAMS` replaced, and two neighbours of the chosen set.
CANDIDATES: dict[str, dict[str, float | int]] = {
    "default": {},
    "previous (lr 0.08, 31 leaves >= 40 rows, l2 1)": {
        "learning_rate": 0.08,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 40,
        "l2_regularization": 1.0,
    },
    "lr 0.03, leaves >= 200 rows": {"learning_rate": 0.03, "min_samples_leaf": 200},
    "lr 0.05, 7 leaves, 300 iterations": {
        "learning_rate": 0.05,
        "max_leaf_nodes": 7,
        "max_iter": 300,
    },
}
SERVED_DAYS = 30


def cutoffs(year: int) -> list[date]:
    return [date(year, month, day) for month in range(3, 13) for day in (1, 16)]


def evaluate(year: Year, change: dict, cutoff: date) -> tuple[float, float]:
    """Holdout AUC (the gate's evidence) and served AUC of the parameters fitted for `cutoff`."""
    estimator, holdout = year.fit(cutoff, change=change)
    last = cutoff + timedelta(days=SERVED_DAYS - 1)
    return holdout, year.metric(estimator, year.between(cutoff, last))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    from assets import CATALOG

    spec = CATALOG.model(MODEL)
    graph = DailyGraph.from_definitions(CATALOG.dataset_of(spec).name, [MODEL])
    plan = cutoffs(int(graph.first_day[:4]))
    started = time.perf_counter()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in CANDIDATES}
    with workspace("model-params") as space:
        runner = InProcess(space)
        ingest_and_featurize(runner, graph, graph.last_day)
        year = Year(runner.lake, spec)
        for cutoff in plan:
            for name, change in CANDIDATES.items():
                results[name].append(evaluate(year, change, cutoff))
            print(f"  {cutoff}: " + ", ".join(f"{r[-1][1]:.3f}" for r in results.values()))

    figures: list[Figure] = []
    floor = spec.gate_limit
    for name, aucs in results.items():
        holdout, served = zip(*aucs, strict=True)
        figures += [
            info(
                f"{name}: served AUC, mean",
                statistics.mean(served),
                note=f"next {SERVED_DAYS} days",
            ),
            info(f"{name}: holdout AUC, mean", statistics.mean(holdout)),
            info(
                f"{name}: holdouts below {floor}",
                sum(a < floor for a in holdout),
                note=f"of {len(holdout)} cutoffs",
            ),
        ]
    details = {
        "default_params": dict(spec.params or {}),
        "candidates": CANDIDATES,
        "cutoffs": [c.isoformat() for c in plan],
        "holdout_and_served_auc": results,
    }
    report(
        "model_params",
        f"{MODEL} parameters over {len(plan)} cutoffs of {graph.first_day[:4]}",
        figures,
        details,
        started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
