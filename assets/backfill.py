"""The runs that backfill a dataset's daily graph over a range of days, all in one process.

A backfill of the whole graph cannot be one Dagster run: the models are trained at a few cutoffs,
not on every day, and what a champion serves needs that champion first. So it is a few runs in
order, each over its whole range (every daily asset backfills a range in one run):

1. the dataset's registers, raw tables and the features of its models, over the range; when
   the first training cutoff falls within it, over the days before that cutoff only;
2. each model at each training cutoff in the range: its first cutoff (the version `make run`
   trains), and with a cadence the first day of every third month or of every month after it;
   beside the first models, which read only the days before their cutoff, the raw tables and
   features of the days from it on;
3. predictions and quality of each model, from the first day it has a champion, and beside
   them its drift reports, which read the features and the champion but not the predictions.

Notebooks are not part of it: they run in runs of their own after what they follow
(`assets.automation`), and nothing else reads them.

The runs are those `dagster asset materialize --partition-range` would launch, with the same
partitions, events and metadata in the instance, but started from this process: the code
location loads once rather than once per run, which is a few seconds of every run's start.

Most of a run is one Python thread, so work that shares nothing runs side by side on a machine
of several cores: datasets (`side_by_side`), and within a dataset a step that does not need the
one before it (`Step.beside_previous`), in a child process that runs when that step starts
(`run_steps`'s `beside`, `Companion`).
"""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import dagster as dg

from assets.catalog import Catalog
from assets.keys import drift_key, features_key, model_key, predictions_key, quality_key
from assets.model_pipeline import training_pool
from assets.model_spec import ModelSpec
from resources import settings
from resources.dataset import Dataset, RawTable
from resources.instance_storage import install_instance_config
from sensors.run_tags import RANGE_END_TAG, RANGE_START_TAG

# Months between training cutoffs after each model's first: `first` trains the first versions only.
CADENCES = {"first": 0, "quarterly": 3, "monthly": 1}
# Steps log warnings and errors only: the command prints one line per run.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class Step:
    """One run: `keys` over the days first..last, those of `unpartitioned` (the registers)
    whole."""

    label: str
    keys: tuple[str, ...]
    partitions: dg.PartitionsDefinition
    first: date
    last: date
    unpartitioned: tuple[str, ...] = ()
    beside_previous: bool = False  # needs nothing of the step before it: may run beside it

    @property
    def span(self) -> str:
        return f" {self.first}..{self.last}"


def backfill_steps(
    catalog: Catalog,
    dataset: Dataset,
    first: date,
    last: date,
    models: Sequence[ModelSpec] | None = None,
    cadence: str = "first",
) -> list[Step]:
    """The runs that backfill `dataset` over first..last, with all its models or `models` (and
    the features they read, when another model computes them)."""
    if not dataset.first_day <= first <= last <= dataset.last_day:
        raise ValueError(
            f"{dataset.name}: the days {first}..{last} are not within its partitions "
            f"{dataset.first_day}..{dataset.last_day}"
        )
    chosen = list(catalog.models_of(dataset) if models is None else models)
    computing = {catalog.features_owner(m).name: catalog.features_owner(m) for m in chosen}
    registers = names(dataset.registers)
    daily = names(dataset.daily_tables) + tuple(
        features_key(m).to_user_string() for m in computing.values()
    )

    def step(label: str, keys: tuple[str, ...], start: date, end: date, **kind: Any) -> Step:
        return Step(f"{dataset.name}: {label}", keys, dataset.partitions, start, end, **kind)

    cutoffs = training_cutoffs(catalog, chosen, first, last, cadence)
    # The first models train on the days before their cutoff only: when the range holds such
    # days, the days from the cutoff on are ingested in a run of their own, beside the models.
    # The models come first: the process that trains them has scikit-learn and skops loaded
    # when it scores, after, while the ingestion needs neither.
    earliest = min(cutoffs, default=first)
    split = earliest > first
    ingested = earliest - timedelta(days=1) if split else last
    steps = [
        step(
            "registers, raw tables and features",
            registers + daily,
            first,
            ingested,
            unpartitioned=registers,
        )
    ]
    for cutoff, trained in cutoffs.items():
        keys = tuple(model_key(m).to_user_string() for m in trained)
        steps.append(step("models", keys, cutoff, cutoff))
        if split and cutoff == earliest:
            steps.append(
                step("raw tables and features", daily, earliest, last, beside_previous=True)
            )
    serving: dict[date, list[ModelSpec]] = {}
    for spec in chosen:
        start = max(first, catalog.first_cutoff(spec))
        if start <= last:
            serving.setdefault(start, []).append(spec)
    for start, specs in sorted(serving.items()):
        served = names(k for m in specs for k in (predictions_key(m), quality_key(m)))
        steps += [
            step("predictions, quality", served, start, last),
            step(
                "drift reports",
                names(drift_key(m) for m in specs),
                start,
                last,
                beside_previous=True,
            ),
        ]
    return steps


