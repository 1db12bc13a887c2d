"""Optuna's TPE search against the plain random search at the same trial budget, on the bundled
year of each dataset.

On a fresh temporary lake (the raw tables and features of the year, in-process runs), for
cutoffs spread over the year: each sampler searches the model's space on the cutoff's fitting
days as the model asset does (`assets.tuning.search`, the last holdout-days of them validating),
then the chosen parameters are fitted for the cutoff as the asset fits them (`bench/fitting.py`).
Prints, per model and sampler, the mean served metric (the version's gate metric on the 30 days
it would serve), the mean holdout metric, the trials pruned and the search time; writes
`.data/bench/search_samplers.json`.

    .venv/bin/python -m bench.search_samplers                    # both datasets
    .venv/bin/python -m bench.search_samplers --models demand_forecast --trials 10 --cutoffs 3
"""

import argparse
import statistics
import sys
import time
from datetime import date, timedelta

from bench.fitting import Year
from bench.harness import DailyGraph, Figure, info, report, stop_cleanly_on_sigterm, workspace
from bench.inprocess import InProcess, ingest_and_featurize

MODELS = ("flight_delay", "demand_forecast")
SERVED_DAYS = 30


def cutoffs(year: int, count: int) -> list[date]:
    """`count` cutoffs on the 1st of months from March to December, evenly spread."""
    months = list(range(3, 13))
    step = max(1, len(months) // count)
    return [date(year, month, 1) for month in months[::step][:count]]


def search_cutoff(year: Year, cutoff: date, sampler: str, trials: int) -> dict:
    """The search of one sampler for `cutoff` and what its chosen parameters are worth."""
    from assets import tuning
    from assets.partitions import preceding_days
    from assets.training import TrainingConfig, holdout_split

    spec = year.spec
    window = preceding_days(cutoff, spec.window_days, year.first_day)
    rows = year.between(window[0], window[-1])
    base = TrainingConfig().base_params(spec, len(rows))
    fit_rows, _ = holdout_split(spec, rows, window)
    started = time.perf_counter()
    params, study = tuning.search(spec, fit_rows, base, trials, 0, sampler=sampler)
    seconds = time.perf_counter() - started
    estimator, holdout = year.fit(cutoff, change=params)
    served = year.metric(estimator, year.between(cutoff, cutoff + timedelta(SERVED_DAYS - 1)))
    return {
        "cutoff": cutoff.isoformat(),
        "search_seconds": round(seconds, 2),
        "holdout": holdout,
        "served": served,
        "pruned": sum(t["state"] == "PRUNED" for t in study["trials"]),
        "params": params,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--trials", type=int, default=20, help="trial budget of both samplers")
    parser.add_argument("--cutoffs", type=int, default=5, help="cutoffs per model")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    from assets import CATALOG

    started = time.perf_counter()
    figures: list[Figure] = []
    details: dict = {"trials": args.trials}
    for model in args.models:
        spec = CATALOG.model(model)
        graph = DailyGraph.from_definitions(CATALOG.dataset_of(spec).name, [model])
        plan = cutoffs(int(graph.first_day[:4]), args.cutoffs)
        results: dict[str, list[dict]] = {"tpe": [], "random": []}
        with workspace(f"search-{model}") as space:
            runner = InProcess(space)
            ingest_and_featurize(runner, graph, graph.last_day)
            year = Year(runner.lake, spec)
            for cutoff in plan:
                for sampler, done in results.items():
                    done.append(search_cutoff(year, cutoff, sampler, args.trials))
                print(
                    f"  {model} {cutoff}: "
                    + ", ".join(
                        f"{s} served {r[-1]['served']:.4f} in {r[-1]['search_seconds']:.0f} s"
                        for s, r in results.items()
                    ),
                    flush=True,
                )
        metric = spec.gate_metric
        for sampler, done in results.items():
            figures += [
                info(
                    f"{model} {sampler}: served {metric}, mean",
                    statistics.mean(r["served"] for r in done),
                    note=f"next {SERVED_DAYS} days, {len(done)} cutoffs",
                ),
                info(
                    f"{model} {sampler}: holdout {metric}, mean",
                    statistics.mean(r["holdout"] for r in done),
                ),
                info(
                    f"{model} {sampler}: search time, mean",
                    statistics.mean(r["search_seconds"] for r in done),
                    unit="s",
                    note=f"{args.trials} trials, {sum(r['pruned'] for r in done)} pruned in all",
                ),
            ]
        details[model] = results
    report(
        "search_samplers",
        f"TPE against random search, {args.trials} trials",
        figures,
        details,
        started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
