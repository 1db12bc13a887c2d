"""The split of a delivery by its table's contract (`resources.dataset.RawTable`).

Every source's rows pass through `validate` at ingestion: rows that meet the contract proceed with
the table's types, and rows that break it go to quarantine with their file, row number and every
reason. The rules are one set-wise DuckDB query per delivery, never a Python loop per row; data
values reach DuckDB only as an Arrow table or as bound parameters, never as SQL text.
"""

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from resources.dataset import (
    COLUMN_TYPES,
    FILE_DAY,
    REASON,
    SOURCE_DAY,
    SOURCE_FILE,
    SOURCE_ROW,
    RawTable,
    check_identifier,
)
from resources.scratch import scratch

# Duplicate keys list at most this many row numbers in a reason.
DUPLICATE_ROWS_SHOWN = 5
# Each delivered row's position, carried through the checks: DuckDB may return the rows of a
# parallel query in another order, and putting them back in Arrow costs a fifth of a sort in SQL.
_DELIVERY_ORDER = "delivery_order"


@dataclass(frozen=True)
class Validation:
    """A delivery split by the contract."""

    good: pa.Table  # the contract's columns and types, in delivery order
    rejected: pa.Table  # `RawTable.rejected_schema`: provenance, reasons, raw values as text

    def rejected_per_day(self, day_column: str | None) -> tuple[Counter, Counter]:
        """Rows delivered and rows rejected, per day (under None for an unpartitioned table)."""
        good = _per_day(self.good, day_column)
        rejected = _per_day(self.rejected, FILE_DAY if day_column else None)
        return good + rejected, rejected


def _per_day(table: pa.Table, column: str | None) -> Counter:
    if column is None:
        return Counter({None: table.num_rows})
    counted = pc.value_counts(table.column(column)).to_pylist()
    return Counter({pair["values"]: pair["counts"] for pair in counted})


def validate(rows: pa.Table, contract: RawTable) -> Validation:
    """Split `rows` (the contract's columns, in any types DuckDB can cast, plus the provenance
    columns) into rows that meet `contract` and rejected rows with the reasons."""
    missing = [
        c
        for c in [*contract.columns, SOURCE_FILE, SOURCE_ROW, SOURCE_DAY]
        if c not in rows.column_names
    ]
    if missing:
        raise ValueError(f"{contract.name}: delivery is missing columns {missing}")
    con = scratch()
    try:
        order = pa.array(np.arange(rows.num_rows, dtype=np.int64))
        con.register("delivered", rows.append_column(_DELIVERY_ORDER, order))
        params = {f"codes_{c}": sorted(codes.known) for c, codes in contract.codes.items()}
        [(duplicated,)] = con.sql(_duplicated_keys_sql(contract)).fetchall()
        checked = con.sql(_validation_sql(contract, duplicated > 0), params=params).to_arrow_table()
    finally:
        con.close()
    checked = in_delivery_order(checked)
    found = checked.column("reasons_found")
    good = checked.filter(pc.invert(found)) if pc.any(found).as_py() else checked
    good = good.select(list(contract.columns))
    day = [FILE_DAY] if contract.day_column else []
    text = [f"{c}__text" for c in contract.columns]
    rejected = checked.filter(found).select([*day, SOURCE_FILE, SOURCE_ROW, REASON, *text])
    return Validation(
        good=good.cast(contract.arrow_schema),
        rejected=rejected.rename_columns(contract.rejected_schema.names).cast(
            contract.rejected_schema
        ),
    )


def in_delivery_order(checked: pa.Table) -> pa.Table:
    """The checked rows in the order they were delivered (taken again only when needed)."""
    order = checked.column(_DELIVERY_ORDER).to_numpy()
    if (np.diff(order) > 0).all():
        return checked
    return checked.take(np.argsort(order, kind="stable"))


def _typed_sql(contract: RawTable) -> str:
    """Each delivered row's provenance, its values in the contract's types and its raw values."""
    types = {c: COLUMN_TYPES[t] for c, t in contract.columns.items()}
    typed = ",\n".join(
        f"{_typed(f'raw.{_q(c)}', duck)} AS {_q(c)}" for c, (duck, _, _) in types.items()
    )
    raw_values = ",\n".join(f"raw.{_q(c)} AS {_q('raw__' + c)}" for c in types)
    return f"""
        SELECT raw.{_DELIVERY_ORDER}, raw.{SOURCE_FILE}, raw.{SOURCE_ROW}, raw.{SOURCE_DAY},
            {typed},
            {raw_values}
        FROM delivered AS raw
    """


def _keyable(contract: RawTable) -> str:
    """Whether a typed row takes part in the uniqueness rule: only when its key is whole and of
    the file's day, so that a misdated copy of another day's row is rejected for its date, not
    held against that row."""
    day = contract.day_column
    return " AND ".join(
        [
            *(f"{_q(c)} IS NOT NULL" for c in contract.key),
            f"{_q(day)} = {SOURCE_DAY}" if day else "TRUE",
        ]
    )


def _duplicates_sql(contract: RawTable) -> str:
    """The keys delivered more than once, with their copies and first row numbers, from the
    rows `typed` (`_typed_sql`)."""
    key = ", ".join(_q(c) for c in contract.key)
    return f"""
        SELECT {key}, count(*) AS copies,
            list({SOURCE_ROW} ORDER BY {SOURCE_ROW})[1:{DUPLICATE_ROWS_SHOWN}] AS duplicate_rows
        FROM typed WHERE {_keyable(contract)}
        GROUP BY {key} HAVING count(*) > 1
    """


