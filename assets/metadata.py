"""Materialization metadata a person wants when browsing lineage: counts, dates, a preview."""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

PREVIEW_ROWS = 5
ROW_COUNT = "dagster/row_count"


def rows_metadata(rows_per_day: dict[date, int]) -> dict[date, dict[str, dg.MetadataValue]]:
    """Each day's own row count, for its own materialization: a run over a range records one
    materialization per day, and each says what that day holds."""
    return {day: {ROW_COUNT: dg.MetadataValue.int(rows)} for day, rows in rows_per_day.items()}


def with_preview(
    metadata: dict[date, dict[str, dg.MetadataValue]], table: pa.Table, day_column: str
) -> dict[date, dict[str, dg.MetadataValue]]:
    """`metadata` with the preview and column schema of the newest day's rows (of `table`, which
    holds them) on that day, the one the UI shows as latest. Attached to every day of a year's
    backfill, they would be serialized and stored 365 times, a quarter of Dagster's cost of
    recording the run."""
    if not metadata:
        return metadata
    newest = max(metadata)
    rows = table.filter(
        pc.equal(table.column(day_column), pa.scalar(newest, table.schema.field(day_column).type))
    )
    return metadata | {newest: {**metadata[newest], **preview_metadata(rows)}}


def preview_metadata(table: pa.Table) -> dict[str, dg.MetadataValue]:
    preview = table.slice(0, PREVIEW_ROWS).to_pandas()
    return {
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type)) for f in table.schema]
        ),
    }
