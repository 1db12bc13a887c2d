"""Year backfill of the daily graph on the bundled data, against the naive path, in one run.

The fast path is what a user types after a feature change, each step one `dagster asset
materialize` over its whole range (`BackfillPolicy.single_run()`):

1. every asset models are trained from over the whole year: the raw tables, the features, and the
   unpartitioned plane register they read (it runs once in the same range run);
2. the models, one run per training cutoff (the backfill cadence, below);
3. every daily asset that needs a champion (predictions, drift, quality) from the first cutoff on.

Models in the backfill: only the first, cutoff 2013-03-01 (the one `make run` trains). The
platform never retrains on a schedule of its own: the model asset is not automated, and the drift
and quality sensors request retrains from the monitoring a backfill produces (their ticks are
measured below). On the bundled data no model can be trained before 28 days of history and the
first that passes the quality gate is the one of 2013-03-01, so the days before it have features
but no predictions, drift or quality. Retraining more often during the backfill costs one CLI run
per cutoff: `--cadence quarterly|monthly` measures it, and the default run prints the cost of one
cutoff and the estimate for monthly retraining.

The naive path is the same graph launched one partition per run, for a sample of days, in a
copy of the fast path's lake from which those days were deleted (so each run finds the history
and champions a naive backfill would have built by then), plus one run of the plane register.
Its runs are extrapolated to the year per asset; each is also one day of the daily cycle from a
cold `dagster asset materialize`. The sampled days written by both paths are then compared row
for row.
"""

import argparse
import shutil
import statistics
import sys
import time
from dataclasses import asdict
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench import monitoring_ticks
from bench.harness import (
    CliRun,
    DailyGraph,
    Figure,
    Workspace,
    at_least,
    at_most,
    days,
    info,
    per_asset_seconds,
    record,
    spread,
    stop_cleanly_on_sigterm,
    table,
    workspace,
)

YEAR = ("2013-01-01", "2013-12-31")
QUICK = ("2013-01-01", "2013-03-15")
FIRST_CUTOFF = "2013-03-01"
TARGET_BACKFILL_SECONDS = 60.0
TARGET_SPEEDUP = 50.0
TARGET_DAILY_CYCLE_SECONDS = 15.0


CADENCES = {"first": 0, "quarterly": 3, "monthly": 1}


def model_cutoffs(cadence: str, first_cutoff: str, last: str) -> list[str]:
    """Training cutoffs from `first_cutoff` to `last`: the first one only, or the first day of
    every third month or of every month."""
    firsts = [day for day in days(first_cutoff, last) if day.endswith("-01")]
    step = CADENCES[cadence]
    return firsts[::step] if step else firsts[:1]


def fast_backfill(
    space: Workspace, graph: DailyGraph, first: str, last: str, cutoffs: list[str]
) -> list[CliRun]:
    """The whole daily graph for first..last, each step one CLI run over its range."""
    runs = [
        space.materialize(
            "before models",
            graph.unpartitioned + graph.before_models,
            partition_range=(first, last),
        )
    ]
    for cutoff in cutoffs:
        runs.append(space.materialize(f"model {cutoff}", graph.models, partition=cutoff))
    runs.append(
        space.materialize("after models", graph.after_models, partition_range=(cutoffs[0], last))
    )
    return runs


FLOOR_DEFINITIONS = """
import dagster as dg

days = dg.DailyPartitionsDefinition(start_date="2013-01-01", end_date="2014-01-01")


def empty(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, partitions_def=days, backfill_policy=dg.BackfillPolicy.single_run())
    def _empty() -> dg.MaterializeResult:
        return dg.MaterializeResult()

    return _empty


defs = dg.Definitions(assets=[empty(name) for name in {names!r}], executor=dg.in_process_executor)
"""


def dagster_floor(space: Workspace, graph: DailyGraph, first: str, last: str, cutoff: str) -> float:
    """What Dagster alone costs for the backfill's two range runs: the same number of daily
    assets, empty, over the same ranges, with the same instance and CLI."""

    def names(assets: tuple[str, ...]) -> list[str]:
        return [a.replace("/", "__") for a in assets]

    before, after = names(graph.before_models), names(graph.after_models)
    location = space.root / "floor_definitions.py"
    location.write_text(FLOOR_DEFINITIONS.format(names=before + after))
    runs = [
        space.materialize(
            "floor before models", before, partition_range=(first, last), definitions=str(location)
        ),
        space.materialize(
            "floor after models", after, partition_range=(cutoff, last), definitions=str(location)
        ),
    ]
    return sum(r.seconds for r in runs)


