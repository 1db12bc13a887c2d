"""Bootstrap the embedded default: a local Dagster instance, and every declared dataset and model
materialized up to the day its live replay starts.

Run by `make run` (`platform/run.py`) before it serves the UI. For each dataset, from its first day to the day before
`replay_from`: its registers, its raw daily tables, the features of its models; then each model's
first version (its `first_cutoff`, which passes the gate as the first champion), the notebooks
it runs per trained version (its model card) for that version, and its predictions, drift
reports and quality from that cutoff on. So the replay never reaches a day without a champion,
and every version has its card. Notebooks run per day are left to the daily cycle: the
bootstrap's months would start a kernel per day. Each step is skipped when the instance already holds all of its partitions,
so a second `make run` starts the UI at once.
"""

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import CATALOG, build_assets  # noqa: E402
from assets.catalog import Catalog  # noqa: E402
from assets.keys import features_key, model_key, notebook_key, served_keys  # noqa: E402
from assets.model_pipeline import training_pool  # noqa: E402
from assets.notebook_spec import Trigger  # noqa: E402
from resources import platform_resources, settings  # noqa: E402
from resources.instance_storage import install_instance_config  # noqa: E402
from sensors.run_tags import RANGE_END_TAG, RANGE_START_TAG  # noqa: E402

BOOTSTRAP_TAG = "platform/bootstrap"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class Step:
    """One run of the bootstrap: `keys` over the days first..last (None: unpartitioned)."""

    label: str
    keys: tuple[str, ...]
    partitions: dg.PartitionsDefinition | None = None
    first: date | None = None
    last: date | None = None

    @property
    def span(self) -> str:
        return f" {self.first}..{self.last}" if self.first else ""


def bootstrap_steps(catalog: Catalog) -> list[Step]:
    """The runs that bring every dataset and model to the day before its replay starts."""
    steps = []
    for dataset in catalog.datasets:
        first, last = dataset.first_day, dataset.replay_from - timedelta(days=1)
        models = catalog.models_of(dataset)
        if dataset.registers:
            steps.append(Step(f"{dataset.name}: registers", names(dataset.registers)))
        daily = dataset.partitions
        steps.append(
            Step(f"{dataset.name}: raw tables", names(dataset.daily_tables), daily, first, last)
        )
        computed = [features_key(m).to_user_string() for m in models if not m.features_from]
        if computed:
            steps.append(Step(f"{dataset.name}: features", tuple(computed), daily, first, last))
        cutoffs = {m.name: catalog.first_cutoff(m) for m in models}
        for cutoff in sorted(set(cutoffs.values())):
            starting = [m for m in models if cutoffs[m.name] == cutoff]
            models_keys = tuple(model_key(m).to_user_string() for m in starting)
            steps.append(Step("first model versions", models_keys, daily, cutoff, cutoff))
            cards = tuple(
                notebook_key(m.name, n.name).to_user_string()
                for m in starting
                for n in m.notebooks
                if n.trigger == Trigger.VERSION
            )
            if cards:
                steps.append(Step("notebooks of the first versions", cards, daily, cutoff, cutoff))
            served = tuple(key.to_user_string() for m in starting for key in served_keys(m))
            steps.append(Step("predictions, drift reports, quality", served, daily, cutoff, last))
    return steps


def names(tables) -> tuple[str, ...]:
    return tuple(t.name for t in tables)


def prepare_instance(catalog: Catalog) -> dg.DagsterInstance:
    """A DAGSTER_HOME under the data folder, configured from platform/dagster.yaml, with its
    storage created and the training pool of each of the catalog's models limited.

    Opening an instance creates its SQLite databases and their schema, and processes doing so at
    once race (`alembic ... more than one head`); so the instance is created here, in one
    process, before `dagster dev` or parallel CLI runs may open it. A pool gets its default
    limit only once the run queue has seen a run that holds it, and the queue starts that first
    run whatever holds the pool already; limited here, the pool holds from the first run on.
    """
    home = settings.dagster_home()
    os.environ[settings.DAGSTER_HOME_ENV] = str(home)  # DagsterInstance.get() reads it
    install_instance_config(home)
    instance = dg.DagsterInstance.get()
    for spec in catalog.models:
        instance.event_log_storage.initialize_concurrency_limit_to_default(training_pool(spec))
    return instance


def already_done(instance: dg.DagsterInstance, step: Step) -> bool:
    for key in step.keys:
        asset_key = dg.AssetKey.from_user_string(key)
        if step.partitions is None:
            if instance.get_latest_materialization_event(asset_key) is None:
                return False
            continue
        wanted = set(
            step.partitions.get_partition_keys_in_range(
                dg.PartitionKeyRange(step.first.isoformat(), step.last.isoformat())
            )
        )
        if not wanted <= instance.get_materialized_partitions(asset_key):
            return False
    return True


def run(instance: dg.DagsterInstance, catalog: Catalog, resources: dict) -> int:
    """Every step of the bootstrap not done yet; 1 when one fails."""
    every_asset = build_assets(catalog)
    steps = bootstrap_steps(catalog)
    print(f"Bootstrapping into {settings.data_dir()} (Dagster instance: {instance.root_directory})")
    for number, step in enumerate(steps, start=1):
        prefix = f"[{number}/{len(steps)}] {step.label}{step.span}"
        if already_done(instance, step):
            print(f"{prefix}: already materialized, kept")
            continue
        print(f"{prefix}: materializing ...", flush=True)
        started = time.perf_counter()
        tags = {BOOTSTRAP_TAG: "true"}
        if step.first:
            tags |= {RANGE_START_TAG: step.first.isoformat(), RANGE_END_TAG: step.last.isoformat()}
        result = dg.materialize(
            every_asset,
            selection=list(step.keys),
            instance=instance,
            resources=resources,
            tags=tags,
            run_config=QUIET,
            raise_on_error=False,
        )
        if not result.success:
            print(f"{prefix}: FAILED; see run {result.run_id} in the UI", file=sys.stderr)
            return 1
        print(f"{prefix}: done in {time.perf_counter() - started:.1f}s")
    return 0


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
