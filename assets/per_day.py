"""Each day of a run stands on its own: its own metadata, and its own success or failure.

A run over a range of days (a backfill, or a daily asset a person asked for several days of)
computes every day whose inputs exist and records one materialization per day carrying that
day's figures, so that Dagster's partition plots and the sensors see each day as it is. Days whose
inputs are missing are not computed: the run fails naming each of them and what it lacks, and the
days it did compute stay materialized (Dagster's backfills count them as done).
"""

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import dagster as dg

from resources.days import describe_days
from resources.lake import Lake

# A failure lists at most this many days with what each lacks; the rest are counted.
DAYS_LISTED = 10
# Metadata of a failed run: the days that lack inputs, and those that were materialized.
FAILED_DAYS = "failed_days"
MATERIALIZED_DAYS = "materialized_days"

DayMetadata = Mapping[date, Mapping[str, dg.MetadataValue]]


def lacking_inputs(
    lake: Lake, needs: Mapping[date, Mapping[str, Sequence[date] | None]]
) -> dict[date, list[str]]:
    """What each day lacks of the lake partitions it reads: `needs[day][table]` lists the days of
    `table` that day reads (None: the whole unpartitioned table). Days lacking nothing are left
    out; the others map to phrases such as 'flight_outcomes 2013-04-15, 2013-04-16'. Each table
    is listed once."""
    daily: dict[str, set[date]] = {}
    registers = set()
    for per_table in needs.values():
        for table, days in per_table.items():
            if days is None:
                registers.add(table)
            else:
                daily.setdefault(table, set()).update(days)
    absent = {t for t in registers if not lake.store.exists(lake.table_key(t))}
    missing = {t: set(lake.missing_partitions(t, sorted(days))) for t, days in daily.items()}
    lacking = {}
    for day, per_table in needs.items():
        phrases = []
        for table, days in per_table.items():
            if days is None:
                if table in absent:
                    phrases.append(f"{table} (not in the lake)")
            elif gaps := sorted(d for d in days if d in missing[table]):
                phrases.append(f"{table} {describe_days(gaps)}")
        if phrases:
            lacking[day] = phrases
    return lacking


def merged(*lackings: Mapping[date, Sequence[str]]) -> dict[date, list[str]]:
    """What each day lacks, gathered from several checks."""
    lacking: dict[date, list[str]] = {}
    for found in lackings:
        for day, phrases in found.items():
            lacking.setdefault(day, []).extend(phrases)
    return lacking


def consecutive(days: Sequence[date]) -> list[list[date]]:
    """`days` (sorted) cut into runs of consecutive days, which are read and written set-wise."""
    runs: list[list[date]] = []
    for day in days:
        if runs and runs[-1][-1] + timedelta(days=1) == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def report_days(
    context: dg.AssetExecutionContext,
    metadata: DayMetadata,
    lacking: Mapping[date, Sequence[str]],
    check_results: Sequence[dg.AssetCheckResult] = (),
    consequence: str = "",
) -> dg.MaterializeResult:
    """The result of a run that computed the days of `metadata`, each with its own metadata.

    When some days lack inputs, the computed days are recorded as materialized one by one and the
    run fails naming the others and what each lacks (`consequence` adds what that means, such as
    which champion keeps serving)."""
    if not lacking:
        for day, values in metadata.items():
            context.add_asset_metadata(dict(values), partition_key=day.isoformat())
        return dg.MaterializeResult(check_results=list(check_results))
    key = context.asset_key
    for day, values in sorted(metadata.items()):
        context.log_event(
            dg.AssetMaterialization(asset_key=key, partition=day.isoformat(), metadata=values)
        )
    for result in check_results:
        context.log_event(
            dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=result.check_name,
                passed=result.passed,
                metadata=result.metadata,
                severity=result.severity,
                description=result.description,
            )
        )
    raise dg.Failure(
        description=lacking_message(key, lacking, sorted(metadata), consequence),
        metadata={
            FAILED_DAYS: dg.MetadataValue.json([d.isoformat() for d in sorted(lacking)]),
            MATERIALIZED_DAYS: dg.MetadataValue.json([d.isoformat() for d in sorted(metadata)]),
        },
        allow_retries=False,
    )


def lacking_message(
    key: dg.AssetKey,
    lacking: Mapping[date, Sequence[str]],
    materialized: Sequence[date],
    consequence: str = "",
) -> str:
    """Which days were not computed and what each lacks; which were."""
    failed = sorted(lacking)
    lines = [
        f"{key.to_user_string()}: {describe_days(failed)} not materialized, for lack of their "
        "inputs; "
        + (f"{describe_days(list(materialized))} materialized" if materialized else "none was")
        + (f". {consequence}" if consequence else "")
    ]
    lines += [f"  {day}: lacks {'; '.join(lacking[day])}" for day in failed[:DAYS_LISTED]]
    if len(failed) > DAYS_LISTED:
        lines.append(f"  ... and {len(failed) - DAYS_LISTED} more days")
    return "\n".join(lines)
