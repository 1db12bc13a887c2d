"""What a dataset declares: its raw tables with their contracts, its calendar, and how each kind of
source delivers a table for a range of days.

A dataset is data, not code paths: the raw assets and their checks, the landing folders, the
replay and landing sensors, the bootstrap and the warehouse views are all built from these
declarations by the platform's generic modules, which never name a dataset.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

import dagster as dg
import pandas as pd
import pyarrow as pa

if TYPE_CHECKING:
    from assets.notebook_spec import Notebook

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
# The column types a table may declare: pandas dtype -> (DuckDB type, Arrow type, how a reason
# names a value of it).
COLUMN_TYPES = {
    "date32[pyarrow]": ("DATE", pa.date32(), "a date (YYYY-MM-DD)"),
    "string": ("VARCHAR", pa.string(), "text"),
    "int32": ("INTEGER", pa.int32(), "a whole number"),
    "Int32": ("INTEGER", pa.int32(), "a whole number"),
    "float64": ("DOUBLE", pa.float64(), "a number"),
    "bool": ("BOOLEAN", pa.bool_(), "true or false"),
}
# Provenance columns a delivery carries beside the table's columns.
SOURCE_FILE, SOURCE_ROW, SOURCE_DAY = "source_file", "source_row", "source_day"
# Quarantine tables name the day a rejected row was delivered for `file_day`: the row's own date
# column keeps the raw text as delivered, which may be no date at all.
FILE_DAY = "file_day"
REASON = "reason"


def check_identifier(kind: str, name: str) -> str:
    """Names reach SQL and object keys: lowercase identifiers only."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{kind} {name!r} must be a lowercase identifier ([a-z][a-z0-9_]*)")
    return name


@dataclass(frozen=True)
class CodeList:
    """The values a column may take, named for error messages ('carrier', 'airport code')."""

    label: str
    values: Callable[[], Iterable[str]]

    @cached_property
    def known(self) -> frozenset[str]:
        return frozenset(self.values())


@dataclass(frozen=True)
class RawTable:
    """One raw table and the contract every delivered row must meet: columns and types, then the
    rules below. Every column must be present in a delivery; extra columns are ignored.

    `day_column` partitions the table by day; a table without one (a register) is replaced whole
    by each delivery. `landing_name` is its folder in the landing zone (`<name>/YYYY-MM-DD.csv`),
    or for a register its file (`<name>.csv`).
    """

    name: str
    description: str
    columns: Mapping[str, str]  # column -> pandas dtype, one of COLUMN_TYPES
    key: tuple[str, ...]  # unique, and never null
    day_column: str | None = None
    landing_name: str = ""
    required: tuple[str, ...] = ()  # never null, beside the key
    # Inclusive bounds; None for no upper bound.
    ranges: Mapping[str, tuple[float, float | None]] = field(default_factory=dict)
    clocks: tuple[str, ...] = ()  # HHMM local times, 0000..2400
    codes: Mapping[str, CodeList] = field(default_factory=dict)

    def __post_init__(self):
        check_identifier("table", self.name)
        for column, dtype in self.columns.items():
            check_identifier(f"column of {self.name}", column)
            if dtype not in COLUMN_TYPES:
                raise ValueError(
                    f"{self.name}.{column}: type {dtype!r} is not one of {sorted(COLUMN_TYPES)}"
                )
        named = [*self.key, *self.required, *self.ranges, *self.clocks, *self.codes]
        if self.day_column:
            named.append(self.day_column)
        unknown = sorted({c for c in named if c not in self.columns})
        if unknown:
            raise ValueError(f"{self.name}: the contract names columns it lacks: {unknown}")
        if self.day_column and self.columns[self.day_column] != "date32[pyarrow]":
            raise ValueError(f"{self.name}: day column {self.day_column} must be a date")
        if not self.landing_name:
            object.__setattr__(self, "landing_name", self.name)
        check_identifier(f"landing name of {self.name}", self.landing_name)

    @property
    def daily(self) -> bool:
        return self.day_column is not None

    @property
    def rejected_table(self) -> str:
        """The quarantine table of this raw table, e.g. `raw_flights_rejected`."""
        return f"{self.name}_rejected"

    @property
    def never_null(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.key, *self.required]))

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(c, COLUMN_TYPES[t][1]) for c, t in self.columns.items()])

    @property
    def rejected_schema(self) -> pa.Schema:
        provenance = [(SOURCE_FILE, pa.string()), (SOURCE_ROW, pa.int64()), (REASON, pa.string())]
        day = [(FILE_DAY, pa.date32())] if self.day_column else []
        return pa.schema([*day, *provenance, *((c, pa.string()) for c in self.columns)])

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with exactly this table's columns, in order and with its types."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.name}: source is missing required columns {missing}")
        out = frame[list(self.columns)].copy()
        for column, dtype in self.columns.items():
            try:
                out[column] = out[column].astype(dtype)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{self.name}.{column}: cannot convert to {dtype}: {exc}") from exc
        return out.reset_index(drop=True)

    def between(self, frame: pd.DataFrame, first: date | None, last: date | None) -> pd.DataFrame:
        """The rows of `frame` (this table's) dated first..last; all of a register's."""
        if self.day_column is None:
            return frame
        days = frame[self.day_column].dt.date
        return frame[(days >= first) & (days <= last)].reset_index(drop=True)

    def empty(self) -> pd.DataFrame:
        """No rows, with this table's columns and types."""
        return self.conform(pd.DataFrame({c: pd.Series([], dtype=object) for c in self.columns}))


