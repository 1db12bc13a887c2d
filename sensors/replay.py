"""Live replay: the 2013 feed keeps arriving one day every N seconds, as a daily feed would.

Each tick requests the raw tables of the day after the newest fully ingested one; the daily cycle
(`assets/automation.py`) computes the rest of that day, the drift and quality sensors watch the
result and request retrains. A replayed day arrives whole, once it is over: its schedule, its weather
and its outcomes in one run. Predictions of D still use only what was known before D (features take
outcomes up to D-1), so they are what would have been served that morning, and quality of D follows
at once instead of a day later.

The sensor is stateless: the next day is read from the instance, and the run key `replay:<day>`
makes each day requested once. If a day's ingestion fails, the replay stops on that day (the
failure sensor says why) rather than skipping it. It waits while any run is queued or in progress,
so days never arrive faster than the machine processes them, and a retrain requested by a sensor
is in force before the next day is predicted. It stops after the last partition (2013-12-31).

Off unless `PLATFORM_REPLAY=on` (`make run` sets it): tests, backfills and production instances do
not start replaying by surprise. Its status can be changed in the UI like any sensor. With
`PLATFORM_SOURCE=landing` it does nothing: real files arrive through the landing sensor.
"""

import os
from datetime import date, timedelta

import dagster as dg

from assets.partitions import daily_partitions
from resources.source_choice import SOURCE_ENV

LIVE_REPLAY = "live_replay"
REPLAY_ENV = "PLATFORM_REPLAY"
REPLAY_SECONDS_ENV = "PLATFORM_REPLAY_SECONDS"
DEFAULT_REPLAY_SECONDS = 20
RAW_TABLES = [
    dg.AssetKey("raw_flights"),
    dg.AssetKey("raw_weather"),
    dg.AssetKey("flight_outcomes"),
]
TRIGGER_TAG = "platform/trigger"
LAST_DAY = date.fromisoformat(daily_partitions.get_last_partition_key())
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def seconds_from_env(variable: str, default: int) -> int:
    """A positive number of seconds from `variable`, or `default` when it is unset."""
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        seconds = int(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not a whole number of seconds") from None
    if seconds < 1:
        raise ValueError(f"{variable}={raw!r}: at least 1 second is required")
    return seconds


def replay_default_status() -> dg.DefaultSensorStatus:
    """Running when `PLATFORM_REPLAY=on`, stopped when it is `off` or unset."""
    value = os.environ.get(REPLAY_ENV, "").strip().lower() or "off"
    if value not in ("on", "off"):
        raise ValueError(f"{REPLAY_ENV}={value!r}: expected 'on' or 'off'")
    return dg.DefaultSensorStatus.RUNNING if value == "on" else dg.DefaultSensorStatus.STOPPED


def newest_ingested_day(instance: dg.DagsterInstance) -> date | None:
    """The newest day of which every raw table is materialized; None before any is."""
    newest = []
    for key in RAW_TABLES:
        partitions = instance.get_materialized_partitions(key)
        if not partitions:
            return None
        newest.append(max(partitions))
    return date.fromisoformat(min(newest))


def next_replay_request(instance: dg.DagsterInstance) -> dg.RunRequest | dg.SkipReason:
    """The run bringing the next day of the feed, or why there is none now."""
    if os.environ.get(SOURCE_ENV, "").strip().lower() == "landing":
        return dg.SkipReason(
            f"{SOURCE_ENV}=landing: days arrive as files through the landing sensor, not by replay"
        )
    newest = newest_ingested_day(instance)
    if newest is None:
        return dg.SkipReason("no day is ingested yet: bootstrap the platform first (make run)")
    if newest >= LAST_DAY:
        return dg.SkipReason(f"the feed ends on {LAST_DAY}, which is ingested: replay finished")
    day = newest + timedelta(days=1)
    busy = instance.get_runs_count(dg.RunsFilter(statuses=UNFINISHED))
    if busy:
        return dg.SkipReason(f"{busy} run(s) queued or in progress; {day} arrives when they end")
    return dg.RunRequest(
        run_key=f"replay:{day}",
        partition_key=day.isoformat(),
        asset_selection=RAW_TABLES,
        tags={TRIGGER_TAG: "replay"},
    )


@dg.sensor(
    name=LIVE_REPLAY,
    minimum_interval_seconds=seconds_from_env(REPLAY_SECONDS_ENV, DEFAULT_REPLAY_SECONDS),
    default_status=replay_default_status(),
    target=dg.AssetSelection.assets(*RAW_TABLES),
    description=(
        "Replays the 2013 feed: each tick ingests the raw tables of the day after the newest "
        f"ingested one (every ${REPLAY_SECONDS_ENV} seconds, default {DEFAULT_REPLAY_SECONDS}), "
        "waiting while runs are in progress. On when PLATFORM_REPLAY=on (make run sets it)."
    ),
)
def live_replay(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    return next_replay_request(context.instance)
