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
truncated, not UTF-8, not CSV or Parquet, missing a column, a cell over 1 MiB) fails naming the
file and the reason, and the reason never quotes the file's content: what a delivery holds is
shown only as its rows (stored, quarantined, previewed). Files are only ever read: nothing here
moves, rewrites or deletes them. Reading goes through the lake's object stores
(`resources.storage`), so a local folder and `s3://bucket/prefix` behave alike, except that in a
local folder a delivery must be a regular file reached through regular folders: a symbolic link
(to a file elsewhere, say a secret), a pipe or a device is refused without being opened.
"""

import csv
import errno
import io
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from resources.dataset import SOURCE_DAY, SOURCE_FILE, SOURCE_ROW, RawTable
from resources.storage import LocalStore, ObjectStore, S3Store, open_store

FORMATS = ("csv", "parquet")
# Cells that mean "no value" in a CSV: empty, and the spellings of R (NA) and pandas (NaN).
NULL_TEXTS = ["", "NA", "NaN", "nan", "null", "NULL"]
DAILY_FILE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)/(?P<day>\d{4}-\d{2}-\d{2})\.(?:csv|parquet)$")
REGISTER_FILE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\.(?:csv|parquet)$")
# The largest value one cell may hold; a file with a larger one is refused naming its row and field.
MAX_CELL_BYTES = 1 << 20
# pyarrow's CSV block: rows are parsed a block at a time; a longer row is read in one block.
CSV_BLOCK_BYTES = 1 << 20


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
            candidates = {None: register_files(name)}
            expected = {None: f"{name}.(csv|parquet)"}
        else:
            days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
            candidates = {day: daily_files(name, day) for day in days}
            expected = {day: f"{name}/{day.isoformat()}.(csv|parquet)" for day in days}
        prefix = name if table.daily else ""
        present = self._present(prefix, [key for keys in candidates.values() for key in keys])
        wanted = {day: [k for k in keys if k in present] for day, keys in candidates.items()}
        missing = [expected[day] for day, keys in wanted.items() if not keys]
        unreadable = {
            " and ".join(keys): "both a CSV and a Parquet file; deliver one"
            for keys in wanted.values()
            if len(keys) > 1
        }
        chosen = {day: keys[0] for day, keys in wanted.items() if len(keys) == 1}
        tables, ignored = [], {}
        for (day, key), content in zip(chosen.items(), self._read(chosen.values()), strict=True):
            if isinstance(content, ValueError):
                unreadable[key] = str(content)
                continue
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

    def _present(self, prefix: str, keys: list[str]) -> set[str]:
        """Which of `keys` (under the folder `prefix`) are delivered: in a local folder,
        whatever has the name, file or not, so that a link is refused rather than taken for a
        file that has not arrived."""
        store = self.store
        if isinstance(store, LocalStore):
            return {key for key in keys if _exists(store.root, key)}
        listed = store.sizes(prefix)
        return {key for key in keys if key in listed}

    def _read(self, keys) -> list[bytes | ValueError]:
        """The content of each of `keys`, or in a local folder the reason it is refused."""
        store, keys = self.store, list(keys)
        if isinstance(store, LocalStore):
            return [_read_regular_file(store.root, key) for key in keys]
        return list(store.get_many(keys))

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
    """The contract's columns of one delivered file, as text, and the names of extra columns
    ignored.

    Raises ValueError saying why a file cannot be read at all: empty, truncated, not UTF-8,
    not CSV or Parquet, duplicate or missing columns, a column that is not plain values, a cell
    over `MAX_CELL_BYTES`. A reason names rows and columns, never the file's content.
    """
    if not content or content.isspace():
        raise ValueError("the file is empty")
    table = _read_parquet(content) if name.endswith(".parquet") else _read_csv(content)
    names = table.column_names
    duplicated = [c for c in rules.columns if names.count(c) > 1]
    if duplicated:
        raise ValueError(f"duplicate columns {duplicated}")
    missing = [c for c in rules.columns if c not in names]
    if missing:
        raise ValueError(f"missing required columns {missing}{_case_hint(missing, names)}")
    extra = list(dict.fromkeys(c for c in names if c not in rules.columns))
    # As text, so that files typed differently (CSV text, Parquet types) concatenate; the
    # contract casts them back and reports what does not cast.
    text = pa.table({column: _as_text(table.column(column), column) for column in rules.columns})
    _check_cell_sizes(text)
    return text, extra


def _case_hint(missing: list[str], names: list[str]) -> str:
    """Header names that differ from a missing column only in case or blanks; other names of
    the header are not repeated, since a file that is no delivery may hold anything there."""
    near = {c: n for c in missing for n in names if n.strip().lower() == c}
    if not near:
        return ""
    shown = ", ".join(f"{n!r} for {c!r}" for c, n in near.items())
    return f"; the header has {shown}: names are lower case, without blanks"


def _as_text(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """A column as text. A float NaN is a missing value, as `NaN` is in a CSV (pandas writes
    missing numbers so); a column of lists or records is refused naming it."""
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    try:
        return column.cast(pa.string())
    except pa.ArrowException:
        raise ValueError(
            f"column {name!r} holds {column.type}, not plain values (text, numbers, dates, "
            "true/false)"
        ) from None


def _check_cell_sizes(text: pa.Table) -> None:
    """Refuse a value over `MAX_CELL_BYTES`, naming its row (1 = the first after the header)
    and field."""
    for name in text.column_names:
        sizes = pc.binary_length(text.column(name))
        if (pc.max(sizes).as_py() or 0) > MAX_CELL_BYTES:
            row = pc.index(pc.greater(sizes, MAX_CELL_BYTES), True).as_py()
            raise ValueError(
                f"row {row + 1}, field {name!r}: a value of {sizes[row].as_py():,} bytes; a "
                f"cell holds at most {MAX_CELL_BYTES // (1 << 20)} MiB"
            )


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
    if b"\r" in content and b"\n" not in content:
        raise ValueError(
            "lines end with a carriage return only (CR, as on old Macs); the landing zone "
            "expects lines ending in LF or CRLF"
        )
    if not content.endswith(b"\n"):
        raise ValueError(
            "truncated: the last line does not end with a line break (the landing zone "
            "expects whole files; deliver them by writing aside and renaming)"
        )
    try:
        header = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), [])
    except csv.Error:
        raise ValueError("the header line is not CSV") from None
    invalid: list = []

    def keep_invalid(row) -> str:
        invalid.append(row)
        return "skip"

    def parse(block_size: int) -> pa.Table:
        return pcsv.read_csv(
            pa.BufferReader(content),
            read_options=pcsv.ReadOptions(use_threads=False, block_size=block_size),
            parse_options=pcsv.ParseOptions(invalid_row_handler=keep_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=NULL_TEXTS,
                strings_can_be_null=True,
            ),
        )

    try:
        table = parse(CSV_BLOCK_BYTES)
    except pa.ArrowInvalid:
        # A row longer than a block (a cell of megabytes, say) cannot be cut into blocks: read
        # the file as one block, so that the size check can name the row and field.
        invalid.clear()
        try:
            table = parse(len(content) + 1)
        except pa.ArrowException as error:
            raise ValueError(f"not a readable CSV ({_arrow_problem(error)})") from None
    if invalid:
        first = invalid[0]
        raise ValueError(
            f"{len(invalid)} malformed line(s), the first on line {first.number}: "
            f"{first.actual_columns} fields where the header has {first.expected_columns} "
            "(truncated or not CSV)"
        )
    return table


def _arrow_problem(error: pa.ArrowException) -> str:
    """What pyarrow says went wrong, without the text of the row it may quote after a colon."""
    return str(error).split(":")[0].strip()


def _read_parquet(content: bytes) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(content))
    except (pa.ArrowException, OSError) as error:
        raise ValueError(
            f"not a readable Parquet file (truncated?): {_arrow_problem(error)}"
        ) from None


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


def _exists(root: Path, key: str) -> bool:
    """Whether anything, even a link or a folder, has the name `key` under `root` (not
    following links)."""
    try:
        os.lstat(root / key)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _read_regular_file(root: Path, key: str) -> bytes | ValueError:
    """The content of `key` under `root`, opened folder by folder without following a link, or
    why it is refused: a link, or not a regular file, is never opened, so its target is not read
    (a pipe would block, a device or a link out of the zone could hold anything)."""
    *folders, name = key.split("/")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    opened = [os.open(root, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for part, directory in [(f, True) for f in folders] + [(name, False)]:
            try:
                opened.append(
                    os.open(part, flags | (os.O_DIRECTORY if directory else 0), dir_fd=opened[-1])
                )
            except FileNotFoundError:
                return ValueError("it disappeared while being read; deliver it again")
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    kind = "folder" if directory else "file"
                    return ValueError(
                        f"{part!r} is a symbolic link or not a {kind}; the landing zone takes "
                        "regular files inside it only, and does not follow links"
                    )
                raise
        if not stat.S_ISREG(os.fstat(opened[-1]).st_mode):
            return ValueError(
                "not a regular file (a folder, pipe, device or socket); the landing zone takes "
                "regular files only"
            )
        with os.fdopen(opened.pop(), "rb") as handle:
            return handle.read()
    finally:
        for descriptor in opened:
            os.close(descriptor)


def _listing(store: ObjectStore) -> dict[str, LandedFile]:
    """Key -> version and modification time of every object under the store's root (locally,
    of the names themselves: a link is listed, not followed, and is refused when read)."""
    found = {}
    if isinstance(store, LocalStore):
        for folder, _, names in os.walk(store.root):
            for name in names:
                if name.startswith("."):  # a delivery still being written
                    continue
                path = Path(folder) / name
                status = os.lstat(path)
                key = path.relative_to(store.root).as_posix()
                found[key] = LandedFile(f"{status.st_size}-{status.st_mtime_ns}", status.st_mtime)
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
