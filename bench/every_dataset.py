"""The year backfill of every declared dataset and model, as one user command.

`platform/backfill.py` without arguments backfills every dataset over its whole calendar (the
bundled data): each dataset's raw tables and features, each model's first version, and what the
champions serve from then on, the datasets side by side (the first in the command's process,
the other in a child of it, each with its first models and its drift reports in a process
beside its ingestion and its predictions).
The benchmark times that command in a fresh workspace and prints, beside the target, the time of
each asset's steps, of Dagster around them and of the command outside its runs.
`bench/backfill.py` measures each dataset's graph on its own, with the naive path beside it.
"""

import argparse
import sys
import time
from dataclasses import asdict

from bench.harness import (
    at_most,
    info,
    report,
    stop_cleanly_on_sigterm,
    time_figures,
    workspace,
)

TARGET_EVERY_DATASET_SECONDS = 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    started = time.perf_counter()
    with workspace("every-dataset", keep=args.keep) as space:
        run = space.backfill("every dataset", [])
    figures = [
        at_most(
            "year backfill of every dataset and model, wall",
            run.seconds,
            TARGET_EVERY_DATASET_SECONDS,
            "s",
            f"platform/backfill.py, {len(run.runs)} runs, datasets side by side",
        ),
        *time_figures(run),
        info(
            "  peak memory of the command",
            run.peak_tree_rss_bytes / 2**20,
            "MiB",
            "its processes together",
        ),
        info("  peak memory of its largest process", run.max_rss_bytes / 2**20, "MiB"),
    ]
    report(
        "every-dataset",
        "Year backfill of every dataset and model on the bundled data",
        figures,
        {"run": asdict(run)},
        started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
