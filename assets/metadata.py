"""Materialization metadata a person wants when browsing lineage: counts, dates, a preview."""

import re
from datetime import date

import dagster as dg
import pandas as pd
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
        "preview": dg.MetadataValue.md(markdown_table(preview)),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type)) for f in table.schema]
        ),
    }


# Characters that make inline markup, HTML or entities in Markdown, or end a table cell.
_MARKUP = re.compile(r"([\\`*_\[\]<>|~&])")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def markdown_table(frame: pd.DataFrame) -> str:
    """`frame` as a Markdown table whose cells show their text as it is: delivered values may
    hold anything, and a `|` must not cut a row, nor `**`, `<b>` or `[a](b)` become markup.
    Each markup character is escaped with a backslash; a line break becomes a space."""
    header = [_cell(column) for column in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    missing = value is None or (pd.api.types.is_scalar(value) and pd.isna(value))
    text = "" if missing else str(value)
    return _MARKUP.sub(r"\\\1", _LINE_BREAK.sub(" ", text))
