"""Replay of one dataset's bundled year from its models' first cutoff, with only the drift and
quality sensors deciding retrains, against the never-retrained models and naive forecasts.

How (in-process, on a fresh temporary lake and Dagster instance):

1. The registers, raw tables and features of the whole year, one run each (features never
   depend on a model, so they are what the daily cycle would compute day by day); then every
   model's first version at its first cutoff (2013-03-01 for the flights, 2014-03-01 for
   electricity), the ones `make run` trains.
2. The replay: for each day D from the first cutoff to the end of the year, one run of what the
   daily cycle runs when D lands (each model's predictions, feature drift and prediction quality
   of D), then one tick of each model's retrain sensors (`sensors.retrain.drift_tick` and
   `quality_tick`, with the model's monitoring settings as the environment leaves them) against
   the instance. Each run request is executed at once, as the daemon would, before D+1 arrives
   (the live replay waits for running runs the same way); a run key is launched once.
3. The baseline: a copy of the lake of step 1 in which each first version serves every day
   (predictions and quality of the year in one run).

The tick functions are the sensors' own code, evaluated against the same instance state the
daemon's sensors would see after each day, so the decisions are those of a daemon whose sensors
tick once per replayed day. Running the daemon itself would cost two process launches per day
(hours for the year) without changing a decision.

Figures, per model: retrains (count, cutoffs, trigger, gate); the mean daily gate metric of the
replay and of the baseline from June to December (the mean of each day's value in
`<model>/prediction_quality`), and their difference. Models with a naive forecast
(`bench/naive_forecasts.py`: `arrival_delay`, `demand_forecast`) are also scored day by day from
the first cutoff to December against it, on the same rows: the record holds every day, the
output a table by month. Targets: more than one retrain and at most one day in ten (issue 4);
for `flight_delay` a gain in daily AUC of at least 0.03 (issue 4); a model with a naive forecast
must beat it on the mean of the days (issue 14 asks for the comparison; a model that loses to
the forecast it replaces is not worth serving).

    .venv/bin/python -m bench.replay_retraining                        # the flights (~40 min)
    .venv/bin/python -m bench.replay_retraining --dataset electricity  # 2014 (~15 min)
    .venv/bin/python -m bench.replay_retraining --through 2013-03-20   # a smoke run
"""

import argparse
import math
import shutil
import sys
import time
import warnings
from dataclasses import asdict
from datetime import date

import dagster as dg
import pandas as pd

warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets.model_spec import ModelSpec  # noqa: E402
from bench import naive_forecasts  # noqa: E402
from bench.harness import (  # noqa: E402
    DailyGraph,
    Figure,
    Workspace,
    at_least,
    days,
    info,
    report,
    stop_cleanly_on_sigterm,
    workspace,
)
from bench.inprocess import InProcess, ingest_and_featurize  # noqa: E402

# The gain over the never-retrained model is measured from June: until then the first version
# is still close to its training window.
MEASURED_FROM_MONTH_DAY = "-06-01"
# Issue 4's target, set for flight_delay: at least this much daily AUC above never retrained.
TARGET_GAIN = {"flight_delay": 0.03}
MAX_RETRAIN_SHARE = 0.1  # "far less than daily": at most one replayed day in ten
SERVED, NEVER = "served", "never_retrained"


def bootstrap(runner: InProcess, graph: DailyGraph, last: str) -> None:
    """Step 1: what every day needs before any model, and every model's first version."""
    ingest_and_featurize(runner, graph, last)
    for cutoff, models in graph.first_cutoffs.items():
        runner.must(f"first versions {cutoff}", models, cutoff)


def replay(
    runner: InProcess, graph: DailyGraph, specs: list[ModelSpec], last: str
) -> tuple[list[dict], float]:
    """Step 2: day by day, the daily cycle then every model's sensors; returns the retrains and
    the seconds the replay took."""
    from assets import CATALOG
    from sensors.retrain import drift_tick, quality_tick
    from sensors.run_tags import RUN_KEY_TAG

    instance, launched, retrains = runner.space.instance, set(), []
    settings = {spec.name: spec.monitoring.with_environment(spec.name) for spec in specs}
    dataset = {spec.name: CATALOG.dataset_of(spec) for spec in specs}
    started = time.perf_counter()
    for number, day in enumerate(days(graph.first_cutoff, last), start=1):
        runner.must(f"daily cycle {day}", graph.after_models, day)
        for spec in specs:
            for tick in (drift_tick, quality_tick):
                result = tick(instance, spec, settings[spec.name], dataset[spec.name])
                for request in getattr(result, "run_requests", None) or []:
                    if request.run_key in launched:
                        continue
                    launched.add(request.run_key)
                    outcome = runner.materialize(
                        request.asset_selection,
                        request.partition_key,
                        tags=dict(request.tags) | {RUN_KEY_TAG: request.run_key},
                    )
                    retrains.append(describe_retrain(runner, spec, day, request, outcome))
                    print(
                        f"  {day}: {spec.name} {retrains[-1]['trigger']} retrain, cutoff "
                        f"{request.partition_key}: "
                        f"{'promoted' if retrains[-1]['promoted'] else 'not promoted'}",
                        flush=True,
                    )
        if number % 30 == 0:
            print(f"  replayed {number} days ({time.perf_counter() - started:.0f}s)", flush=True)
    return retrains, time.perf_counter() - started


