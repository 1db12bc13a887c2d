"""Daily partitions in a run: the days a run covers, and the windows of days an asset reads."""

from datetime import date, timedelta

import dagster as dg

from resources import settings
from resources.days import days_between


def daily_backfill_policy() -> dg.BackfillPolicy:
    """How a backfill of a daily asset runs: a whole range in one run, set-wise, unless the
    deployment splits it into runs of PLATFORM_BACKFILL_DAYS_PER_RUN days, which a pool of workers
    executes side by side under the run queue's limits. Each day's rows do not depend on the
    split."""
    days = settings.backfill_days_per_run()
    if days is None:
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=days)


def run_days(context: dg.AssetExecutionContext) -> list[date]:
    """The days a run materializes: one partition, or a whole range in a single-run backfill."""
    window = context.partition_time_window
    return days_between(window.start.date(), window.end.date() - timedelta(days=1))


def preceding_days(day: date, count: int, first_day: date) -> list[date]:
    """The `count` days before `day` (never `day` itself), clipped to `first_day`."""
    return days_between(max(first_day, day - timedelta(days=count)), day - timedelta(days=1))


def window_mapping(lookback_days: int, same_day: bool) -> dg.PartitionMapping | None:
    """Lineage of 'day D and/or the `lookback_days` days before it', tolerating days before the
    first partition; None for D alone (Dagster's identity mapping)."""
    if lookback_days == 0:
        return None
    return dg.TimeWindowPartitionMapping(
        start_offset=-lookback_days,
        end_offset=0 if same_day else -1,
        allow_nonexistent_upstream_partitions=True,
    )


def preceding_window(offset_days: int) -> dg.TimeWindowPartitionMapping:
    """Lineage of 'the `offset_days` days before D' (never D)."""
    return window_mapping(offset_days, same_day=False)
