"""The analysts' warehouse: what an analyst does, or a session that dies, never breaks the shared
catalog, never fails a platform run, and never loses what the analyst made.

Each test materializes a few synthetic days (every run refreshes the catalog), lets an analyst's
session work in a separate process, kills it with SIGKILL where the test says, and runs the
platform again.
"""

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import REPO_ROOT, Platform

from resources.warehouse import CATALOG_ALIAS, analyst_database, analyst_session

RAW = ["raw_flights", "raw_weather", "flight_outcomes"]
ANALYST = "ana"
# An analyst's session in a process of its own: runs the statements, says how many rows its table
# holds, then waits to be killed with its work uncommitted to the database file (in its log).
SESSION = """
import sys, time, duckdb
from resources.warehouse import analyst_session
where = sys.argv[1]
con = analyst_session(sys.argv[2]) if where == "own" else duckdb.connect(where)
con.execute("CREATE TABLE mine AS SELECT flight_date, carrier, flight FROM raw_flights")
con.execute("INSERT INTO mine SELECT flight_date, carrier, flight FROM raw_flights")
print(con.execute("SELECT count(*) FROM mine").fetchone()[0], flush=True)
time.sleep(600)
"""


@pytest.fixture
def served(platform: Platform) -> Platform:
    """The plane register and three days of raw tables, and the catalog the runs wrote."""
    platform.materialize(["raw_planes"])
    platform.materialize(RAW, "2013-01-01", "2013-01-03")
    return platform


def start_session(where: str) -> tuple[subprocess.Popen, int]:
    """An analyst's session on their own database ('own') or on the file `where`; returns it,
    once its table is made, with the rows of that table."""
    session = subprocess.Popen(
        [sys.executable, "-c", SESSION, where, ANALYST],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = session.stdout.readline()
    if not line:
        session.kill()
        raise AssertionError(f"the session failed: {session.communicate()[1]}")
    return session, int(line)


def kill(session: subprocess.Popen) -> None:
    session.send_signal(signal.SIGKILL)
    session.communicate()


def catalog_rows(catalog: Path, view: str) -> int:
    with duckdb.connect(str(catalog), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM {view}").fetchone()[0]


def test_a_killed_analyst_session_loses_nothing_and_breaks_nothing(served: Platform):
    catalog = served.lake.warehouse
    session, rows = start_session("own")
    with duckdb.connect(str(catalog), read_only=True):
        pass  # an analyst at work does not lock the catalog: others read it meanwhile
    kill(session)
    assert analyst_database(ANALYST).with_suffix(".duckdb.wal").exists(), "killed mid-session"

    assert served.materialize(RAW, "2013-01-04", "2013-01-05").success
    assert served.materialize(["flight_delay/features"], "2013-01-01", "2013-01-05").success

    assert catalog_rows(catalog, "raw_flights") > rows // 2
    assert catalog_rows(catalog, "flight_delay_features") > 0, "a new table got its view"
    assert stat.S_IMODE(os.stat(catalog).st_mode) == 0o444, "nobody but root may write to it"
    with analyst_session(ANALYST) as mine:
        assert mine.execute("SELECT count(*) FROM mine").fetchone()[0] == rows
        assert mine.execute("SELECT count(*) FROM raw_flights").fetchone()[0] > rows // 2
        with pytest.raises(duckdb.Error, match="attached in read-only mode"):
            mine.execute(f"CREATE TABLE {CATALOG_ALIAS}.main.forbidden (x INTEGER)")


def test_a_session_that_wrote_into_the_catalog_and_died_is_kept_and_the_catalog_repaired(
    served: Platform,
):
    catalog = served.lake.warehouse
    session, rows = start_session(str(catalog))  # root ignores the read-only mode
    kill(session)
    assert catalog.with_suffix(".duckdb.wal").exists()

    assert served.materialize(RAW, "2013-01-04", "2013-01-04").success

    assert catalog_rows(catalog, "raw_flights") > 0
    assert not catalog.with_suffix(".duckdb.wal").exists()
    [kept] = (catalog.parent / "warehouse_kept").iterdir()
    with duckdb.connect(str(kept / catalog.name), read_only=True) as old:
        assert old.execute("SELECT count(*) FROM mine").fetchone()[0] == rows
    assert served.materialize(RAW, "2013-01-05", "2013-01-05").success
    assert len(list((catalog.parent / "warehouse_kept").iterdir())) == 1, "kept once"


def test_a_writer_holding_the_catalog_delays_its_refresh_and_fails_no_run(served: Platform):
    catalog = served.lake.warehouse
    session, rows = start_session(str(catalog))
    try:
        assert served.materialize(["flight_delay/features"], "2013-01-01", "2013-01-03").success
    finally:
        kill(session)
    with duckdb.connect(str(catalog), read_only=True) as held:
        views = {
            name for (name,) in held.execute("SELECT view_name FROM duckdb_views()").fetchall()
        }
    assert "flight_delay_features" not in views, "the writer's file was left alone"

    assert served.materialize(RAW, "2013-01-04", "2013-01-04").success
    assert catalog_rows(catalog, "flight_delay_features") > 0, "the next run refreshed it"
    [kept] = (catalog.parent / "warehouse_kept").iterdir()
    with duckdb.connect(str(kept / catalog.name), read_only=True) as old:
        assert old.execute("SELECT count(*) FROM mine").fetchone()[0] == rows


def test_a_session_before_the_first_run_says_where_the_catalog_will_be(data_dir: Path):
    with pytest.raises(FileNotFoundError, match="warehouse.duckdb yet"):
        analyst_session(ANALYST)
