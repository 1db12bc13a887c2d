"""The flights' year backfill at 10 and 100 times the real volume, from the synthetic source.

The bundled year has about 923 flights a day (336,776 in 2013). The flights' synthetic source
(`PLATFORM_SOURCE_FLIGHTS=synthetic`, `PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY`) generates the same
tables at any volume, so the same command as `bench/backfill.py` (`platform/backfill.py`, with
the ingestion beside its models and its drift reports beside the predictions, each in a second
process) backfills the flights' graph (every model of it, or those `--models` names) over the
year at 9,300 and 93,000 flights a day (3.4 M and 34 M flights). For each: wall time, flights per
second, the peak resident memory of the command (its processes together, sampled; and its
largest process, from the kernel's accounting), and the growth of the wall time from 10 to 100
times, which is linear when it is 10.
"""

import argparse
import sys
import time
from dataclasses import asdict

from bench.backfill import CADENCES, fast_backfill, model_cutoffs, span
from bench.harness import (
    DailyGraph,
    Figure,
    at_most,
    days,
    info,
    report,
    stop_cleanly_on_sigterm,
    workspace,
)

DATASET = "flights"
REAL_FLIGHTS_PER_DAY = 930
SCALES = (10, 100)
TARGET_SECONDS_AT_100 = 300.0
TARGET_PEAK_GIB = 2.0
TARGET_GROWTH = 10.0  # linear: ten times the rows, at most ten times the time


def backfill_at(
    graph: DailyGraph,
    models: list[str] | None,
    scale: int,
    first: str,
    last: str,
    cadence: str,
    keep: bool,
) -> dict:
    """One year (or quick span) backfill of the synthetic flights at `scale` times the volume."""
    flights_per_day = REAL_FLIGHTS_PER_DAY * scale
    cutoffs = model_cutoffs(cadence, graph, first, last)
    source = {
        f"PLATFORM_SOURCE_{graph.dataset.upper()}": "synthetic",
        "PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY": str(flights_per_day),
    }
    with workspace(f"scale{scale}x", source, keep=keep) as space:
        run = fast_backfill(space, graph, models, first, last, cadence)
    seconds = run.seconds
    flights = flights_per_day * len(days(first, last))
    return {
        "scale": scale,
        "flights_per_day": flights_per_day,
        "flights": flights,
        "seconds": seconds,
        "flights_per_second": flights / seconds,
        "peak_rss_bytes": run.peak_tree_rss_bytes,
        "largest_process_rss_bytes": run.max_rss_bytes,
        "cpu_seconds": run.cpu_seconds,
        "per_asset_seconds": run.step_seconds,
        "model_cutoffs": cutoffs,
        "run": asdict(run),
    }


def figures_of(results: list[dict], span: str) -> list[Figure]:
    figures: list[Figure] = []
    for result in results:
        scale = result["scale"]
        name = f"{scale}x ({result['flights_per_day']:,} flights/day), {span}"
        wall = (
            at_most(f"{name}: wall", result["seconds"], TARGET_SECONDS_AT_100, "s")
            if scale == 100
            else info(f"{name}: wall", result["seconds"], "s")
        )
        figures += [
            wall,
            info(f"  {scale}x flights per second", result["flights_per_second"], "flights/s"),
            at_most(
                f"  {scale}x peak memory of the command",
                result["peak_rss_bytes"] / 2**30,
                TARGET_PEAK_GIB,
                "GiB",
                "its processes together",
            ),
            info(
                f"  {scale}x peak memory of its largest process",
                result["largest_process_rss_bytes"] / 2**30,
                "GiB",
            ),
            info(f"  {scale}x CPU time of the command", result["cpu_seconds"], "s"),
            *[
                info(f"  {scale}x step {asset}", seconds, "s")
                for asset, seconds in result["per_asset_seconds"].items()
            ],
        ]
    by_scale = {r["scale"]: r for r in results}
    if 10 in by_scale and 100 in by_scale:
        growth = by_scale[100]["seconds"] / by_scale[10]["seconds"]
        figures.append(
            at_most("wall time growth from 10x to 100x", growth, TARGET_GROWTH, "x", "10 = linear")
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x only, 2013-01-01..03-15")
    parser.add_argument(
        "--models", nargs="+", help="only these models of the flights (default: all of them)"
    )
    parser.add_argument(
        "--scales", type=int, nargs="+", help=f"volume multipliers (default {SCALES})"
    )
    parser.add_argument("--cadence", choices=list(CADENCES), default="first")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspaces")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    graph = DailyGraph.from_definitions(DATASET, args.models)
    first, last = span(graph, args.quick)
    scales = args.scales or ((10,) if args.quick else SCALES)
    started = time.perf_counter()

    results = []
    for scale in scales:
        print(f"backfilling {first}..{last} at {scale}x ...", flush=True)
        results.append(backfill_at(graph, args.models, scale, first, last, args.cadence, args.keep))
        print(f"  {results[-1]['seconds']:.1f} s", flush=True)
    figures = figures_of(results, f"{first}..{last}")
    models = ", ".join(m.split("/")[0] for m in graph.models)
    report(
        "scale-quick" if args.quick else "scale",
        f"Scale: the flights graph ({models}) from the synthetic source "
        f"({'quick' if args.quick else 'full'})",
        figures,
        {"span": [first, last], "models": graph.models, "results": results},
        started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
