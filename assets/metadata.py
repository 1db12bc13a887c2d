"""Materialization metadata a person wants when browsing lineage: counts, dates, a preview."""

from datetime import date

import dagster as dg
import pyarrow as pa

PREVIEW_ROWS = 5


def table_metadata(rows_per_day: dict[date, int]) -> dict[str, dg.MetadataValue]:
    """Row count, date range and rows per day of what a run wrote.

    A run over a range of days records one materialization per day, each carrying this metadata;
    the preview goes on the newest day only (`preview_on_newest_day`).
    """
    days = sorted(rows_per_day)
    return {
        "dagster/row_count": dg.MetadataValue.int(sum(rows_per_day.values())),
        "first_day": dg.MetadataValue.text(days[0].isoformat()),
        "last_day": dg.MetadataValue.text(days[-1].isoformat()),
        "partitions_written": dg.MetadataValue.int(len(days)),
        "min_rows_per_day": dg.MetadataValue.int(min(rows_per_day.values())),
        "max_rows_per_day": dg.MetadataValue.int(max(rows_per_day.values())),
    }


def preview_on_newest_day(
    context: dg.AssetExecutionContext, table: pa.Table, rows_per_day: dict[date, int]
) -> None:
    """Attach the preview and column schema to the newest day's materialization, the one the UI
    shows as latest. Attached to every day of a year's backfill, they would be serialized and
    stored 365 times, a quarter of Dagster's cost of recording the run."""
    newest = max(rows_per_day).isoformat()
    context.add_asset_metadata(preview_metadata(table), partition_key=newest)


def preview_metadata(table: pa.Table) -> dict[str, dg.MetadataValue]:
    preview = table.slice(0, PREVIEW_ROWS).to_pandas()
    return {
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type)) for f in table.schema]
        ),
    }
