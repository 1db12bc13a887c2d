"""The ingestion factory: each raw table of a dataset copied from its source into the lake through
its contract.

Each run reads its range of days from the source a month or a million rows at a time (a landing
zone's files all at once), splits the rows by the contract (`resources.contract`) and writes one
file per day: rows that meet it to the raw table, the others to its quarantine table
`<table>_rejected` with file, row number and reasons. A blocking check reports the share of
rejected rows and stops downstream assets when a day exceeds the limit. A file that cannot be
read, or has not arrived, fails the run before anything is written. A register (a table without
days) is replaced whole by each delivery, so a delivery with no row that meets the contract (a
header-only file, say) is refused and the stored register kept, unless the run says
`allow_empty`.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import dagster as dg
import pyarrow as pa
from pydantic import Field

from assets.metadata import (
    ROW_COUNT,
    markdown_table,
    preview_metadata,
    rows_metadata,
    with_preview,
)
from assets.partitions import daily_backfill_policy, run_days
from assets.per_day import report_days
from assets.tags import asset_tags
from resources import contract
from resources.contract import Validation
from resources.dataset import FILE_DAY, REASON, SOURCE_FILE, SOURCE_ROW, Dataset, RawTable
from resources.days import describe_days
from resources.lake import Lake
from resources.landing import Landed, LandingError
from resources.read_ahead import read_ahead
from resources.sources import Sources

REJECT_RATIO = "reject_ratio"
DEFAULT_MAX_REJECT_RATIO = 0.05
REJECTS_SHOWN = 5
INGESTION = "ingestion"


class IngestionConfig(dg.Config):
    """Run config of a raw table (Launchpad: `ops: <table>: config:`)."""

    max_reject_ratio: float = Field(
        default=DEFAULT_MAX_REJECT_RATIO,
        ge=0.0,
        le=1.0,
        description=(
            "Largest share of a day's delivered rows that may be rejected before the reject_ratio "
            "check fails and blocks downstream assets."
        ),
    )


class RegisterConfig(IngestionConfig):
    """Run config of a register, a raw table without days (Launchpad: `ops: <table>: config:`)."""

    allow_empty: bool = Field(
        default=False,
        description=(
            "Replace the stored register even when the delivery has no row that meets the "
            "contract (a header-only file). Off: such a delivery is refused and the stored "
            "register kept."
        ),
    )


def build_ingestion_assets(dataset: Dataset) -> list[dg.AssetsDefinition]:
    """The raw asset of every table of `dataset`."""
    return [raw_asset(dataset, table) for table in dataset.tables]


def raw_asset(dataset: Dataset, rules: RawTable) -> dg.AssetsDefinition:
    """The ingestion asset of one raw table: daily when the table has a day column."""
    daily = rules.daily
    check = dg.AssetCheckSpec(
        REJECT_RATIO,
        asset=rules.name,
        blocking=True,
        description=(
            f"Share of delivered rows that break the contract and went to {rules.rejected_table}; "
            "fails, stopping downstream assets, when a day's share exceeds max_reject_ratio "
            f"(default {DEFAULT_MAX_REJECT_RATIO:.0%})."
        ),
    )

    @dg.asset(
        name=rules.name,
        description=f"{rules.description} Rows breaking the contract go to {rules.rejected_table}.",
        group_name=dataset.name,
        tags=asset_tags(INGESTION, dataset=dataset.name),
        partitions_def=dataset.partitions if daily else None,
        # Also on registers: `dagster asset materialize --partition-range` accepts only
        # single-run assets, and with it `--select 'group:<dataset>'` backfills every raw table,
        # registers included, in one run instead of two CLI invocations.
        backfill_policy=daily_backfill_policy() if daily else dg.BackfillPolicy.single_run(),
        kinds={"parquet"},
        check_specs=[check],
    )
    def _raw(
        context: dg.AssetExecutionContext,
        config: IngestionConfig if daily else RegisterConfig,
        sources: Sources,
        lake: Lake,
    ) -> dg.MaterializeResult:
        days = run_days(context) if daily else None
        intake = Intake()
        if days is None:
            landed, checked = ingest(sources, dataset, rules, None, None)
            if not checked.good.num_rows and not config.allow_empty:
                raise dg.Failure(
                    description=empty_register(sources, dataset, rules, lake, landed, checked),
                    allow_retries=False,
                )
            intake.add(rules, landed, checked)
            quarantine(lake, rules, checked.rejected, None)
            lake.write_table(rules.name, checked.good)
            metadata = {ROW_COUNT: dg.MetadataValue.int(checked.good.num_rows)}
            metadata |= preview_metadata(checked.good) | day_intake(rules, intake, None)
        else:
            by_day = {}
            chunks = sources.delivery_chunks(dataset, days)
            delivered = read_ahead(
                lambda chunk: ingest(sources, dataset, rules, chunk[0], chunk[-1]), chunks
            )
            for chunk, (landed, checked) in delivered:
                intake.add(rules, landed, checked)
                quarantine(lake, rules, checked.rejected, chunk)
                written = lake.write_partitions(rules.name, checked.good, rules.day_column, chunk)
                by_day |= {
                    day: values | day_intake(rules, intake, day)
                    for day, values in rows_metadata(written).items()
                }
            by_day = with_preview(by_day, checked.good, rules.day_column)
        lake.refresh_warehouse(
            [rules.name, *([rules.rejected_table] if intake.rejected_rows else [])]
        )
        result = reject_ratio_result(rules, intake, days, config.max_reject_ratio)
        if intake.rejected_rows:
            context.log.warning(result.description)
        if days is None:
            return dg.MaterializeResult(metadata=metadata, check_results=[result])
        return report_days(context, by_day, {}, [result])

    return _raw


def ingest(
    sources: Sources, dataset: Dataset, rules: RawTable, first: date | None, last: date | None
) -> tuple[Landed, Validation]:
    """The delivery of first..last, split by the contract. Missing or unreadable landing files
    fail the run here, before anything is written."""
    try:
        landed = sources.deliver(dataset, rules, first, last)
    except LandingError as error:
        raise dg.Failure(
            description=str(error),
            metadata={
                "landing_zone": dg.MetadataValue.text(error.location),
                "missing_files": dg.MetadataValue.json(error.missing),
                "unreadable_files": dg.MetadataValue.json(error.unreadable),
            },
            allow_retries=False,
        ) from None
    return landed, contract.validate(landed.rows, rules)


def empty_register(
    sources: Sources,
    dataset: Dataset,
    rules: RawTable,
    lake: Lake,
    landed: Landed,
    checked: Validation,
) -> str:
    """Why a register delivery with no good row is refused, and how to accept it anyway."""
    delivery = ", ".join(landed.files) or f"the {sources.kind_of(dataset)} source"
    rejected = checked.rejected.num_rows
    found = (
        f"all {rejected} delivered rows break the contract (first: row "
        f"{checked.rejected.column(SOURCE_ROW)[0]}, {checked.rejected.column(REASON)[0]})"
        if rejected
        else "it has no rows"
    )
    stored = (
        f"the stored register of {lake.row_count(rules.name)} rows is kept"
        if lake.store.exists(lake.table_key(rules.name))
        else "nothing was stored"
    )
    return (
        f"{rules.name}: refusing to replace the register with the delivery of {delivery}: "
        f"{found}; {stored}. To replace it with an empty register, materialize {rules.name} "
        f"with run config allow_empty: true"
    )


@dataclass
class Intake:
    """What the pieces of one run delivered and rejected, for its check and metadata."""

    delivered: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    rejected_rows: int = 0
    rejected_preview: list[pa.Table] = field(default_factory=list)
    files_read: int = 0
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)

    def add(self, rules: RawTable, landed: Landed, checked: Validation) -> None:
        """Count one piece in."""
        delivered, rejected = checked.rejected_per_day(rules.day_column)
        self.delivered += delivered
        self.rejected += rejected
        self.rejected_rows += checked.rejected.num_rows
        shown = sum(t.num_rows for t in self.rejected_preview)
        if shown < REJECTS_SHOWN and checked.rejected.num_rows:
            self.rejected_preview.append(
                checked.rejected.select([SOURCE_FILE, SOURCE_ROW, REASON]).slice(
                    0, REJECTS_SHOWN - shown
                )
            )
        self.files_read += len(landed.files)
        self.ignored_columns |= landed.ignored_columns


def quarantine(lake: Lake, rules: RawTable, rejected: pa.Table, days: list[date] | None) -> None:
    """Replace the quarantine of `days` with `rejected`. Days without rejects get no file, unless
    an earlier delivery left one: it is emptied, so a corrected redelivery clears it."""
    table = rules.rejected_table
    if days is None:
        if rejected.num_rows or lake.store.exists(lake.table_key(table)):
            lake.write_table(table, rejected)
        return
    with_rejects = set(rejected.column(FILE_DAY).to_pylist())
    stale = set(days) - set(lake.missing_partitions(table, days))
    if with_rejects | stale:
        lake.write_partitions(table, rejected, FILE_DAY, sorted(with_rejects | stale))


def reject_ratio_result(
    rules: RawTable, intake: Intake, days: list[date] | None, limit: float
) -> dg.AssetCheckResult:
    """Passes when no day's share of rejected rows exceeds `limit`."""
    delivered, rejected = intake.delivered, intake.rejected
    ratios = {
        day: rejected[day] / delivered[day] if delivered[day] else 0.0 for day in days or [None]
    }
    over = sorted(day for day, ratio in ratios.items() if ratio > limit and day is not None)
    worst = max(ratios, key=lambda day: ratios[day])
    total, bad = sum(delivered.values()), sum(rejected.values())
    where = f" on {worst}" if worst else ""
    summary = (
        f"{rules.name}: {bad} of {total} delivered rows rejected to {rules.rejected_table}; "
        f"worst share {ratios[worst]:.1%}{where}, limit {limit:.1%}"
    )
    if not total and not rules.daily:
        summary = (
            f"{rules.name}: the delivery had no rows; the register is now empty, as the run "
            "config allow_empty asked"
        )
    if over:
        summary += f"; over the limit: {describe_days(over)}"
    metadata = delivery_metadata(rules, intake) | {
        "reject_ratio": dg.MetadataValue.float(bad / total if total else 0.0),
        "worst_reject_ratio": dg.MetadataValue.float(ratios[worst]),
        "max_reject_ratio": dg.MetadataValue.float(limit),
        "rejected_rows": dg.MetadataValue.int(bad),
        "delivered_rows": dg.MetadataValue.int(total),
        "quarantine": dg.MetadataValue.text(rules.rejected_table),
    }
    if worst:
        metadata["worst_day"] = dg.MetadataValue.text(worst.isoformat())
        metadata["days_over_limit"] = dg.MetadataValue.json([d.isoformat() for d in over])
    passed = ratios[worst] <= limit
    return dg.AssetCheckResult(
        check_name=REJECT_RATIO,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=summary,
        metadata=metadata,
    )


def day_intake(rules: RawTable, intake: Intake, day: date | None) -> dict[str, dg.MetadataValue]:
    """What the contract rejected of one day's delivery (of the whole register when None)."""
    return {
        "rejected_rows": dg.MetadataValue.int(intake.rejected[day]),
        "quarantine": dg.MetadataValue.text(rules.rejected_table),
    }


def delivery_metadata(rules: RawTable, intake: Intake) -> dict[str, dg.MetadataValue]:
    """Where the rows of a run came from and what the contract rejected, for its check: each
    day's materialization says what that day holds, the check what the whole delivery was."""
    metadata = {
        "rejected_rows": dg.MetadataValue.int(intake.rejected_rows),
        "quarantine": dg.MetadataValue.text(rules.rejected_table),
    }
    if intake.files_read:
        metadata["files_read"] = dg.MetadataValue.int(intake.files_read)
    if intake.ignored_columns:
        metadata["ignored_columns"] = dg.MetadataValue.json(intake.ignored_columns)
    if intake.rejected_preview:
        table = pa.concat_tables(intake.rejected_preview).to_pandas()
        metadata["rejected_preview"] = dg.MetadataValue.md(markdown_table(table))
    return metadata