def naive_path(
    fast: Workspace, naive: Workspace, graph: DailyGraph, sample: list[str]
) -> tuple[CliRun, list[CliRun]]:
    """The unpartitioned assets' run, then one run per sampled day of every daily asset, in a
    copy of the fast lake without those days."""
    shutil.copytree(fast.lake_root, naive.lake_root)
    lake = naive.lake()
    for table_name in graph.daily:
        for day in sample:
            shutil.rmtree(lake.partition_file(table_name, date.fromisoformat(day)).parent)
    unpartitioned = naive.materialize("unpartitioned", graph.unpartitioned)
    return unpartitioned, [
        naive.materialize(f"day {day}", graph.daily, partition=day) for day in sample
    ]


def compare_paths(
    fast: Workspace, naive: Workspace, graph: DailyGraph, sample: list[str]
) -> dict[str, str]:
    """For each daily table, whether the sampled days are equal row for row in both lakes."""
    fast_lake, naive_lake = fast.lake(), naive.lake()
    verdicts = {}
    for table_name in graph.daily:
        differing = []
        for day in sample:
            key = date.fromisoformat(day)
            ours = pq.read_table(fast_lake.partition_file(table_name, key))
            theirs = pq.read_table(naive_lake.partition_file(table_name, key))
            if not ours.equals(theirs):
                differing.append(f"{day} ({difference(ours, theirs)})")
        verdicts[table_name] = "equal" if not differing else "DIFFERENT: " + ", ".join(differing)
    return verdicts


def difference(ours: pa.Table, theirs: pa.Table) -> str:
    """What differs between two versions of a partition: rows, schema, or which columns (with the
    largest difference of a numeric one)."""
    if ours.num_rows != theirs.num_rows or not ours.schema.equals(theirs.schema):
        return f"{ours.num_rows} vs {theirs.num_rows} rows, schemas equal: {ours.schema.equals(theirs.schema)}"
    found = []
    for name in ours.column_names:
        a, b = ours.column(name), theirs.column(name)
        if a.equals(b):
            continue
        if pa.types.is_floating(a.type):
            gap = pc.max(pc.abs(pc.subtract(a, b))).as_py()
            found.append(f"{name} by up to {gap:.1e}")
        else:
            found.append(name)
    return f"{ours.num_rows} rows; differing: {', '.join(found)}"