class Delivery(Protocol):
    """How one kind of source produces a dataset's tables (the bundled data, a generator)."""

    def rows(self, table: RawTable, first: date | None, last: date | None) -> pd.DataFrame:
        """The rows of `table` for days first..last (a register: all of it, both None),
        conforming to the table's columns."""
        ...

    def rows_per_day(self) -> int:
        """About how many rows of its largest table a day holds: a range is read as many days
        at once as keep a read within bounds."""
        ...


@dataclass(frozen=True)
class Dataset:
    """A dataset of the platform: its raw tables, its calendar and its deliveries.

    `first_day`..`last_day` are its daily partitions (the span of its bundled data). The live
    replay brings the days from `replay_from` on; `make run` bootstraps the days before it.
    `bundled` delivers the data a package ships; `synthetic` is a pydantic model whose fields are
    set by `PLATFORM_SYNTHETIC_<FIELD>` and which delivers generated rows (for tests and scale).
    The landing zone needs nothing from the dataset beyond its tables' landing names.
    `notebooks` run once per day after the day's raw tables and their checks
    (`assets.notebook_spec`).
    """

    name: str
    description: str
    tables: tuple[RawTable, ...]
    first_day: date
    last_day: date
    replay_from: date
    bundled: Delivery | None = None
    synthetic: type | None = None
    notebooks: tuple["Notebook", ...] = ()

    def __post_init__(self):
        check_identifier("dataset", self.name)
        names = [t.name for t in self.tables]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"dataset {self.name}: tables declared twice: {repeated}")
        if not self.first_day < self.replay_from <= self.last_day:
            raise ValueError(
                f"dataset {self.name}: replay_from {self.replay_from} must fall after first_day "
                f"{self.first_day} and on or before last_day {self.last_day}"
            )

    @cached_property
    def partitions(self) -> dg.DailyPartitionsDefinition:
        """One partition per day of the calendar; a fixed end keeps the list from growing to
        today's date."""
        return dg.DailyPartitionsDefinition(
            start_date=self.first_day.isoformat(),
            end_date=(self.last_day + timedelta(days=1)).isoformat(),
        )

    @property
    def daily_tables(self) -> tuple[RawTable, ...]:
        return tuple(t for t in self.tables if t.daily)

    @property
    def registers(self) -> tuple[RawTable, ...]:
        return tuple(t for t in self.tables if not t.daily)

    def table(self, name: str) -> RawTable:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"dataset {self.name} has no table {name!r}")
