"""Materialization metadata a person wants when browsing lineage: counts, dates, a preview."""

import re
from collections.abc import Iterable
from datetime import date

import dagster as dg
import pandas as pd
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
    return markdown_rows(frame.columns, frame.itertuples(index=False))


def markdown_rows(header: Iterable[object], rows: Iterable[Iterable[object]]) -> str:
    """`markdown_table` of the table whose column names are `header` and rows `rows`."""
    names = [_cell(column) for column in header]
    lines = ["| " + " | ".join(names) + " |", "|" + "|".join(" --- " for _ in names) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    missing = value is None or (pd.api.types.is_scalar(value) and pd.isna(value))
    text = "" if missing else str(value)
    return _MARKUP.sub(r"\\\1", _LINE_BREAK.sub(" ", text))
