"""The one daily partitioning every dated asset shares, and helpers to turn a run into days."""

from datetime import date, timedelta

import dagster as dg

FIRST_DAY = date(2013, 1, 1)
# A run over a range of days reads and writes it at most this many days at a time: one query per
# month keeps the work set-wise while bounding memory (about 3 M flights at 100 times the
# bundled volume), and each day's rows do not depend on how the range was cut.
CHUNK_DAYS = 31
# A range of a large volume is cut further, to about this many flights a piece: a month at 100
# times the bundled volume took 3 GiB to generate, check and write.
CHUNK_ROWS = 1_000_000
# The bundled source covers 2013; a fixed end keeps the partition list from growing to today.
daily_partitions = dg.DailyPartitionsDefinition(start_date="2013-01-01", end_date="2014-01-01")


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, inclusive."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def chunked(days: list[date], size: int = CHUNK_DAYS) -> list[list[date]]:
    """`days` cut into consecutive pieces of at most `size` days."""
    return [days[i : i + size] for i in range(0, len(days), size)]


def days_per_chunk(rows_per_day: int) -> int:
    """Days of `rows_per_day` rows that fit in `CHUNK_ROWS`: at least one, at most `CHUNK_DAYS`."""
    return max(1, min(CHUNK_DAYS, CHUNK_ROWS // max(1, rows_per_day)))


def row_chunks(days: list[date], rows: int) -> list[list[date]]:
    """`days`, holding `rows` flights in all, cut into pieces of a month or about `CHUNK_ROWS`
    flights, whichever is fewer days."""
    return chunked(days, days_per_chunk(rows // max(1, len(days))))


def run_days(context: dg.AssetExecutionContext) -> list[date]:
    """The days a run materializes: one partition, or a whole range in a single-run backfill."""
    window = context.partition_time_window
    return days_between(window.start.date(), window.end.date() - timedelta(days=1))


def preceding_days(day: date, count: int) -> list[date]:
    """The `count` days before `day` (never `day` itself), clipped to the first partition."""
    return days_between(max(FIRST_DAY, day - timedelta(days=count)), day - timedelta(days=1))


def preceding_window(offset_days: int) -> dg.TimeWindowPartitionMapping:
    """Lineage of 'the `offset_days` days before D', tolerating days before the first partition."""
    return dg.TimeWindowPartitionMapping(
        start_offset=-offset_days, end_offset=-1, allow_nonexistent_upstream_partitions=True
    )
