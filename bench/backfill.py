"""Year backfill of one dataset's daily graph on the bundled data, against the naive path.

The fast path is what a user types after a feature change: one `platform/backfill.py` over the
span, launching one run per step, each over its whole range (`BackfillPolicy.single_run()`; see
`assets.backfill`):

1. every asset models are trained from over the whole year: the raw tables, the features, and
   the unpartitioned registers they read (the flights' plane register runs once, in the first
   run), as two runs: the days before the first cutoff, then the days from it on;
2. the models, one run per training cutoff (the backfill cadence, below), those of the first
   cutoff with the ingestion of the days from it on beside them, from a second process;
3. every daily asset that needs a champion from the first cutoff on: predictions and quality,
   and the drift reports in a run of their own beside them, from a second process.

The graph is the dataset's with every model of it (flights: `flight_delay` and `arrival_delay`,
which reads flight_delay's features; electricity: `demand_forecast`), or the models `--models`
names: `--dataset flights --models flight_delay` is the graph the figures before the
declarations measured, so they stay comparable.

Models in the backfill: each model's first version, at its declared first cutoff (the one `make
run` trains: 2013-03-01 for the flights, 2014-03-01 for electricity). The platform never retrains
on a schedule of its own: the model asset is not automated, and the drift and quality sensors
request retrains from the monitoring a backfill produces (their ticks are measured below). The
days before the first cutoff have features but no predictions, drift or quality. Retraining more
often during the backfill costs one run per cutoff: `--cadence quarterly|monthly` measures
it, and the default run prints the cost of one cutoff and the estimate for monthly retraining.

The naive path is the same graph launched one partition per run, for a sample of days, in a
copy of the fast path's lake from which those days were deleted (so each run finds the history
and champions a naive backfill would have built by then), plus one run of the plane register;
each model run costs what it took in the fast path plus a naive run's start-up. Its runs are
extrapolated to the year per asset; each is also one day of the daily cycle from a
cold `dagster asset materialize`. The sampled days written by both paths are then compared row
for row.
"""

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets import CATALOG
from assets.backfill import CADENCES, training_cutoffs
from assets.keys import model_key
from bench import monitoring_ticks
from bench.harness import (
    CliRun,
    DagsterRun,
    DailyGraph,
    Figure,
    Workspace,
    at_least,
    at_most,
    days,
    info,
    report,
    spread,
    stop_cleanly_on_sigterm,
    time_figures,
    workspace,
)
from sensors.run_tags import RANGE_END_TAG, RANGE_START_TAG

# The year of the flights' graph with flight_delay alone (the graph measured before the
# declarations) has a target of its own; every dataset's graph with all its models has one
# together, which `bench/every_dataset.py` measures as one command.
HEADLINE_GRAPH = ("flights", ("flight_delay",))
TARGET_BACKFILL_SECONDS = 30.0
TARGET_SPEEDUP = 100.0
TARGET_DAILY_CYCLE_SECONDS = 10.0
# The quick span ends two weeks after the first cutoff: every step runs, on ten weeks of data.
QUICK_DAYS_AFTER_CUTOFF = 14


def span(graph: DailyGraph, quick: bool) -> tuple[str, str]:
    """The dataset's year, or its first days up to two weeks after the first cutoff."""
    if not quick:
        return graph.first_day, graph.last_day
    end = date.fromisoformat(graph.first_cutoff) + timedelta(days=QUICK_DAYS_AFTER_CUTOFF)
    return graph.first_day, min(end.isoformat(), graph.last_day)


def model_cutoffs(
    cadence: str, graph: DailyGraph, first: str, last: str
) -> dict[str, tuple[str, ...]]:
    """Training cutoffs of the backfill and the model assets trained at each: every model at its
    first cutoff, then every model on the first day of every third month or of every month."""
    specs = [CATALOG.model(key.split("/")[0]) for key in graph.models]
    cutoffs = training_cutoffs(
        CATALOG, specs, date.fromisoformat(first), date.fromisoformat(last), cadence
    )
    return {
        cutoff.isoformat(): tuple(model_key(m).to_user_string() for m in trained)
        for cutoff, trained in cutoffs.items()
    }