def extrapolate_naive(
    naive_runs: list[CliRun],
    fixed_runs: list[CliRun],
    graph: DailyGraph,
    first: str,
    last: str,
    first_cutoff: str,
) -> float:
    """The naive year: every day costs a sampled day's run start-up plus the mean step time of
    each asset that day has (days before the first cutoff have no predictions, drift or
    quality); the unpartitioned run costs what it cost on its own, the model runs what they cost
    in the fast path."""
    overhead = statistics.mean(r.seconds - sum(r.step_seconds.values()) for r in naive_runs)
    step = {
        asset: statistics.mean(r.step_seconds.get(asset, 0.0) for r in naive_runs)
        for asset in graph.daily
    }
    before = sum(step[a] for a in graph.before_models)
    after = sum(step[a] for a in graph.after_models)
    total = sum(r.seconds for r in fixed_runs)
    for day in days(first, last):
        total += overhead + before + (after if day >= first_cutoff else 0.0)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2013-01-01..03-15, one naive day (a smoke run)"
    )
    parser.add_argument("--naive-days", type=int, help="sampled days of the naive path")
    parser.add_argument(
        "--cadence",
        choices=list(CADENCES),
        default="first",
        help="model cutoffs of the backfill (see the module's docstring)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspaces")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    first, last = QUICK if args.quick else YEAR
    naive_days = args.naive_days or (1 if args.quick else 4)
    started = time.perf_counter()

    graph = DailyGraph.from_definitions()
    cutoffs = model_cutoffs(args.cadence, FIRST_CUTOFF, last)
    # Sampled days at least a week apart, after the first cutoff, so each has the whole graph.
    sample = spread(days(cutoffs[0], last)[7:], naive_days)
    print(f"daily graph: {asdict(graph)}", flush=True)
    print(f"backfill {first}..{last}; model cutoffs {', '.join(cutoffs)}", flush=True)

    with (
        workspace("backfill", keep=args.keep) as fast,
        workspace("naive", keep=args.keep) as naive,
        workspace("floor", keep=args.keep) as floor,
    ):
        clock = time.perf_counter()
        fast_runs = fast_backfill(fast, graph, first, last, cutoffs)
        backfill_seconds = time.perf_counter() - clock
        print(f"fast path: {backfill_seconds:.1f} s in {len(fast_runs)} runs", flush=True)

        floor_seconds = dagster_floor(floor, graph, first, last, cutoffs[0])
        unpartitioned_run, naive_runs = naive_path(fast, naive, graph, sample)
        print(f"naive path: {len(naive_runs)} runs for {', '.join(sample)}", flush=True)
        equality = compare_paths(fast, naive, graph, sample)
        fixed_runs = [unpartitioned_run, *(r for r in fast_runs if r.label.startswith("model"))]
        naive_seconds = extrapolate_naive(naive_runs, fixed_runs, graph, first, last, cutoffs[0])

        drift = monitoring_ticks.drift_report_seconds(fast.lake(), sample)
        ticks = monitoring_ticks.sensor_tick_seconds(fast.instance, fast.lake(), str(fast.data))

    cycle = [r.seconds for r in naive_runs]
    per_asset = per_asset_seconds(fast_runs)
    span = f"{first}..{last}"
    per_cutoff = statistics.mean(r.seconds for r in fast_runs if r.label.startswith("model"))
    monthly = len(model_cutoffs("monthly", FIRST_CUTOFF, last))
    figures: list[Figure] = [
        at_most(
            f"backfill {span}, wall",
            backfill_seconds,
            TARGET_BACKFILL_SECONDS,
            "s",
            f"models: {', '.join(cutoffs)}",
        ),
        info("  CPU time of its CLI runs", sum(r.cpu_seconds for r in fast_runs), "s"),
        *[info(f"  step {asset}", seconds, "s") for asset, seconds in per_asset.items()],
        info(
            "  Dagster inside the runs, outside the steps",
            sum(r.run_seconds for r in fast_runs) - sum(per_asset.values()),
            "s",
        ),
        info(
            "  CLI start-up and exit, outside the runs",
            backfill_seconds - sum(r.run_seconds for r in fast_runs),
            "s",
            f"{len(fast_runs)} CLI runs",
        ),
        info(
            "  Dagster alone for its two range runs",
            floor_seconds,
            "s",
            "the same daily assets, empty, same ranges and CLI",
        ),
        info("  one more model cutoff (its CLI run)", per_cutoff, "s"),
        info(
            f"  backfill with monthly retraining ({monthly} cutoffs), estimated",
            backfill_seconds + (monthly - len(cutoffs)) * per_cutoff,
            "s",
        ),
        info(
            f"naive path, extrapolated to {span}",
            naive_seconds,
            "s",
            f"from {len(naive_runs)} one-day runs",
        ),
        at_least(
            "speed-up over the naive path", naive_seconds / backfill_seconds, TARGET_SPEEDUP, "x"
        ),
        Figure(
            "fast path equals naive path row for row",
            all(v == "equal" for v in equality.values()),
            target="yes",
            within=all(v == "equal" for v in equality.values()),
            note=f"{len(equality)} tables on {', '.join(sample)}",
        ),
        at_most(
            "daily cycle from a cold CLI run (median)",
            statistics.median(cycle),
            TARGET_DAILY_CYCLE_SECONDS,
            "s",
            f"max {max(cycle):.1f} s over {len(cycle)} days",
        ),
        at_most(
            "one day's drift report, compute after imports",
            drift["seconds"],
            monitoring_ticks.TARGET_DRIFT_SECONDS,
            "s",
            drift["note"],
        ),
        *[
            at_most(
                f"one tick of sensor {name}",
                seconds,
                monitoring_ticks.TARGET_TICK_SECONDS,
                "s",
                ticks["notes"].get(name, ""),
            )
            for name, seconds in ticks["seconds"].items()
        ],
        info(
            "peak memory of a CLI run",
            max(r.max_rss_bytes for r in fast_runs + naive_runs) / 2**20,
            "MiB",
        ),
    ]
    title = f"Year backfill on the bundled data ({'quick' if args.quick else 'full'})"
    print()
    print(table(title, figures))
    for name, verdict in equality.items():
        print(f"  {name}: {verdict}")
    path = record(
        "backfill-quick" if args.quick else "backfill",
        figures,
        {
            "graph": asdict(graph),
            "span": [first, last],
            "model_cutoffs": cutoffs,
            "naive_sample_days": sample,
            "equality": equality,
            "drift": drift,
            "sensor_ticks": ticks,
            "fast_runs": [asdict(r) for r in fast_runs],
            "naive_runs": [asdict(r) for r in naive_runs],
        },
        started,
    )
    print(f"\nrecorded in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
