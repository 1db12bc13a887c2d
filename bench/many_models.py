"""Fifty more models at once: the code location's load time, every sensor's tick, and one day's
cycle of every model.

The fifty models of `bench/fifty_models.py` are registered the way a team registers its own
(`PLATFORM_DECLARATIONS=bench.fifty_models`), beside the three of `models/`: 53 models, 29 on
the flights and 24 on electricity. On a fresh temporary lake and Dagster instance:

1. **Load**: a cold `python -c` that loads `platform/definitions.py` and builds the repository
   a code server serves from it (asset graph, sensors, jobs), three times; the best counts, with
   its split (libraries, the platform's definitions, the repository). The same with the three
   models of `models/` only, for comparison, and the catalog's checks alone, timed in this
   process once the modules are imported.
2. **State**: per dataset, CLI runs as a user backfills (bench/backfill.py's steps): raw tables
   and features from the first day, every model's first version at its first cutoff, and a
   week of predictions, drift and quality from that cutoff; the next day's raw tables land.
3. **The daily cycle of that day for every model**: per dataset one cold `dagster asset
   materialize` of every features, predictions, drift and quality asset for the day (a run
   spans one calendar, so two runs), split into CLI start-up, Dagster's run and each stage's
   steps.
4. **Every sensor's tick** against that instance (8 days of every model's monitoring), as
   `bench/monitoring_ticks.py` evaluates them: the slowest and the 95th percentile.

Targets (issue 14): load within 10 s, each tick within 0.5 s.

    .venv/bin/python -m bench.many_models           # 12 to 15 minutes on 2 cores
    .venv/bin/python -m bench.many_models --quick   # the load times only (about a minute)
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import date, timedelta

from bench import monitoring_ticks
from bench.harness import (
    CliRun,
    DailyGraph,
    Figure,
    Workspace,
    at_most,
    info,
    report,
    stop_cleanly_on_sigterm,
    workspace,
)
from resources.settings import DECLARATIONS_ENV, REPO_ROOT

DECLARATIONS = "bench.fifty_models"
TARGET_LOAD_SECONDS = 10.0
LOADS = 3
MONITORED_DAYS = 7  # days of monitoring before the cycle's day: the quality sensor judges 7
# A cold load as a code server does it, timing its parts; prints them as JSON.
LOAD = """
import json, time, warnings
warnings.filterwarnings("ignore")
started = time.perf_counter()
import dagster, duckdb, pandas, pyarrow
libraries = time.perf_counter()
import resources
resources_loaded = time.perf_counter()
import assets
assets_loaded = time.perf_counter()
import sensors
sensors_loaded = time.perf_counter()
import runpy
defs = runpy.run_path("platform/definitions.py")["defs"]
definitions = time.perf_counter()
repository = defs.get_repository_def()
built = time.perf_counter()
print(json.dumps({
    "libraries": libraries - started,
    "resources": resources_loaded - libraries,
    "assets": assets_loaded - resources_loaded,
    "sensors": sensors_loaded - assets_loaded,
    "definitions": definitions - sensors_loaded,
    "repository": built - definitions,
    "asset_count": len(repository.asset_graph.get_all_asset_keys()),
    "sensor_count": len(repository.sensor_defs),
}))
"""
CHECKS = """
import time, warnings
warnings.filterwarnings("ignore")
import assets
from assets.catalog import load_catalog
best = float("inf")
for _ in range({loads}):
    started = time.perf_counter()
    load_catalog()
    best = min(best, time.perf_counter() - started)
