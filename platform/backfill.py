"""Backfill datasets' whole daily graphs from a terminal, in one command.

    .venv/bin/python platform/backfill.py --datasets flights --from 2013-01-01 --to 2013-12-31

For each dataset (all of them unless `--datasets` or `--models` says), over `--from`..`--to` (its
whole calendar by default): its registers, raw tables and features; its models at their first
cutoffs in the range (`--cadence quarterly|monthly` adds a cutoff on the first of every third
month or of every month after it); then their predictions, drift reports and quality from the
first day each has a champion. Each step is one run over its whole range in the instance of
DAGSTER_HOME as configured there (else the one `make run` uses), shown in the UI like any run
and tagged `platform/backfill`; see `assets.backfill`. A dataset stops at its first run that
fails, naming it.

Datasets are backfilled side by side, `--jobs` at a time (by default as many as the machine has
cores): the first in this process, each other one by this command in a process of its own.
Unless `--jobs` is 1, each dataset also runs the raw tables and features of the days from its
first models' cutoff on in a second process beside those models, and its drift reports beside
its predictions.

A single `dagster asset materialize --partition-range` cannot do this (one range for every
asset, so a model a day), and three of them pay the code location's start three times.
"""

import argparse
import gc
import os
import sys
import warnings
from collections.abc import Callable
from datetime import date

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import CATALOG, build_assets  # noqa: E402
from assets.backfill import (  # noqa: E402
    CADENCES,
    Step,
    await_turn,
    backfill_steps,
    prepare_instance,
    run_steps,
    side_by_side,
)
from assets.model_spec import ModelSpec  # noqa: E402
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
        nargs="*",
        choices=[m.name for m in CATALOG.models],
        help="only these models, none when the option is alone (default: every model of the "
        "datasets)",
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
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="datasets backfilled at once (default: the machine's cores)",
    )
    # How the command runs one step of a dataset's plan beside another in a process of its own.
    parser.add_argument("--step", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    models = None if args.models is None else [CATALOG.model(name) for name in args.models]
    chosen = args.datasets or (
        sorted({CATALOG.dataset_of(m).name for m in models}) if models else datasets
    )
    plans: dict[str, list[Step]] = {}
    for dataset in (d for d in CATALOG.datasets if d.name in chosen):
        own = None if models is None else models_of(models, dataset.name)
        first, last = args.first or dataset.first_day, args.last or dataset.last_day
        try:
            plans[dataset.name] = backfill_steps(CATALOG, dataset, first, last, own, args.cadence)
        except ValueError as error:
            parser.error(str(error))
    # Created here, before any other process opens it (see prepare_instance).
    instance = prepare_instance(CATALOG, reconfigure=False)
    names = list(plans)
    if args.step is not None:
        [name] = names
        return backfill(instance, plans[name], only=args.step)
    if args.jobs == 1:
        return backfill(instance, [step for name in names for step in plans[name]])
    first, *others = names

    def beside(step: int) -> list[str]:
        return [*dataset_command(args, first), "--step", str(step)]

    commands = [dataset_command(args, name) for name in others]
    return side_by_side(lambda: backfill(instance, plans[first], beside), commands, args.jobs)


def backfill(
    instance: dg.DagsterInstance,
    steps: list[Step],
    beside: Callable[[int], list[str]] | None = None,
    only: int | None = None,
) -> int:
    """`steps` (or step `only` of them, once the command that started this one says) in this
    process, those that may run beside the step before in a child process when `beside` gives
    the command of each."""
    every_asset = build_assets(CATALOG)
    # The code location lives as long as the process: frozen, the collector no longer walks it in
    # every full collection of the runs.
    gc.freeze()
    if only is not None and not await_turn():
        return 0
    code = run_steps(
        instance,
        every_asset,
        steps,
        platform_resources(),
        {BACKFILL_TAG: "true"},
        beside=beside,
        only=only,
    )
    # What the runs leave goes with the process: frozen too, the interpreter's exit skips the
    # collections it would make over it (1.5 s after a year of flights).
    gc.freeze()
    return code


def dataset_command(args: argparse.Namespace, dataset: str) -> list[str]:
    """This command for `dataset` alone, with the options given for it."""
    command = [sys.executable, os.path.abspath(__file__), "--datasets", dataset]
    command += ["--jobs", str(args.jobs)]
    command += ["--cadence", args.cadence]
    if args.models is not None:
        own = models_of([CATALOG.model(name) for name in args.models], dataset)
        command += ["--models", *(m.name for m in own)]
    for option, day in (("--from", args.first), ("--to", args.last)):
        if day is not None:
            command += [option, day.isoformat()]
    return command


def models_of(models: list[ModelSpec], dataset: str) -> list[ModelSpec]:
    """Those of `models` that belong to `dataset`."""
    return [m for m in models if CATALOG.dataset_of(m).name == dataset]


if __name__ == "__main__":
    sys.exit(main())