def training_cutoffs(
    catalog: Catalog, models: Sequence[ModelSpec], first: date, last: date, cadence: str
) -> dict[date, list[ModelSpec]]:
    """The cutoffs in first..last and the models trained at each: every model at its first
    cutoff, then, every `CADENCES[cadence]` months, every model that has one by then."""
    cutoffs: dict[date, list[ModelSpec]] = {}
    for spec in models:
        if first <= catalog.first_cutoff(spec) <= last:
            cutoffs.setdefault(catalog.first_cutoff(spec), []).append(spec)
    months = CADENCES[cadence]
    if months and models:
        day = month_start_after(max(catalog.first_cutoff(m) for m in models))
        while day <= last:
            if day >= first:
                trained = cutoffs.setdefault(day, [])
                trained += [m for m in models if m not in trained]
            day = add_months(day, months)
    return dict(sorted(cutoffs.items()))


def month_start_after(day: date) -> date:
    """`day` when it is the first of its month, else the first of the next month."""
    return day if day.day == 1 else add_months(day.replace(day=1), 1)


def add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def names(things: Iterable[RawTable | dg.AssetKey]) -> tuple[str, ...]:
    """Tables by name, asset keys as a user writes them."""
    return tuple(t.to_user_string() if isinstance(t, dg.AssetKey) else t.name for t in things)


def prepare_instance(catalog: Catalog, reconfigure: bool = True) -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME (else one under the data folder), configured from
    platform/dagster.yaml, with its storage created and the training pool of each of the
    catalog's models limited. Without `reconfigure`, a DAGSTER_HOME configured already (a
    production instance's `dagster.yaml`) is used as it is.

    Opening an instance creates its SQLite databases and their schema, and processes doing so at
    once race (`alembic ... more than one head`); so the instance is created here, in one
    process, before `dagster dev` or parallel CLI runs may open it. A pool gets its default
    limit only once the run queue has seen a run that holds it, and the queue starts that first
    run whatever holds the pool already; limited here, the pool holds from the first run on.
    """
    home = settings.dagster_home()
    os.environ[settings.DAGSTER_HOME_ENV] = str(home)  # DagsterInstance.get() reads it
    if reconfigure or not (home / "dagster.yaml").exists():
        install_instance_config(home)
    instance = dg.DagsterInstance.get()
    for spec in catalog.models:
        instance.event_log_storage.initialize_concurrency_limit_to_default(training_pool(spec))
    return instance


def already_done(instance: dg.DagsterInstance, step: Step) -> bool:
    """Whether the instance holds every partition the step would materialize."""
    wanted = set(
        step.partitions.get_partition_keys_in_range(
            dg.PartitionKeyRange(step.first.isoformat(), step.last.isoformat())
        )
    )
    for key in step.keys:
        asset_key = dg.AssetKey.from_user_string(key)
        if key in step.unpartitioned:
            if instance.get_latest_materialization_event(asset_key) is None:
                return False
        elif not wanted <= instance.get_materialized_partitions(asset_key):
            return False
    return True


class Companion:
    """A step run by a child process beside the step before it. The child is started ahead of
    its turn (see `run_steps`), so that its start (importing Dagster and loading the code
    location, about 2 s) overlaps the steps before; it then waits for a line on its standard
    input (`await_turn`), and an end of input tells it to leave without running."""

    def __init__(self, command: Sequence[str]):
        self.process = subprocess.Popen(list(command), stdin=subprocess.PIPE)

    def start(self) -> None:
        self._close(b"\n")

    def cancel(self) -> None:
        self._close(b"")

    def wait(self) -> int:
        return self.process.wait()

    def _close(self, line: bytes) -> None:
        pipe = self.process.stdin
        if pipe is None or pipe.closed:
            return
        try:
            pipe.write(line)
            pipe.close()
        except BrokenPipeError:  # the child is gone already: its exit code says why
            pass


def await_turn() -> bool:
    """In a companion's child: wait for the command that started it; False when it stopped
    before this step's turn."""
    return bool(sys.stdin.readline())


