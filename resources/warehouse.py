"""The analysts' warehouse: a shared catalog that only the platform writes, and each analyst's
own database beside it.

The catalog (`warehouse.duckdb`) holds one view per lake table. Runs rebuild it aside and swap it
in, read-only on disk, so that nobody else writes to it. Analysts work in their own database
(`analysts/<name>.duckdb` beside it), which attaches the catalog read-only: their tables live in
their own file, which the platform never opens, and a session that dies leaves its write-ahead
log in that file only, where DuckDB replays it at the next open.

Whoever writes to the catalog anyway (file modes do not stop root) cannot break it or lose work
to it: a swap first opens the current catalog read-only, which takes DuckDB's shared lock. While
a writer holds it, the swap waits for a later run (the views read the Parquet files at query
time, so only tables new since the last swap are missing meanwhile). When the current catalog
holds anything the platform did not make, has a dead writer's log beside it, or cannot be
opened, it is moved aside, with its log, before the new one takes its place, and the run says
where it went.
"""

import argparse
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from resources import settings

# The comment on every view the platform puts in the catalog: anything else in it is someone's.
CATALOG_VIEW = "flightdesk catalog view"
# The name under which analysts' sessions attach the catalog.
CATALOG_ALIAS = "catalog"
READ_ONLY = 0o444


def install(staging: Path, target: Path) -> Path | None:
    """Put the catalog built in `staging` in place of `target`; returns where the replaced one
    was kept, if it had to be. Leaves `target` alone while another process writes to it."""
    os.chmod(staging, READ_ONLY)
    if not target.exists():
        os.replace(staging, target)
        return None
    log = dg.get_dagster_logger("warehouse")
    try:
        current = duckdb.connect(str(target), read_only=True)
    except duckdb.Error as error:
        if "lock" in str(error).lower():
            staging.unlink()
            log.warning(
                f"{target} is open for writing by another process ({error}); the catalog is "
                "refreshed by a later run. Analysts write to their own database, see the README"
            )
            return None
        return replace_kept(staging, target, f"it could not be opened: {error}")
    try:  # the shared lock held until the swap keeps writers out of the old file meanwhile
        why = repair_reason(current, target)
        if why:
            return replace_kept(staging, target, why)
        os.replace(staging, target)
        return None
    finally:
        current.close()


def repair_reason(con: duckdb.DuckDBPyConnection, target: Path) -> str:
    """Why the catalog at `target` (open as `con`) must be replaced rather than trusted: objects
    someone wrote into it, or a write-ahead log left beside it; empty when it is sound."""
    foreign = foreign_objects(con)
    log_file = wal(target)
    found = f"it holds {', '.join(foreign)}" if foreign else ""
    left = f"a write-ahead log {log_file.name} was left beside it" if log_file.exists() else ""
    return " and ".join(filter(None, [found, left]))


def foreign_objects(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables, views and macros of the catalog that the platform did not make."""
    rows = con.execute(
        f"""
        SELECT 'table ' || table_name FROM duckdb_tables() WHERE NOT internal
        UNION ALL
        SELECT 'view ' || view_name FROM duckdb_views()
        WHERE NOT internal AND comment IS DISTINCT FROM '{CATALOG_VIEW}'
        UNION ALL
        SELECT DISTINCT 'macro ' || function_name FROM duckdb_functions()
        WHERE NOT internal AND function_type IN ('macro', 'table_macro')
        ORDER BY 1
        """
    ).fetchall()
    return [name for (name,) in rows]


def replace_kept(staging: Path, target: Path, why: str) -> Path:
    """Move `target` and its log aside into a folder of their own, then swap `staging` in."""
    kept = target.with_name(f"{target.stem}_kept") / (
        f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    )
    kept.mkdir(parents=True)
    for path in (target, wal(target)):
        if path.exists():
            os.replace(path, kept / path.name)
    os.replace(staging, target)
    dg.get_dagster_logger("warehouse").warning(
        f"the previous catalog was kept in {kept}: {why}. The new {target.name} replaces it; "
        "work in your own database instead (python -m resources.warehouse, see the README)"
    )
    return kept


def shows(target: Path, views: Sequence[str]) -> bool:
    """Whether the catalog at `target` has every one of `views` and needs no repair
    (`repair_reason`); False when it cannot be read, so that a rebuild, which says what it found,
    decides."""
    if not target.exists():
        return False
    try:
        with duckdb.connect(str(target), read_only=True) as con:
            if repair_reason(con, target):
                return False
            found = con.execute(
                "SELECT count(DISTINCT view_name) FROM duckdb_views() WHERE view_name IN "
                f"({', '.join('?' for _ in views)})",
                list(views),
            ).fetchone()[0]
    except duckdb.Error:
        return False
    return found == len(set(views))


def wal(database: Path) -> Path:
    return database.with_name(f"{database.name}.wal")


def analyst_database(name: str | None = None) -> Path:
    """The analyst's own database: `analysts/<name>.duckdb` in the data folder."""
    return settings.data_dir() / "analysts" / f"{name or settings.analyst_name()}.duckdb"


def analyst_session(name: str | None = None) -> duckdb.DuckDBPyConnection:
    """A read-write session on the analyst's own database, with the platform's tables beside
    theirs: unqualified names find their own tables first, then the catalog's views. Tables they
    create land in their own database, which the platform never touches."""
    from resources.lake import Lake

    lake = Lake()
    path = analyst_database(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    catalog = lake.catalog_path()
    if catalog is None:  # an S3 lake has no catalog file: its tables, for this session only
        lake.expose_tables(con)
        return con
    if not catalog.exists():
        con.close()
        raise FileNotFoundError(
            f"no catalog at {catalog} yet: the platform writes it with its first run (make run)"
        )
    [(own,)] = con.execute("SELECT current_database()").fetchall()
    con.execute(f"ATTACH '{_sql_text(catalog)}' AS {CATALOG_ALIAS} (READ_ONLY)")
    con.execute(f"""SET search_path = '"{own}".main,{CATALOG_ALIAS}.main'""")
    return con


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def main(argv: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Open your session and run the SQL given, printing its result."""
    parser = argparse.ArgumentParser(
        prog="python -m resources.warehouse",
        description="Your own DuckDB database with the platform's tables attached read-only. "
        "With `python -i -m resources.warehouse`, `con` is the session.",
    )
    parser.add_argument("sql", nargs="*", help="statements to run, each printed")
    parser.add_argument("--name", help="whose database (default: your user name)")
    args = parser.parse_args(argv)
    session = analyst_session(args.name)
    for statement in args.sql:
        result = session.sql(statement)
        if result is not None:
            print(result)
    if not args.sql:
        print(
            f"Your database: {analyst_database(args.name)} (read-write, yours alone); the "
            f"platform's tables: attached read-only as `{CATALOG_ALIAS}`.",
            file=sys.stderr,
        )
    return session


if __name__ == "__main__":
    con = main()
