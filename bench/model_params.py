"""How a model's parameters fare over the bundled year: the evidence behind `DEFAULT_PARAMS`.

On a fresh temporary lake (the raw tables and features of 2013, in-process runs as in
`bench/replay_retraining.py`), for cutoffs on the 1st and 16th of every month from March to
December: each parameter set is fitted for the cutoff as the model asset fits it
(`assets.training.fit_candidate`), giving its holdout AUC (what the quality gate sees) and the
AUC of the version on the 30 days it would then serve. Prints the mean AUC of each set over the
cutoffs, how many holdouts fall below the gate's floor, and writes `.data/bench/model_params.json`.

    .venv/bin/python -m bench.model_params        # about five minutes
"""

import argparse
import statistics
import sys
import time
from datetime import date, timedelta

from assets.quality_gate import DEFAULT_AUC_FLOOR
from bench.harness import Figure, info, record, table, workspace
from bench.replay_retraining import YEAR, Platform, ingest_and_featurize

# The parameters `DEFAULT_PARAMS` replaced, and two neighbours of the chosen set.
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


def cutoffs() -> list[date]:
    return [date(2013, month, day) for month in range(3, 13) for day in (1, 16)]


def evaluate(platform: Platform, spec, params: dict, cutoff: date) -> tuple[float, float]:
    """Holdout AUC (the gate's evidence) and served AUC of `params` fitted for `cutoff`."""
    from assets import modeling
    from assets.model_pipeline import labelled_rows
    from assets.partitions import days_between, preceding_days
    from assets.training import fit_candidate

    window = preceding_days(cutoff, spec.window_days)
    candidate = fit_candidate(spec, labelled_rows(platform.lake, spec, window), window, params)
    last = min(cutoff + timedelta(days=SERVED_DAYS - 1), date.fromisoformat(YEAR[1]))
    served = labelled_rows(platform.lake, spec, days_between(cutoff, last))
    scores = modeling.score(candidate.estimator, spec, served)
    return candidate.metrics["auc"], modeling.classification_metrics(served["label"], scores)["auc"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    from assets import MODELS

    spec = MODELS[0]
    started = time.perf_counter()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in CANDIDATES}
    with workspace("model-params") as space:
        platform = Platform(space)
        ingest_and_featurize(platform, spec.name, YEAR[1])
        for cutoff in cutoffs():
            for name, change in CANDIDATES.items():
                results[name].append(evaluate(platform, spec, {**spec.params, **change}, cutoff))
            print(f"  {cutoff}: " + ", ".join(f"{r[-1][1]:.3f}" for r in results.values()))

    figures: list[Figure] = []
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
                f"{name}: holdouts below {DEFAULT_AUC_FLOOR}",
                sum(a < DEFAULT_AUC_FLOOR for a in holdout),
                note=f"of {len(holdout)} cutoffs",
            ),
        ]
    print()
    print(table(f"Model parameters over {len(cutoffs())} cutoffs of 2013", figures))
    details = {
        "default_params": dict(spec.params),
        "candidates": CANDIDATES,
        "cutoffs": [c.isoformat() for c in cutoffs()],
        "holdout_and_served_auc": results,
    }
    print(f"\nwritten to {record('model_params', figures, details, started)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