def fast_backfill(
    space: Workspace,
    graph: DailyGraph,
    models: Sequence[str] | None,
    first: str,
    last: str,
    cadence: str,
) -> CliRun:
    """The whole daily graph for first..last: `platform/backfill.py`."""
    arguments = ["--datasets", graph.dataset, "--from", first, "--to", last, "--cadence", cadence]
    return space.backfill("backfill", arguments + (["--models", *models] if models else []))


def empty(name: str, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(name=name, partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def _empty() -> dg.MaterializeResult:
        return dg.MaterializeResult()

    return _empty


def dagster_floor(space: Workspace, graph: DailyGraph, first: str, last: str) -> float:
    """What Dagster alone costs for the backfill's range runs: the same number of daily assets,
    empty, over the same days (the ingestion's two runs as one, and those after the models in
    one run), run in this process against the same instance."""
    end = date.fromisoformat(graph.last_day) + timedelta(days=1)
    partitions = dg.DailyPartitionsDefinition(start_date=graph.first_day, end_date=end.isoformat())

    def run(assets: tuple[str, ...], start: str) -> float:
        started = time.perf_counter()
        dg.materialize(
            [empty(a.replace("/", "__"), partitions) for a in assets],
            instance=space.instance,
            tags={RANGE_START_TAG: start, RANGE_END_TAG: last},
        )
        return time.perf_counter() - started

    return run(graph.before_models, first) + run(graph.after_models, graph.first_cutoff)


def naive_path(
    fast: Workspace, naive: Workspace, graph: DailyGraph, sample: list[str]
) -> tuple[CliRun | None, list[CliRun]]:
    """The registers' run (if the dataset has registers), then one run per sampled day of every
    daily asset, in a copy of the fast lake without those days."""
    shutil.copytree(fast.lake_root, naive.lake_root)
    lake = naive.lake()
    for table_name in graph.daily:
        for day in sample:
            shutil.rmtree(lake.partition_file(table_name, date.fromisoformat(day)).parent)
    unpartitioned = (
        naive.materialize("unpartitioned", graph.unpartitioned) if graph.unpartitioned else None
    )
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
    unpartitioned_run: CliRun | None,
    model_runs: list[DagsterRun],
    graph: DailyGraph,
    first: str,
    last: str,
) -> float:
    """The naive year: every day costs a sampled day's run start-up plus the mean step time of
    each asset that day has (days before the first cutoff have no predictions, drift or
    quality); the registers' run costs what it cost on its own, each model run what its run
    took in the fast path plus the start-up."""
    overhead = statistics.mean(r.seconds - sum(r.step_seconds.values()) for r in naive_runs)
    step = {
        asset: statistics.mean(r.step_seconds.get(asset, 0.0) for r in naive_runs)
        for asset in graph.daily
    }
    before = sum(step[a] for a in graph.before_models)
    after = sum(step[a] for a in graph.after_models)
    total = unpartitioned_run.seconds if unpartitioned_run else 0.0
    total += sum(r.seconds + overhead for r in model_runs)
    for day in days(first, last):
        total += overhead + before + (after if day >= graph.first_cutoff else 0.0)
    return total


def record_name(dataset: str, models: list[str] | None, quick: bool) -> str:
    """`backfill-<dataset>`, with the models when a subset was chosen, and `-quick`."""
    chosen = f"-{'+'.join(models)}" if models else ""
    return f"backfill-{dataset}{chosen}{'-quick' if quick else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="flights", help="the dataset whose graph (flights)")
    parser.add_argument(
        "--models", nargs="+", help="only these models of the dataset (default: all of them)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the first days up to two weeks after the first cutoff, one naive day (a smoke run)",
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
    graph = DailyGraph.from_definitions(args.dataset, args.models)
    first, last = span(graph, args.quick)
    naive_days = args.naive_days or (1 if args.quick else 4)
    started = time.perf_counter()

    cutoffs = model_cutoffs(args.cadence, graph, first, last)
    # Sampled days at least a week apart, after the first cutoff, so each has the whole graph.
    sample = spread(days(graph.first_cutoff, last)[7:], naive_days)
    print(f"daily graph: {asdict(graph)}", flush=True)
    print(f"backfill {first}..{last}; model cutoffs {', '.join(cutoffs)}", flush=True)

    with (
        workspace("backfill", keep=args.keep) as fast,
        workspace("naive", keep=args.keep) as naive,
        workspace("floor", keep=args.keep) as floor,
    ):
        fast_run = fast_backfill(fast, graph, args.models, first, last, args.cadence)
        backfill_seconds = fast_run.seconds
        print(f"fast path: {backfill_seconds:.1f} s in {len(fast_run.runs)} runs", flush=True)

        floor_seconds = dagster_floor(floor, graph, first, last)
        unpartitioned_run, naive_runs = naive_path(fast, naive, graph, sample)
        print(f"naive path: {len(naive_runs)} runs for {', '.join(sample)}", flush=True)
        equality = compare_paths(fast, naive, graph, sample)
        model_runs = [r for r in fast_run.runs if r.assets & set(graph.models)]
        naive_seconds = extrapolate_naive(
            naive_runs, unpartitioned_run, model_runs, graph, first, last
        )

        # The model whose features the graph computes: its drift is the one measured before.
        served = graph.features[0].split("/")[0]
        drift = monitoring_ticks.drift_report_seconds(fast.lake(), served, sample)
        ticks = monitoring_ticks.sensor_tick_seconds(
            fast.instance, fast.lake(), str(fast.data), served, graph.first_day
        )

    cycle = [r.seconds for r in naive_runs]
    differing = [
        f"{t} {v.removeprefix('DIFFERENT: ')}" for t, v in equality.items() if v != "equal"
    ]
    span_text = f"{first}..{last}"
    per_cutoff = statistics.mean(r.seconds for r in model_runs)
    monthly = len(model_cutoffs("monthly", graph, first, last))
    models = ", ".join(m.split("/")[0] for m in graph.models)
    wall = f"backfill {span_text}, wall"
    about = f"models {models}; cutoffs {', '.join(cutoffs)}"
    headline = (args.dataset, tuple(args.models or ())) == HEADLINE_GRAPH and not args.quick
    figures: list[Figure] = [
        at_most(wall, backfill_seconds, TARGET_BACKFILL_SECONDS, "s", about)
        if headline
        else info(wall, backfill_seconds, "s", about),
        info("  CPU time of the command", fast_run.cpu_seconds, "s"),
        *time_figures(
            fast_run,
            f"{len(fast_run.runs)} runs; ingestion beside the models, drift beside predictions",
        ),
        info(
            "  Dagster alone for its range runs",
            floor_seconds,
            "s",
            "the same daily assets, empty, same ranges and instance, in process",
        ),
        info("  one more model cutoff (its run)", per_cutoff, "s"),
        info(
            f"  backfill with monthly retraining ({monthly} cutoffs), estimated",
            backfill_seconds + (monthly - len(cutoffs)) * per_cutoff,
            "s",
        ),
        info(
            f"naive path, extrapolated to {span_text}",
            naive_seconds,
            "s",
            f"from {len(naive_runs)} one-day runs",
        ),
        at_least(
            "speed-up over the naive path", naive_seconds / backfill_seconds, TARGET_SPEEDUP, "x"
        ),
        Figure(
            "fast path equals naive path row for row",
            not differing,
            target="yes",
            within=not differing,
            note=f"{len(equality)} tables on {', '.join(sample)}"
            + (f"; differing: {'; '.join(differing)}" if differing else ""),
        ),
        at_most(
            "daily cycle from a cold CLI run (median)",
            statistics.median(cycle),
            TARGET_DAILY_CYCLE_SECONDS,
            "s",
            f"max {max(cycle):.1f} s over {len(cycle)} days",
        ),
        at_most(
            f"one day's drift report of {served}, compute after imports",
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
            "peak memory of a command, its processes together",
            max(r.peak_tree_rss_bytes for r in [fast_run, *naive_runs]) / 2**20,
            "MiB",
        ),
    ]
    title = (
        f"Year backfill of the {graph.dataset} graph ({models}) on the bundled data "
        f"({'quick' if args.quick else 'full'})"
    )
    name = record_name(args.dataset, args.models, args.quick)
    report(
        name,
        title,
        figures,
        {
            "backfill_seconds": backfill_seconds,
            "graph": asdict(graph),
            "span": [first, last],
            "model_cutoffs": cutoffs,
            "naive_sample_days": sample,
            "equality": equality,
            "drift": drift,
            "sensor_ticks": ticks,
            "fast_run": asdict(fast_run),
            "naive_runs": [asdict(r) for r in naive_runs],
        },
        started,
    )
    for table_name, verdict in equality.items():
        print(f"  {table_name}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
