"""The lake: every table is Parquet, one object per daily partition, queried with DuckDB.

Layout under the root (a local folder, or `s3://bucket/prefix` through `resources.storage`):
`<table>/date=YYYY-MM-DD/part-0.parquet`; unpartitioned tables keep one `<table>/part-0.parquet`.
Each object is replaced whole (a renamed temporary file, or one PUT on S3), so a run that dies
mid-write leaves the previous content whole, and rewriting a partition replaces it exactly. A range
of partitions is read set-wise: one listing finds them, and DuckDB scans them as one relation. No
DuckDB file is ever a write target of a run: runs query the Parquet objects with in-memory DuckDB
connections, and the analysts' catalog of a local lake is rebuilt aside and swapped in
(`resources.warehouse`).
"""

import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from resources import settings
from resources.days import describe_days
from resources.scratch import scratch
from resources.storage import LocalStore, ObjectStore, open_store

PART_FILE = "part-0.parquet"
_TABLE = r"[a-z][a-z0-9_]*(/[a-z][a-z0-9_]*)?"
_TABLE_NAME = re.compile(rf"^{_TABLE}$")
_DATA_KEY = re.compile(
    rf"^(?P<table>{_TABLE})/(date=(?P<day>\d{{4}}-\d{{2}}-\d{{2}})/)?{re.escape(PART_FILE)}$"
)


def check_table_name(table: str) -> str:
    """Refuse names that could escape the lake or break SQL: `name` or `model/name`, lowercase."""
    if not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"invalid table name {table!r}: expected 'name' or 'model/name'")
    return table


def check_day(day: date) -> date:
    """Refuse anything but a calendar date as a partition: a string (or a datetime, whose ISO
    form has a time) could put another folder into the path."""
    if type(day) is not date:
        raise TypeError(f"invalid partition day {day!r}: expected a datetime.date")
    return day


def view_name(table: str) -> str:
    """The warehouse view of a table: `flight_delay/predictions` -> `flight_delay_predictions`."""
    return check_table_name(table).replace("/", "_")