def describe_retrain(
    runner: InProcess,
    spec: ModelSpec,
    judged: str,
    request: dg.RunRequest,
    outcome: dg.ExecuteInProcessResult,
) -> dict:
    """What a retrain was asked for and what became of it, from the registry."""
    from sensors.run_tags import REASON_TAG, TRIGGER_TAG

    registry = runner.resources["registry"]
    cutoff = request.partition_key
    versions = [r for r in registry.versions(spec.name) if r["partition"] == cutoff]
    version = versions[-1] if versions else {}
    promoted = any(
        e["action"] == "promote" and e["version"] == version.get("version")
        for e in registry.history(spec.name)
    )
    return {
        "model": spec.name,
        "judged_day": judged,
        "cutoff": cutoff,
        "trigger": request.tags.get(TRIGGER_TAG, ""),
        "reason": request.tags.get(REASON_TAG, ""),
        "run_succeeded": outcome.success,
        "version": version.get("version"),
        f"holdout_{spec.gate_metric}": version.get("metrics", {}).get(spec.gate_metric),
        "gate": version.get("gate", {}).get("reason"),
        "promoted": promoted,
    }


def baseline(
    fixed: Workspace, bootstrapped: Workspace, graph: DailyGraph, specs: list[ModelSpec], last: str
) -> float:
    """Step 3: the first versions serving every day, on a copy of the bootstrapped lake."""
    from assets.keys import predictions_key, quality_key

    shutil.copytree(bootstrapped.lake_root, fixed.lake_root)
    runner = InProcess(fixed)
    served = [key(spec) for spec in specs for key in (predictions_key, quality_key)]
    started = time.perf_counter()
    runner.must("baseline", served, graph.first_cutoff, last)
    return time.perf_counter() - started


def mean_daily_metric(
    space: Workspace, spec: ModelSpec, first: str, last: str
) -> tuple[float, int]:
    """The mean over days of each day's gate metric in `<model>/prediction_quality` (one version
    serves each day here)."""
    from assets.keys import quality_key

    quality = space.lake().read(
        quality_key(spec).to_user_string(), [date.fromisoformat(d) for d in days(first, last)]
    )
    by_day = quality.groupby(spec.day_column)[spec.gate_metric].mean().dropna()
    return float(by_day.mean()) if len(by_day) else math.nan, len(by_day)


def model_figures(
    spec: ModelSpec,
    retrains: list[dict],
    live: Workspace,
    fixed: Workspace,
    first: str,
    last: str,
    whole_year: bool,
) -> list[Figure]:
    """Retrains and the gain over never retrained of one model. The targets are a year's: a
    shorter (smoke) replay prints its figures without them."""
    replayed = len(days(first, last))
    mine = [r for r in retrains if r["model"] == spec.name]
    promoted = [r for r in mine if r["promoted"]]
    measured = (first[:4] + MEASURED_FROM_MONTH_DAY, last)
    if last < measured[0]:  # a smoke run ending before June measures what it replayed
        measured = (first, last)
    metric = spec.gate_metric
    retrained, measured_days = mean_daily_metric(live, spec, *measured)
    never, _ = mean_daily_metric(fixed, spec, *measured)
    gain = (retrained - never) * (1 if spec.higher_is_better else -1)
    gain_name = f"{spec.name}: {metric} gain over never retrained"
    smoke = "a replay shorter than the year: no target"
    if spec.name in TARGET_GAIN and whole_year:
        gain_figure = at_least(gain_name, gain, TARGET_GAIN[spec.name], "")
    else:
        gain_figure = info(gain_name, gain, note="positive: retraining helped")
    listed = ", ".join(f"{r['cutoff']} ({r['trigger']})" for r in mine)
    requested = (
        Figure(
            f"{spec.name}: retrains requested",
            len(mine),
            target=f"> 1 and <= {MAX_RETRAIN_SHARE:.0%} of days",
            within=1 < len(mine) <= MAX_RETRAIN_SHARE * replayed,
            note=listed,
        )
        if whole_year
        else info(f"{spec.name}: retrains requested", len(mine), note=listed or smoke)
    )
    return [
        requested,
        info(
            f"{spec.name}: retrains promoted",
            len(promoted),
            note=", ".join(r["cutoff"] for r in promoted),
        ),
        info(
            f"{spec.name}: mean daily {metric}, retrained by sensors",
            retrained,
            note=f"{measured[0]}..{measured[1]}, {measured_days} days",
        ),
        info(f"{spec.name}: mean daily {metric}, never retrained after {first}", never),
        gain_figure,
    ]