def run_steps(
    instance: dg.DagsterInstance,
    every_asset: Sequence[dg.AssetsDefinition],
    steps: Sequence[Step],
    resources: Mapping[str, object],
    tags: Mapping[str, str],
    *,
    keep_done: bool = False,
    beside: Callable[[int], Sequence[str]] | None = None,
    only: int | None = None,
) -> int:
    """Each step as one run, in order, printing a line per run; 1 at the first that fails.
    With `keep_done`, a step whose partitions all exist already is skipped. With `beside`, the
    command that runs step i alone (`only` i), a step that may run beside the one before it
    runs in a child process (`Companion`) started with that step, and is waited for before the
    next."""
    if only is not None:
        return run_step(instance, every_asset, steps, only, resources, tags, keep_done, [])
    groups: list[list[int]] = []  # a step run here, then those run beside it
    for index, step in enumerate(steps):
        if beside is not None and step.beside_previous and groups:
            groups[-1].append(index)
        else:
            groups.append([index])
    started: dict[int, Companion] = {}

    def prepare(number: int) -> None:
        """Start the children of group `number`'s companions, to wait for their turn."""
        if beside is None or number >= len(groups):
            return
        for index in groups[number][1:]:
            if index not in started:
                started[index] = Companion(beside(index))

    try:
        for number, (lead, *companions) in enumerate(groups):
            prepare(number)
            # The next group's children start ahead of their turn: with this step when it runs
            # alone, else once its own run is done, not to wait idle beside the busiest steps.
            if not companions:
                prepare(number + 1)
            code = run_step(
                instance,
                every_asset,
                steps,
                lead,
                resources,
                tags,
                keep_done,
                [started[i] for i in companions],
                then=lambda number=number: prepare(number + 1),
            )
            if code:
                return code
    finally:
        for companion in started.values():
            companion.cancel()
            companion.wait()
    return 0


def run_step(
    instance: dg.DagsterInstance,
    every_asset: Sequence[dg.AssetsDefinition],
    steps: Sequence[Step],
    index: int,
    resources: Mapping[str, object],
    tags: Mapping[str, str],
    keep_done: bool,
    companions: Sequence[Companion],
    then: Callable[[], None] = lambda: None,
) -> int:
    """Step `index` as one run in this process, its `companions` started with it and waited
    for, `then` called between its run's end and theirs; 1 when any of them fails."""
    step = steps[index]
    prefix = f"[{index + 1}/{len(steps)}] {step.label}{step.span}"
    for number, companion in enumerate(companions, start=index + 2):
        print(f"[{number}/{len(steps)}] {steps[number - 1].label}: beside it", flush=True)
        companion.start()
    if keep_done and already_done(instance, step):
        print(f"{prefix}: already materialized, kept")
        then()
        return int(any(companion.wait() for companion in companions))
    print(f"{prefix}: materializing ...", flush=True)
    started = time.perf_counter()
    span = {RANGE_START_TAG: step.first.isoformat(), RANGE_END_TAG: step.last.isoformat()}
    result = dg.materialize(
        every_asset,
        selection=list(step.keys),
        instance=instance,
        resources=resources,
        tags={**tags, **span},
        run_config=QUIET,
        raise_on_error=False,
    )
    then()
    failed = [companion for companion in companions if companion.wait() != 0]
    if not result.success:
        print(f"{prefix}: FAILED; see run {result.run_id} in the UI", file=sys.stderr)
        return 1
    print(f"{prefix}: done in {time.perf_counter() - started:.1f}s", flush=True)
    return int(bool(failed))


def side_by_side(own: Callable[[], int], commands: Sequence[Sequence[str]], at_once: int) -> int:
    """`own` in this process while `commands` run as child processes, at most `at_once` of
    all of them at a time (`own` included); 0 when every one succeeded, else 1. Each child
    writes to this process's terminal, and is waited for even when `own` fails."""
    with ThreadPoolExecutor(max(1, at_once - 1)) as pool:
        children = [pool.submit(subprocess.call, list(command)) for command in commands]
        codes = [own()]
        codes += [child.result() for child in children]
    return int(any(codes))
