"""Backfill datasets' whole daily graphs from a terminal: one command, one process.

    .venv/bin/python platform/backfill.py --datasets flights --from 2013-01-01 --to 2013-12-31

For each dataset (all of them unless `--datasets` or `--models` says), over `--from`..`--to` (its
whole calendar by default): its registers, raw tables and features; its models at their first
cutoffs in the range (`--cadence quarterly|monthly` adds a cutoff on the first of every third
month or of every month after it); then their predictions, drift reports and quality from the
first day each has a champion. Each step is one run over its whole range in the instance of
DAGSTER_HOME as configured there (else the one `make run` uses), shown in the UI like any run
and tagged `platform/backfill`; see `assets.backfill`. Stops at the first run that fails,
naming it.

A single `dagster asset materialize --partition-range` cannot do this (one range for every
asset, so a model a day), and three of them pay the code location's start three times.
"""

import argparse
import gc
import sys
import warnings
from datetime import date

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import CATALOG, build_assets  # noqa: E402
from assets.backfill import CADENCES, backfill_steps, prepare_instance, run_steps  # noqa: E402
from resources import platform_resources  # noqa: E402

BACKFILL_TAG = "platform/backfill"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    datasets = [d.name for d in CATALOG.datasets]
    parser.add_argument("--datasets", nargs="+", choices=datasets, help="default: all")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=[m.name for m in CATALOG.models],
        help="only these models (default: every model of the datasets)",
    )
    parser.add_argument(
        "--from", dest="first", type=date.fromisoformat, help="first day (default: the dataset's)"
    )
    parser.add_argument(
        "--to", dest="last", type=date.fromisoformat, help="last day (default: the dataset's)"
    )
    parser.add_argument(
        "--cadence", choices=list(CADENCES), default="first", help="training cutoffs (above)"
    )
    args = parser.parse_args(argv)
    models = [CATALOG.model(name) for name in args.models] if args.models else None
    chosen = args.datasets or (
        sorted({CATALOG.dataset_of(m).name for m in models}) if models else datasets
    )
    steps = []
    for dataset in (d for d in CATALOG.datasets if d.name in chosen):
        own = None if models is None else [m for m in models if CATALOG.dataset_of(m) is dataset]
        first, last = args.first or dataset.first_day, args.last or dataset.last_day
        try:
            steps += backfill_steps(CATALOG, dataset, first, last, own, args.cadence)
        except ValueError as error:
            parser.error(str(error))
    instance = prepare_instance(CATALOG, reconfigure=False)
    every_asset = build_assets(CATALOG)
    # The code location lives as long as the process: frozen, the collector no longer walks it in
    # every full collection of the runs.
    gc.freeze()
    code = run_steps(instance, every_asset, steps, platform_resources(), {BACKFILL_TAG: "true"})
    # What the runs leave goes with the process: frozen too, the interpreter's exit skips the
    # collections it would make over it (1.5 s after a year of flights).
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(main())
