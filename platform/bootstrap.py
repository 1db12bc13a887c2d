"""Bootstrap the embedded default: a local Dagster instance, and every declared dataset and model
materialized up to the day its live replay starts.

Run by `make run` (`platform/run.py`) before it serves the UI. Each dataset is backfilled from
its first day to the day before `replay_from` (`assets.backfill`): its registers, raw tables and
the features of its models in one run; then each model's first version (its `first_cutoff`,
which passes the gate as the first champion) and the notebooks it runs per trained version (its
model card); then its predictions, drift reports and quality from that cutoff on. So the replay
never reaches a day without a champion, and every version has its card. Notebooks run per day
are left to the daily cycle: the bootstrap's months would start a kernel per day. Each step is
skipped when the instance already holds all of its partitions, so a second `make run` starts
the UI at once.
"""

import argparse
import sys
import warnings
from datetime import timedelta

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import CATALOG, build_assets  # noqa: E402
from assets.backfill import Step, backfill_steps, prepare_instance, run_steps  # noqa: E402
from assets.catalog import Catalog  # noqa: E402
from assets.keys import model_key, notebook_key  # noqa: E402
from assets.notebook_spec import Trigger  # noqa: E402
from resources import platform_resources, settings  # noqa: E402

BOOTSTRAP_TAG = "platform/bootstrap"


def bootstrap_steps(catalog: Catalog) -> list[Step]:
    """The runs that bring every dataset and model to the day before its replay starts: each
    dataset's backfill (`assets.backfill`), with each first version's notebooks after it."""
    steps = []
    for dataset in catalog.datasets:
        last = dataset.replay_from - timedelta(days=1)
        for step in backfill_steps(catalog, dataset, dataset.first_day, last):
            steps.append(step)
            trained = [
                m for m in catalog.models_of(dataset) if model_key(m).to_user_string() in step.keys
            ]
            cards = tuple(
                notebook_key(m.name, n.name).to_user_string()
                for m in trained
                for n in m.notebooks
                if n.trigger == Trigger.VERSION
            )
            if cards:
                label = "notebooks of the first versions"
                steps.append(Step(label, cards, step.partitions, step.first, step.last))
    return steps


def run(instance: dg.DagsterInstance, catalog: Catalog, resources: dict) -> int:
    """Every step of the bootstrap not done yet; 1 when one fails."""
    print(f"Bootstrapping into {settings.data_dir()} (Dagster instance: {instance.root_directory})")
    steps = bootstrap_steps(catalog)
    tags = {BOOTSTRAP_TAG: "true"}
    return run_steps(instance, build_assets(catalog), steps, resources, tags, keep_done=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--instance-only",
        action="store_true",
        help="create the Dagster instance, its storage and its pools; materialize nothing",
    )
    instance = prepare_instance(CATALOG)
    if parser.parse_args(argv).instance_only:
        print(f"Dagster instance ready: {instance.root_directory}")
        instance.dispose()
        return 0
    return run(instance, CATALOG, platform_resources())


if __name__ == "__main__":
    sys.exit(main())