def _duplicated_keys_sql(contract: RawTable) -> str:
    """How many keys are delivered more than once: most deliveries have none, and are then
    checked without joining each row to its key's copies."""
    return (
        f"WITH typed AS ({_typed_sql(contract)}) SELECT count(*) FROM ({_duplicates_sql(contract)})"
    )


def _validation_sql(contract: RawTable, duplicated: bool) -> str:
    """One query: each row's typed values, its reasons for rejection, its raw text and its
    place in the delivery. Only with `duplicated` keys is each row joined to its key's copies."""
    types = {c: COLUMN_TYPES[t] for c, t in contract.columns.items()}
    reasons = []
    for column, (_, _, described) in types.items():
        value, raw = _q(column), _q("raw__" + column)
        reasons.append(
            f"CASE WHEN {raw} IS NOT NULL AND {value} IS NULL THEN "
            f"{_lit(column + ': ')} || {_quoted(raw)} || {_lit(' is not ' + described)} END"
        )
        if column in contract.never_null:
            reasons.append(f"CASE WHEN {raw} IS NULL THEN {_lit(column + ': missing')} END")
        if column in contract.ranges:
            low, high = contract.ranges[column]
            outside, bounds = (
                (f"NOT ({value} BETWEEN {low!r} AND {high!r})", f" is outside {low}..{high}")
                if high is not None
                else (f"{value} < {low!r}", f" is below {low}")
            )
            reasons.append(
                f"CASE WHEN {outside} THEN {_lit(column + ': ')} "
                f"|| CAST({value} AS VARCHAR) || {_lit(bounds)} END"
            )
        if column in contract.clocks:
            reasons.append(
                f"CASE WHEN NOT ({value} BETWEEN 0 AND 2400 AND {value} % 100 < 60) THEN "
                f"{_lit(column + ': ')} || CAST({value} AS VARCHAR) || "
                f"{_lit(' is not a time of day (HHMM)')} END"
            )
        if column in contract.codes:
            unknown = _lit(f" is not a known {contract.codes[column].label}")
            reasons.append(
                f"CASE WHEN NOT list_contains($codes_{column}, {value}) THEN "
                f"{_lit(column + ': ')} || {_quoted(value)} || {unknown} END"
            )
    day = contract.day_column
    if day:
        reasons.append(
            f"CASE WHEN {_q(day)} <> {SOURCE_DAY} THEN {_lit(day + ' ')} || CAST({_q(day)} AS "
            f"VARCHAR) || ' is not the day of its file, ' || CAST({SOURCE_DAY} AS VARCHAR) END"
        )
    duplicate = _lit(f"duplicate key ({', '.join(contract.key)}): ")
    reasons.append(
        f"CASE WHEN copies > 1 THEN {duplicate} || "
        f"CASE WHEN copies <= {DUPLICATE_ROWS_SHOWN} THEN 'rows ' ELSE "
        f"CAST(copies AS VARCHAR) || ' rows, the first ' END || "
        f"array_to_string(duplicate_rows, ', ') END"
    )
    if duplicated:
        key = ", ".join(_q(c) for c in contract.key)
        keyed = f"""
            SELECT typed.*,
                CASE WHEN {_keyable(contract)} THEN duplicates.copies END AS copies,
                duplicates.duplicate_rows
            FROM typed LEFT JOIN ({_duplicates_sql(contract)}) AS duplicates USING ({key})
        """
    else:
        keyed = "SELECT *, NULL::BIGINT AS copies, NULL::BIGINT[] AS duplicate_rows FROM typed"
    file_day = f"{SOURCE_DAY} AS {FILE_DAY}," if day else ""
    return f"""
        WITH typed AS ({_typed_sql(contract)}),
        keyed AS ({keyed}),
        judged AS (
            SELECT *, list_filter([{", ".join(reasons)}], lambda reason: reason IS NOT NULL) AS reasons
            FROM keyed
        )
        SELECT {", ".join(_q(c) for c in contract.columns)},
            {file_day}
            {SOURCE_FILE}, {SOURCE_ROW}, {_DELIVERY_ORDER},
            len(reasons) > 0 AS reasons_found,
            array_to_string(reasons, '; ') AS {REASON},
            {", ".join(f"{_text_if_rejected(c)} AS {_q(c + '__text')}" for c in contract.columns)}
        FROM judged
    """


def _text_if_rejected(column: str) -> str:
    """The raw value as text, kept for rejected rows only (good rows keep the typed value)."""
    return f"CASE WHEN len(reasons) > 0 THEN CAST({_q('raw__' + column)} AS VARCHAR) END"


def _typed(raw: str, duck_type: str) -> str:
    """`raw` in the contract's type, or NULL when it is not one (never an error)."""
    if duck_type == "INTEGER":
        # DuckDB rounds '15.5' to 16 when casting to INTEGER; a fraction is not a whole number.
        number = f"TRY_CAST({raw} AS DOUBLE)"
        return f"CASE WHEN {number} = floor({number}) THEN TRY_CAST({number} AS INTEGER) END"
    if duck_type == "DOUBLE":  # NaN is how some writers spell a missing number
        return f"nullif(TRY_CAST({raw} AS DOUBLE), 'NaN'::DOUBLE)"
    return f"TRY_CAST({raw} AS {duck_type})"


def _q(identifier: str) -> str:
    """A column name in SQL; names come from the contract and are checked to be identifiers."""
    return f'"{check_identifier("column", identifier)}"'


def _lit(text: str) -> str:
    """A constant of the contract (never data) as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _quoted(expression: str) -> str:
    """A value for a reason: in quotes, cut at 40 characters."""
    return f"'''' || left(CAST({expression} AS VARCHAR), 40) || ''''"
