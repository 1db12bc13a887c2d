"""The landing zone: daily files other teams drop into a folder or an S3 prefix.

Each raw table of a dataset has a landing name (`resources.dataset.RawTable.landing_name`). Under
the zone's root, a daily table's files are `<name>/YYYY-MM-DD.csv` (or `.parquet`), one per day;
a register (a table without days) is one file, `<name>.csv` (or `.parquet`). For the flights:

    flights/YYYY-MM-DD.csv | .parquet     scheduled flights of the day
    weather/YYYY-MM-DD.csv | .parquet     hourly weather at the three origins
    outcomes/YYYY-MM-DD.csv | .parquet    what happened to the day's flights
    planes.csv | planes.parquet           the plane register

A day without its file has not arrived yet: reading it fails naming the missing files, and the
landing sensor requests the day when the file lands. A file that cannot be read at all (empty,
truncated, not UTF-8, not CSV or Parquet, missing a column) fails naming the file and the reason.
Files are only ever read: nothing here moves, rewrites or deletes them. Reading goes through the
lake's object stores (`resources.storage`), so a local folder and `s3://bucket/prefix` behave alike.
"""

import csv
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

from resources.dataset import SOURCE_DAY, SOURCE_FILE, SOURCE_ROW, RawTable
from resources.storage import LocalStore, ObjectStore, S3Store, open_store

FORMATS = ("csv", "parquet")
# Cells that mean "no value" in a CSV: empty, and the spellings of R (NA) and pandas (NaN).
NULL_TEXTS = ["", "NA", "NaN", "nan", "null", "NULL"]
DAILY_FILE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)/(?P<day>\d{4}-\d{2}-\d{2})\.(?:csv|parquet)$")
REGISTER_FILE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\.(?:csv|parquet)$")


class LandingError(ValueError):
    """Files a read needed are missing (not arrived yet) or cannot be read at all."""

    def __init__(self, location: str, missing: Sequence[str], unreadable: dict[str, str]):
        self.location, self.missing, self.unreadable = location, list(missing), dict(unreadable)
        parts = []
        if unreadable:
            parts.append(
                f"{len(unreadable)} file(s) cannot be read: "
                + "; ".join(f"{name}: {why}" for name, why in unreadable.items())
            )
        if missing:
            shown = ", ".join(missing[:10]) + (
                f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            )
            parts.append(f"not arrived yet: {shown}")
        super().__init__(f"landing zone {location}: " + ". ".join(parts))


@dataclass(frozen=True)
class LandedFile:
    """A file as listed: a version that changes when it is delivered again (size and
    modification time locally, the ETag, a content hash, on S3) and when it was modified."""

    version: str
    modified: float  # seconds since the epoch


@dataclass(frozen=True)
class Landed:
    """A table's rows as delivered: the contract's columns as text or as the file typed them,
    plus `source_file`, `source_row` (1 = the first row after the header) and `source_day`."""

    rows: pa.Table
    files: list[str]
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)


class LandingZone:
    """The files of the landing zone at `uri` (a folder or s3://bucket/prefix)."""

    def __init__(self, uri: str, endpoint: str | None = None):
        self.uri = uri
        self.store: ObjectStore = open_store(uri, endpoint)

    def landed(self, table: RawTable, start: date | None = None, end: date | None = None) -> Landed:
        """The rows of `table` for days start..end (a register has no days), each with its file
        and row number; raises LandingError naming missing or unreadable files, all at once."""
        store = self.store
        if isinstance(store, LocalStore) and not store.root.is_dir():
            raise FileNotFoundError(
                f"landing zone {self.uri} is not a folder: PLATFORM_LANDING_URI?"
            )
        name = table.landing_name
        if not table.daily:
            wanted = {None: [k for k in store.sizes("") if k in register_files(name)]}
            expected = {None: f"{name}.(csv|parquet)"}
        else:
            listed = store.sizes(name)
            days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
            wanted = {day: [k for k in daily_files(name, day) if k in listed] for day in days}
            expected = {day: f"{name}/{day.isoformat()}.(csv|parquet)" for day in days}
        missing = [expected[day] for day, keys in wanted.items() if not keys]
        unreadable = {
            " and ".join(keys): "both a CSV and a Parquet file; deliver one"
            for keys in wanted.values()
            if len(keys) > 1
        }
        chosen = {day: keys[0] for day, keys in wanted.items() if len(keys) == 1}
        tables, ignored = [], {}
        for (day, key), content in zip(
            chosen.items(), store.get_many(list(chosen.values())), strict=True
        ):
            try:
                read, extra = read_file(key, content, table)
            except ValueError as error:
                unreadable[key] = str(error)
                continue
            if extra:
                ignored[key] = extra
            tables.append(_with_provenance(read, key, day))
        if missing or unreadable:
            raise LandingError(store.uri(), missing, unreadable)
        rows = pa.concat_tables(tables) if tables else _no_rows(table)
        return Landed(rows=rows, files=list(chosen.values()), ignored_columns=ignored)

    def files(self) -> dict[str, LandedFile]:
        """Every file of the landing layout, in one listing of the zone."""
        return {
            key: landed
            for key, landed in _listing(self.store).items()
            if DAILY_FILE.fullmatch(key) or REGISTER_FILE.fullmatch(key)
        }