print(best)
"""
# The parts of a load, in the order the child times them.
LOAD_PARTS = {
    "libraries": "libraries (dagster, duckdb, pandas, pyarrow)",
    "resources": "the platform's resources",
    "assets": "the catalog and the assets (`import assets`)",
    "sensors": "the sensors and schedules",
    "definitions": "platform/definitions.py, merging them",
    "repository": "the repository a code server builds",
}
STAGES = ("features", "predictions", "feature_drift", "prediction_quality")
# Sensors built per model or per dataset, by the end of their names.
SENSOR_KINDS = ("_drift_retrain", "_quality_retrain", "_replay", "_landing")


def cold_loads(space: Workspace, declarations: str) -> list[dict]:
    """`LOADS` cold loads of the code location with `declarations` (empty: models/ only)."""
    env = space.env() | {DECLARATIONS_ENV: declarations}
    loads = []
    for _ in range(LOADS):
        started, before = time.perf_counter(), children_cpu_seconds()
        done = subprocess.run(
            [sys.executable, "-c", LOAD], cwd=REPO_ROOT, env=env, capture_output=True, text=True
        )
        wall, cpu = time.perf_counter() - started, children_cpu_seconds() - before
        if done.returncode != 0:
            raise RuntimeError(f"loading the code location failed:\n{done.stderr[-3000:]}")
        loads.append({"wall": wall, "cpu": cpu} | json.loads(done.stdout.strip().splitlines()[-1]))
    return loads


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children: on a busy machine a load's CPU time says
    what it costs when the wall time says how long others made it wait."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def catalog_check_seconds(space: Workspace) -> float:
    """The catalog's load and checks alone, in a child that has loaded the code location once
    (its modules imported), best of `LOADS`: the checks' own cost."""
    done = subprocess.run(
        [sys.executable, "-c", CHECKS.format(loads=LOADS)],
        cwd=REPO_ROOT,
        env=space.env(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"loading the catalog failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def load_figures(ours: list[dict], three: list[dict], checks: float) -> list[Figure]:
    best = min(ours, key=lambda load: load["wall"])
    baseline = min(three, key=lambda load: load["wall"])
    inside = sum(best[part] for part in LOAD_PARTS)
    return [
        at_most(
            f"code location load, {best['asset_count']} assets, {best['sensor_count']} sensors "
            f"(best of {LOADS})",
            best["wall"],
            TARGET_LOAD_SECONDS,
            "s",
            "cold python -c: definitions and repository; all: "
            + ", ".join(f"{load['wall']:.1f}" for load in ours)
            + " s",
        ),
        info("  its CPU time", best["cpu"], "s", "user and system, the child's"),
        *[info(f"  {label}", best[part], "s") for part, label in LOAD_PARTS.items()],
        info("  interpreter start-up and exit", best["wall"] - inside, "s"),
        info(
            "  the catalog's checks of its models, in the assets' share",
            checks,
            "s",
            f"timed again in a process that loaded them, best of {LOADS}",
        ),
        info(
            f"code location load, the 3 models of models/ (best of {LOADS})",
            baseline["wall"],
            "s",
            f"{baseline['asset_count']} assets, {baseline['sensor_count']} sensors; "
            f"CPU {baseline['cpu']:.1f} s",
        ),
    ]


def build_state(space: Workspace, graph: DailyGraph, day: str) -> list[CliRun]:
    """Raw tables up to `day`, features up to the day before, every first version, and the
    monitoring of the days from the first cutoff to the day before."""
    before = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    runs = [
        space.materialize(
            f"{graph.dataset} raw tables",
            graph.unpartitioned + graph.raw_tables,
            partition_range=(graph.first_day, day),
        ),
        space.materialize(
            f"{graph.dataset} features", graph.features, partition_range=(graph.first_day, before)
        ),
    ]
    for cutoff, models in graph.first_cutoffs.items():
        runs.append(space.materialize(f"{graph.dataset} models {cutoff}", models, partition=cutoff))
    runs.append(
        space.materialize(
            f"{graph.dataset} monitoring",
            graph.after_models,
            partition_range=(graph.first_cutoff, before),
        )
    )
    return runs


def stage_of(step: str) -> str:
    return step.rsplit("/", 1)[-1]


def cycle_figures(cycles: dict[str, CliRun], models: dict[str, int]) -> list[Figure]:
    """Each dataset's cold cycle run, and where the time of both went."""
    figures = [
        info(
            f"daily cycle of {dataset}, {models[dataset]} models, one cold CLI run",
            run.seconds,
            "s",
            f"{run.label}; {run.seconds / models[dataset]:.2f} s a model",
        )
        for dataset, run in cycles.items()
    ]
    runs = list(cycles.values())
    steps = {stage: 0.0 for stage in STAGES}
    for run in runs:
        for step, seconds in run.step_seconds.items():
            steps[stage_of(step)] = steps.get(stage_of(step), 0.0) + seconds
    total = sum(r.seconds for r in runs)
    figures += [
        info(f"daily cycle of all {sum(models.values())} models", total, "s", "the runs above"),
        info(
            "  CLI start-up and exit, outside the runs",
            total - sum(r.run_seconds for r in runs),
            "s",
            f"{len(runs)} CLI runs",
        ),
        info(
            "  Dagster inside the runs, outside the steps",
            sum(r.run_seconds for r in runs) - sum(steps.values()),
            "s",
        ),
        *[info(f"  steps {stage}", seconds, "s") for stage, seconds in steps.items()],
    ]
    return figures


def warehouse_refresh(space: Workspace) -> Figure:
    """One rebuild of the analysts' catalog of views over the lake, which every step that writes
    a table ends with (`Lake.refresh_warehouse`): its cost grows with the tables of the lake."""
    lake = space.lake()
    started = time.perf_counter()
    lake.refresh_warehouse()
    seconds = time.perf_counter() - started
    return info(
        "  one warehouse refresh, as each step ends",
        seconds,
        "s",
        f"{len(lake.tables())} tables in the lake; the cycle's steps refresh it once each",
    )


def tick_figures(ticks: dict) -> list[Figure]:
    """The slowest tick, the 95th percentile, and which sensors missed the target."""
    seconds = ticks["seconds"]
    ordered = sorted(seconds.items(), key=lambda item: -item[1])
    values = sorted(seconds.values())
    p95 = statistics.quantiles(values, n=20, method="inclusive")[-1]
    slowest, worst = ordered[0]
    limit = monitoring_ticks.TARGET_TICK_SECONDS
    over = [f"{name} {value:.2f} s" for name, value in ordered if value > limit]
    kinds: dict[str, list[float]] = {}
    for name, value in seconds.items():
        kind = next((k for k in SENSOR_KINDS if name.endswith(k)), name)
        kinds.setdefault(kind, []).append(value)
    return [
        at_most(
            f"slowest sensor tick of {len(seconds)}",
            worst,
            limit,
            "s",
            f"{slowest}: {ticks['notes'].get(slowest, '')[:120]}",
        ),
        at_most(f"95th percentile of the {len(seconds)} ticks", p95, limit, "s"),
        Figure(
            "sensors whose tick exceeds 0.5 s",
            len(over),
            target="0",
            within=not over,
            note=", ".join(over[:8]),
        ),
        *[
            info(
                f"  ticks of the {kind} sensors: slowest of {len(found)}",
                max(found),
                "s",
                f"median {statistics.median(found):.3f} s",
            )
            for kind, found in sorted(kinds.items())
        ],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the load times only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    # Before the platform's modules load: the catalog reads it once, when `assets` is imported.
    os.environ[DECLARATIONS_ENV] = DECLARATIONS
    from assets import CATALOG

    started = time.perf_counter()
    details: dict = {"declarations": DECLARATIONS, "models": [m.name for m in CATALOG.models]}
    with workspace("many-models", {DECLARATIONS_ENV: DECLARATIONS}, keep=args.keep) as space:
        ours, three = cold_loads(space, DECLARATIONS), cold_loads(space, "")
        checks = catalog_check_seconds(space)
        figures = load_figures(ours, three, checks)
        details |= {"loads": ours, "loads_models_only": three, "catalog_checks": checks}
        print(f"loaded: best {min(load['wall'] for load in ours):.1f} s", flush=True)
        if not args.quick:
            graphs = [DailyGraph.from_definitions(d.name) for d in CATALOG.datasets]
            graphs = [g for g in graphs if g.first_cutoffs]
            cycles, state, models = {}, [], {}
            for graph in graphs:
                day = date.fromisoformat(graph.first_cutoff) + timedelta(days=MONITORED_DAYS)
                state += build_state(space, graph, day.isoformat())
                models[graph.dataset] = len(graph.models)
                cycles[graph.dataset] = space.materialize(
                    f"{graph.dataset} daily cycle {day}",
                    graph.features + graph.after_models,
                    partition=day.isoformat(),
                )
            flights = DailyGraph.from_definitions("flights", ["flight_delay"])
            ticks = monitoring_ticks.sensor_tick_seconds(
                space.instance, space.lake(), str(space.data), "flight_delay", flights.first_day
            )
            figures += cycle_figures(cycles, models)
            figures.append(warehouse_refresh(space))
            figures += tick_figures(ticks)
            figures.append(
                info("setting up the state (CLI runs)", sum(r.seconds for r in state), "s")
            )
            details |= {
                "state_runs": [asdict(r) for r in state],
                "cycle_runs": {d: asdict(r) for d, r in cycles.items()},
                "sensor_ticks": ticks,
            }
    report(
        "many_models-quick" if args.quick else "many_models",
        f"{len(CATALOG.models)} models at once ({'quick' if args.quick else 'full'})",
        figures,
        details,
        started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
