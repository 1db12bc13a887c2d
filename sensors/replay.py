"""Live replay: a dataset's bundled days keep arriving one every N seconds, as a daily feed would.

Each tick requests the raw daily tables of the oldest day, from the dataset's `replay_from` on,
that is not ingested yet; the daily cycle (`assets/automation.py`) computes the rest of that day,
the drift and quality sensors watch the result and request retrains. A replayed day arrives
whole, once it is over: for the flights, its schedule, its weather and its outcomes in one run.
Predictions of D still use only what was known before D (features read past labels only), so
they are what would have been served that morning, and quality of D follows at once.

The oldest missing day, not the day after the newest: a backfill ahead of the replay fills days
the replay then passes over, and never makes it skip the days between. The run key
`replay:<dataset>:<day>` makes each day requested once: if a day's ingestion fails, the replay
stops on that day (the failure sensor says why) rather than skipping it. It waits while any run
is queued or in progress, so days never arrive faster than the machine processes them, and a
retrain requested by a sensor is in force before the next day is predicted. It stops after the
dataset's last day.

Off unless `PLATFORM_REPLAY=on` (`make run` sets it): tests, backfills and production instances do
not start replaying by surprise. Its status can be changed in the UI like any sensor. A dataset
whose source is the landing zone is not replayed: its files arrive through its landing sensor.
"""

from datetime import date

import dagster as dg

from resources import settings
from resources.dataset import Dataset
from resources.days import days_between
from resources.sources import Sources
from sensors.run_tags import TRIGGER_TAG, Trigger

UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def replay_sensor_name(dataset: Dataset) -> str:
    return f"{dataset.name}_replay"


def daily_keys(dataset: Dataset) -> list[dg.AssetKey]:
    return [dg.AssetKey(table.name) for table in dataset.daily_tables]


def ingested_days(instance: dg.DagsterInstance, dataset: Dataset) -> set[date]:
    """The days of which every daily raw table of `dataset` is materialized."""
    found = None
    for key in daily_keys(dataset):
        days = {date.fromisoformat(p) for p in instance.get_materialized_partitions(key)}
        found = days if found is None else found & days
    return found or set()


def newest_ingested_day(instance: dg.DagsterInstance, dataset: Dataset) -> date | None:
    """The newest day of which every daily raw table of `dataset` is materialized."""
    return max(ingested_days(instance, dataset), default=None)


def next_replay_request(
    instance: dg.DagsterInstance, dataset: Dataset, sources: Sources
) -> dg.RunRequest | dg.SkipReason:
    """The run bringing the next day of the dataset's feed, or why there is none now."""
    if sources.kind_of(dataset) == "landing":
        return dg.SkipReason(
            f"{dataset.name} comes from the landing zone: its days arrive as files through the "
            "landing sensor, not by replay"
        )
    ingested = ingested_days(instance, dataset)
    if not ingested:
        return dg.SkipReason(
            f"no day of {dataset.name} is ingested yet: bootstrap the platform first (make run)"
        )
    missing = [d for d in days_between(dataset.replay_from, dataset.last_day) if d not in ingested]
    if not missing:
        return dg.SkipReason(
            f"{dataset.name}'s feed ends on {dataset.last_day}, and every day is ingested: "
            "replay finished"
        )
    day = missing[0]
    busy = instance.get_runs_count(dg.RunsFilter(statuses=UNFINISHED))
    if busy:
        return dg.SkipReason(f"{busy} run(s) queued or in progress; {day} arrives when they end")
    return dg.RunRequest(
        run_key=f"replay:{dataset.name}:{day}",
        partition_key=day.isoformat(),
        asset_selection=daily_keys(dataset),
        tags={TRIGGER_TAG: Trigger.REPLAY},
    )


def build_replay_sensor(dataset: Dataset) -> dg.SensorDefinition:
    seconds = settings.replay_seconds()

    @dg.sensor(
        name=replay_sensor_name(dataset),
        minimum_interval_seconds=seconds,
        default_status=(
            dg.DefaultSensorStatus.RUNNING
            if settings.replay_on()
            else dg.DefaultSensorStatus.STOPPED
        ),
        target=dg.AssetSelection.assets(*daily_keys(dataset)),
        description=(
            f"Replays {dataset.name}'s bundled days from {dataset.replay_from}: each tick "
            f"ingests the oldest day not ingested yet (every {seconds} s, "
            f"${settings.REPLAY_SECONDS_ENV}), waiting while runs are in progress. On when "
            f"{settings.REPLAY_ENV}=on (make run sets it)."
        ),
    )
    def replay(
        context: dg.SensorEvaluationContext, sources: Sources
    ) -> dg.RunRequest | dg.SkipReason:
        return next_replay_request(context.instance, dataset, sources)

    return replay