def daily_files(name: str, day: date) -> list[str]:
    """The keys a daily table's file for `day` may have, one per format."""
    return [f"{name}/{day.isoformat()}.{extension}" for extension in FORMATS]


def register_files(name: str) -> list[str]:
    """The keys a register's file may have, one per format."""
    return [f"{name}.{extension}" for extension in FORMATS]


def read_file(name: str, content: bytes, rules: RawTable) -> tuple[pa.Table, list[str]]:
    """The contract's columns of one delivered file, and the names of extra columns ignored.

    Raises ValueError saying why a file cannot be read at all: empty, truncated, not UTF-8,
    not CSV or Parquet, duplicate or missing columns.
    """
    if not content or content.isspace():
        raise ValueError("the file is empty")
    table = _read_parquet(content) if name.endswith(".parquet") else _read_csv(content)
    names = table.column_names
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise ValueError(f"duplicate columns {duplicated}")
    missing = [c for c in rules.columns if c not in names]
    if missing:
        raise ValueError(f"missing required columns {missing} (found {names[:12]})")
    extra = [c for c in names if c not in rules.columns]
    # As text, so that files typed differently (CSV text, Parquet types) concatenate; the
    # contract casts them back and reports what does not cast.
    try:
        text = table.select(list(rules.columns)).cast(
            pa.schema([(c, pa.string()) for c in rules.columns])
        )
    except pa.ArrowException as error:
        raise ValueError(f"a column has a type that is not a plain value: {error}") from None
    return text, extra


def _read_csv(content: bytes) -> pa.Table:
    import pyarrow.csv as pcsv

    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        raise ValueError(
            f"not valid UTF-8: byte 0x{content[error.start]:02x} on line {line}; "
            "the landing zone expects UTF-8 text"
        ) from None
    if not content.endswith(b"\n"):
        raise ValueError(
            "truncated: the last line does not end with a line break (the landing zone "
            "expects whole files; deliver them by writing aside and renaming)"
        )
    header = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), [])
    invalid: list = []

    def keep_invalid(row) -> str:
        invalid.append(row)
        return "skip"

    try:
        table = pcsv.read_csv(
            pa.BufferReader(content),
            read_options=pcsv.ReadOptions(use_threads=False),
            parse_options=pcsv.ParseOptions(invalid_row_handler=keep_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=NULL_TEXTS,
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowException as error:
        raise ValueError(f"not a readable CSV: {error}") from None
    if invalid:
        first = invalid[0]
        raise ValueError(
            f"{len(invalid)} malformed line(s), the first on line {first.number}: "
            f"{first.actual_columns} fields where the header has {first.expected_columns} "
            "(truncated or not CSV)"
        )
    return table


def _read_parquet(content: bytes) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(content))
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"not a readable Parquet file (truncated?): {error}") from None


def _with_provenance(table: pa.Table, key: str, day: date | None) -> pa.Table:
    rows = table.num_rows
    return (
        table.append_column(SOURCE_FILE, pa.repeat(pa.scalar(key), rows))
        .append_column(SOURCE_ROW, pa.array(range(1, rows + 1), pa.int64()))
        .append_column(SOURCE_DAY, pa.repeat(pa.scalar(day, pa.date32()), rows))
    )


def _no_rows(rules: RawTable) -> pa.Table:
    text = [pa.field(c, pa.string()) for c in rules.columns]
    provenance = [
        pa.field(SOURCE_FILE, pa.string()),
        pa.field(SOURCE_ROW, pa.int64()),
        pa.field(SOURCE_DAY, pa.date32()),
    ]
    return pa.schema([*text, *provenance]).empty_table()


def _listing(store: ObjectStore) -> dict[str, LandedFile]:
    """Key -> version and modification time of every object under the store's root."""
    found = {}
    if isinstance(store, LocalStore):
        for folder, _, names in os.walk(store.root):
            for name in names:
                if name.startswith("."):  # a delivery still being written
                    continue
                path = Path(folder) / name
                stat = path.stat()
                key = path.relative_to(store.root).as_posix()
                found[key] = LandedFile(f"{stat.st_size}-{stat.st_mtime_ns}", stat.st_mtime)
        return found
    if isinstance(store, S3Store):
        pages = store.client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=store.prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"][len(store.prefix) :]
                found[key] = LandedFile(item["ETag"].strip('"'), item["LastModified"].timestamp())
        return found
    raise TypeError(f"no listing of versions for {type(store).__name__}")