def naive_figures(
    spec: ModelSpec, live: Workspace, fixed: Workspace, first: str, last: str, whole_year: bool
) -> tuple[list[Figure], pd.DataFrame]:
    """The model as served, never retrained, and its naive forecast, day by day on the same
    rows; the figures compare their means. The target is the year's: a shorter (smoke) replay
    prints the comparison without it."""
    forecast = naive_forecasts.FORECASTS[spec.name]
    daily = naive_forecasts.daily_errors(
        live.lake(), {SERVED: live.lake(), NEVER: fixed.lake()}, spec, first, last
    )
    metric = spec.gate_metric
    means = {c: float(daily[c].mean()) for c in (SERVED, NEVER, naive_forecasts.NAIVE)}
    better = (
        daily[SERVED] > daily[naive_forecasts.NAIVE]
        if spec.higher_is_better
        else daily[SERVED] < daily[naive_forecasts.NAIVE]
    )
    beats = (
        means[SERVED] > means[naive_forecasts.NAIVE]
        if spec.higher_is_better
        else means[SERVED] < means[naive_forecasts.NAIVE]
    )
    span = f"{first}..{last}, {len(daily)} days"
    return [
        info(
            f"{spec.name}: mean daily {metric}, served (sensor retrains)", means[SERVED], note=span
        ),
        info(f"{spec.name}: mean daily {metric}, never retrained", means[NEVER], note=span),
        info(
            f"{spec.name}: mean daily {metric}, naive forecast",
            means[naive_forecasts.NAIVE],
            note=forecast.description,
        ),
        Figure(
            f"{spec.name}: served beats the naive forecast (mean of days)",
            beats,
            target="yes" if whole_year else "",
            within=beats if whole_year else None,
            note=f"served better on {int(better.sum())} of {len(daily)} days; "
            f"rows without a naive forecast: {int(daily['rows_without_naive'].sum())}",
        ),
    ], daily


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="flights", help="the dataset replayed (flights)")
    parser.add_argument("--through", help="last replayed day (default: the dataset's last day)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspaces")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    from assets import CATALOG

    graph = DailyGraph.from_definitions(args.dataset)
    specs = [CATALOG.model(m.split("/")[0]) for m in graph.models]
    first, last = graph.first_cutoff, args.through or graph.last_day
    started = time.perf_counter()
    print(f"Replay {first}..{last} of {graph.dataset} with {', '.join(s.name for s in specs)}")
    for spec in specs:
        print(f"  {spec.name}: {spec.monitoring.with_environment(spec.name)}")
    with workspace("replay", keep=args.keep) as live, workspace("fixed", keep=args.keep) as fixed:
        runner = InProcess(live)
        bootstrap(runner, graph, last)
        print(f"bootstrapped in {time.perf_counter() - started:.0f}s; replaying ...", flush=True)
        baseline_seconds = baseline(fixed, live, graph, specs, last)
        retrains, replay_seconds = replay(runner, graph, specs, last)
        figures: list[Figure] = [
            info("days replayed", len(days(first, last)), note=f"{first}..{last}")
        ]
        daily: dict[str, list[dict]] = {}
        months: dict[str, str] = {}
        for spec in specs:
            figures += model_figures(
                spec, retrains, live, fixed, first, last, last == graph.last_day
            )
            if spec.name in naive_forecasts.FORECASTS:
                found, frame = naive_figures(spec, live, fixed, first, last, last == graph.last_day)
                figures += found
                daily[spec.name] = frame.to_dict("records")
                columns = [SERVED, NEVER, naive_forecasts.NAIVE]
                months[spec.name] = (
                    naive_forecasts.by_month(frame, columns).round(4).to_markdown(index=False)
                )
    figures.append(
        info(
            "replay seconds per day",
            replay_seconds / len(days(first, last)),
            "s",
            note="cycle run + ticks + retrains",
        )
    )
    title = (
        f"Retraining replay of {graph.dataset}: drift and quality sensors vs. never retrained "
        "and naive forecasts"
    )
    report(
        f"replay_retraining-{graph.dataset}",
        title,
        figures,
        {
            "settings": {s.name: asdict(s.monitoring.with_environment(s.name)) for s in specs},
            "retrains": retrains,
            "replay_seconds": round(replay_seconds, 1),
            "baseline_seconds": round(baseline_seconds, 1),
            "daily_against_naive": daily,
            "monthly_against_naive": months,
        },
        started,
    )
    for name, text in months.items():
        print(f"\n{name}: mean daily {CATALOG.model(name).gate_metric} by month\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