class Lake(dg.ConfigurableResource):
    """Parquet tables partitioned by day under a root folder or S3 prefix, and the analysts'
    DuckDB catalog."""

    uri: str = Field(
        default="",
        description=(
            "Lake root: a folder or s3://bucket/prefix. Empty: $PLATFORM_LAKE_URI, else "
            "<PLATFORM_DATA_DIR>/lake."
        ),
    )
    warehouse_path: str = Field(
        default="",
        description="Analysts' DuckDB catalog of views. Empty: <PLATFORM_DATA_DIR>/warehouse.duckdb.",
    )
    s3_endpoint_url: str = Field(
        default="",
        description=(
            "Endpoint of an S3-compatible store. Empty: $PLATFORM_S3_ENDPOINT_URL, else the AWS "
            "SDK's AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS S3 itself."
        ),
    )

    @property
    def location(self) -> str:
        """The root as configured: a folder or `s3://bucket/prefix`."""
        return self.uri or settings.lake_uri()

    @property
    def store(self) -> ObjectStore:
        return open_store(self.location, settings.s3_endpoint(self.s3_endpoint_url))

    @property
    def root(self) -> Path:
        """The folder of a local lake."""
        store = self.store
        if not isinstance(store, LocalStore):
            raise ValueError(f"the lake at {self.location} is not a local folder; use Lake.store")
        return store.root

    @property
    def warehouse(self) -> Path:
        return Path(self.warehouse_path or settings.data_dir() / "warehouse.duckdb")

    @staticmethod
    def partition_key(table: str, day: date) -> str:
        return f"{check_table_name(table)}/date={check_day(day).isoformat()}/{PART_FILE}"

    @staticmethod
    def table_key(table: str) -> str:
        return f"{check_table_name(table)}/{PART_FILE}"

    def partition_file(self, table: str, day: date) -> Path:
        return self.root / self.partition_key(table, day)

    def table_file(self, table: str) -> Path:
        return self.root / self.table_key(table)

    def write_partitions(
        self, table: str, data: pa.Table | pd.DataFrame, date_column: str, days: Sequence[date]
    ) -> dict[date, int]:
        """Replace the partitions `days` of `table` with the rows of `data`, one object per day.

        Every day is written, with zero rows if `data` has none for it, so that an empty day is
        recorded as empty rather than missing. Returns the row count per day.
        """
        check_table_name(table)
        days = [check_day(day) for day in days]
        arrow = _to_arrow(data)
        present = {
            entry["values"]: entry["counts"]
            for entry in pc.value_counts(arrow.column(date_column)).to_pylist()
        }
        stray = set(present) - set(days)
        if stray:
            raise ValueError(
                f"{table}: rows dated {sorted(stray, key=str)[:3]} are outside {days[0]}.."
            )
        # One stable sort by day, then each day is a slice: rows keep their order within a day.
        ordered = arrow.take(pc.sort_indices(arrow.column(date_column)))
        counts, objects, offset = {}, {}, 0
        for day in sorted(days):
            counts[day] = present.get(day, 0)
            part = ordered.slice(offset, counts[day])
            offset += counts[day]
            objects[self.partition_key(table, day)] = _parquet_bytes(part)
        self.store.put_many(objects)
        return counts

    def write_table(self, table: str, data: pa.Table | pd.DataFrame) -> int:
        """Replace an unpartitioned table."""
        check_table_name(table)
        arrow = _to_arrow(data)
        self.store.put(self.table_key(table), _parquet_bytes(arrow))
        return arrow.num_rows

    def partition_days(self, table: str) -> list[date]:
        """The days of `table` in the lake, from one listing."""
        matches = (_DATA_KEY.fullmatch(key) for key in self.store.sizes(check_table_name(table)))
        return sorted(
            date.fromisoformat(m["day"]) for m in matches if m and m["table"] == table and m["day"]
        )

    def missing_partitions(self, table: str, days: Iterable[date]) -> list[date]:
        listed = self.store.sizes(check_table_name(table))
        return [day for day in days if self.partition_key(table, day) not in listed]

    def register(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        table: str,
        days: Sequence[date] | None = None,
    ) -> None:
        """Expose `table` (the partitions `days`, or the unpartitioned table) as view `name` in `con`.

        One listing of the table finds every object; raises naming the table and the days when
        any requested partition is not in the lake.
        """
        store = self.store
        listed = store.sizes(check_table_name(table))
        if days is None:
            wanted = [self.table_key(table)]
            if wanted[0] not in listed:
                raise FileNotFoundError(
                    f"{table}: not in the lake at {store.uri(wanted[0])}; materialize it"
                )
        else:
            wanted = [self.partition_key(table, day) for day in days]
            missing = [day for day, key in zip(days, wanted, strict=True) if key not in listed]
            if missing:
                raise FileNotFoundError(
                    f"{table}: partitions missing from the lake at {store.uri(table)}: "
                    f"{describe_days(missing)}; materialize them first"
                )
        _expose(con, name, store, {key: listed[key] for key in wanted})

    def row_count(self, table: str, days: Sequence[date] | None = None) -> int:
        """Rows of the partitions `days` of `table` (or of the unpartitioned table), from the
        Parquet footers (no data read)."""
        con = scratch()
        self.register(con, "t", table, days)
        [(rows,)] = con.sql("SELECT count(*) FROM t").fetchall()
        return rows

    def read(self, table: str, days: Sequence[date] | None = None) -> pd.DataFrame:
        """Read partitions (or an unpartitioned table) into pandas."""
        con = scratch()
        self.register(con, "t", table, days)
        return con.sql("SELECT * FROM t").df()

    def write_object(self, key: str, content: bytes) -> str:
        """Store a file beside the tables (a report, say) whole; returns where it lives."""
        self.store.put(key, content)
        return self.store.uri(key)

    def read_object(self, key: str) -> bytes:
        return self.store.get(key)

    def tables(self) -> list[str]:
        """Tables present in the lake (those with at least one data object)."""
        return sorted(_objects_by_table(self.store.sizes("")))

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with a view per table, for a local or an S3 lake.

        The views hold the objects listed now: partitions written later need a new connection.
        A database of its own, since its user may create anything in it.
        """
        con = duckdb.connect()
        self.expose_tables(con)
        return con

    def expose_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        """A view per table of the lake in `con` (over S3, registered for the session only)."""
        store = self.store
        for table, objects in _objects_by_table(store.sizes("")).items():
            _expose(con, view_name(table), store, objects)

    def catalog_path(self) -> Path | None:
        """The analysts' catalog of a local lake; None for an S3 lake, which has none: views
        over S3 need DuckDB's httpfs extension, which is downloaded from the internet, and a
        run on a remote worker has no analyst's disk to write to (see docs/deployment.md)."""
        return self.warehouse if isinstance(self.store, LocalStore) else None

    def refresh_warehouse(self, written: Sequence[str] = ()) -> Path | None:
        """Rebuild the analysts' catalog of a local lake aside and swap it in
        (`resources.warehouse.install`), so open readers keep working. Views read the Parquet
        files at query time, so new partitions show without a refresh; a refresh is needed only
        when a table first appears, or to repair a catalog someone wrote into. So a step passes
        the tables it has `written`, and the catalog is rebuilt only when one of them has no
        view yet or it needs repair: listing the whole lake for every step cost about 0.1 s each,
        most of it in a day's runs. None for an S3 lake (`catalog_path`)."""
        from resources.warehouse import CATALOG_VIEW, install, shows

        target = self.catalog_path()
        if target is None:
            return None
        if written and shows(target, [view_name(table) for table in written]):
            return target
        store = self.store
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        # One refresh at a time: two runs listing the tables at once could otherwise swap in,
        # last, a catalog that lacks the table the other one just created.
        with _exclusive(target.parent):
            con = duckdb.connect(str(staging))
            try:
                for table, objects in _objects_by_table(store.sizes("")).items():
                    key = self.table_key(table)
                    pattern = store.path(key if key in objects else f"{table}/date=*/{PART_FILE}")
                    view = view_name(table)
                    con.execute(
                        f'CREATE VIEW "{view}" AS SELECT * FROM '
                        f"read_parquet('{_sql_literal(pattern)}', hive_partitioning = false)"
                    )
                    con.execute(f"COMMENT ON VIEW \"{view}\" IS '{CATALOG_VIEW}'")
            finally:
                con.close()
            install(staging, target)
        return target


@contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` against every process of this host (a lock on the
    folder itself: no lock file is left behind)."""
    import fcntl

    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _objects_by_table(listed: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """The data objects of a listing, grouped by the table they belong to, in key order."""
    tables: dict[str, dict[str, int]] = {}
    for key in sorted(listed):
        match = _DATA_KEY.fullmatch(key)
        if match:
            tables.setdefault(match["table"], {})[key] = listed[key]
    return tables


def _expose(
    con: duckdb.DuckDBPyConnection, name: str, store: ObjectStore, objects: Mapping[str, int]
) -> None:
    """View `name` over the Parquet `objects`: DuckDB reads local files itself, and S3 objects
    through a pyarrow dataset, scanned lazily with column and filter pushdown."""
    if isinstance(store, LocalStore):
        paths = [str(store.path(key)) for key in objects]
        con.register(name, con.read_parquet(paths))  # the connection's own, as `scratch` needs
    else:
        con.register(name, store.dataset(objects))


def _to_arrow(data: pa.Table | pd.DataFrame) -> pa.Table:
    return data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)


def _parquet_bytes(table: pa.Table) -> bytes:
    """A partition as Parquet. Snappy: a day of the bundled volume is a few hundred rows, and
    zstd's cost per file and column, about twice snappy's there, outweighs its smaller files."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def _sql_literal(path: Path) -> str:
    text = str(path)
    if "'" in text:
        raise ValueError(f"lake path {text!r} contains a quote; choose another PLATFORM_DATA_DIR")
    return text
