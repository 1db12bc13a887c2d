"""The lake: exact partition replacement, atomic writes, safe names, and the analysts' warehouse."""

from datetime import date

import duckdb
import pytest
from conftest import (
    PIPELINE_LAST,
    PIPELINE_MODEL_CUTOFF,
    BuiltPipeline,
    flight_rows,
    flights_frame,
    make_lake,
)

import resources.lake
from resources.lake import PART_FILE, Lake
from resources.scratch import scratch

D1, D2, D3 = date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)
TABLE = "raw_flights"


def files_in(folder) -> list[str]:
    """Every entry, hidden ones included, so stray temporary files show."""
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def lake(tmp_path) -> Lake:
    return make_lake(tmp_path)


def test_rewriting_partitions_replaces_them_exactly(lake: Lake):
    first = [(D1, "AA", 1), (D1, "AA", 2), (D2, "B6", 3)]
    assert lake.write_partitions(TABLE, flights_frame(first), "flight_date", [D1, D2]) == {
        D1: 2,
        D2: 1,
    }
    assert flight_rows(lake, [D1, D2]) == sorted(first)

    # The same rows again: still no duplicates.
    lake.write_partitions(TABLE, flights_frame(first), "flight_date", [D1, D2])
    assert flight_rows(lake, [D1, D2]) == sorted(first)

    # New content for D1 only: its old rows are gone, D2 is untouched.
    second = [(D1, "UA", 9)]
    lake.write_partitions(TABLE, flights_frame(second), "flight_date", [D1])
    assert flight_rows(lake, [D1]) == second
    assert flight_rows(lake, [D1, D2]) == sorted([*second, (D2, "B6", 3)])

    # A day written with no rows is recorded as empty, not missing.
    lake.write_partitions(TABLE, flights_frame([]), "flight_date", [D2])
    assert lake.missing_partitions(TABLE, [D2]) == []
    assert flight_rows(lake, [D2]) == []
    assert files_in(lake.partition_file(TABLE, D1).parent) == [PART_FILE]


def test_row_counts_of_partitions(lake: Lake):
    rows = [(D1, "AA", 1), (D1, "AA", 2), (D2, "B6", 3)]
    lake.write_partitions(TABLE, flights_frame(rows), "flight_date", [D1, D2])
    assert (lake.row_count(TABLE, [D1]), lake.row_count(TABLE, [D1, D2])) == (2, 3)


def test_two_pieces_of_work_in_one_process_never_see_each_others_views(lake: Lake):
    """The lake's views live in connections of one in-memory database per process: each must
    see its own days under a name another uses too, and none of the other's."""
    lake.write_partitions(TABLE, flights_frame([(D1, "AA", 1), (D2, "B6", 2)]), "flight_date", [D1, D2])  # fmt: skip
    first, second = scratch(), scratch()
    lake.register(first, "flights", TABLE, [D1])
    lake.register(second, "flights", TABLE, [D2])
    first.execute("CREATE TEMP VIEW mine AS SELECT * FROM flights")
    assert first.sql("SELECT carrier FROM mine").fetchall() == [("AA",)]
    assert second.sql("SELECT carrier FROM flights").fetchall() == [("B6",)]
    with pytest.raises(duckdb.CatalogException):
        second.sql("SELECT * FROM mine")
    first.close()
    assert scratch().sql("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall() == [
        (0,)
    ]


def test_rows_outside_the_written_days_are_refused(lake: Lake):
    with pytest.raises(ValueError, match="outside"):
        lake.write_partitions(
            TABLE, flights_frame([(D1, "AA", 1), (D3, "AA", 2)]), "flight_date", [D1]
        )
    assert lake.missing_partitions(TABLE, [D1, D3]) == [D1, D3]


def _fail_replace(*args, **kwargs):
    raise OSError("simulated crash before the rename")


def _fail_fsync(*args, **kwargs):
    raise OSError("simulated crash while flushing the temporary file")


def _fail_parquet(*args, **kwargs):
    raise OSError("simulated crash while encoding Parquet")


@pytest.mark.parametrize(
    ("target", "name", "failure"),
    [
        (resources.lake.os, "replace", _fail_replace),
        (resources.lake.os, "fsync", _fail_fsync),
        (resources.lake.pq, "write_table", _fail_parquet),
    ],
    ids=["rename", "fsync", "parquet"],
)
def test_a_failed_write_leaves_the_previous_partition_whole(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, target, name, failure
):
    old = [(D1, "AA", 1), (D1, "AA", 2)]
    lake.write_partitions(TABLE, flights_frame(old), "flight_date", [D1])
    lake.refresh_warehouse()

    with monkeypatch.context() as patch:
        patch.setattr(target, name, failure)
        with pytest.raises(OSError, match="simulated crash"):
            lake.write_partitions(TABLE, flights_frame([(D1, "UA", 7)]), "flight_date", [D1])

    assert flight_rows(lake, [D1]) == old
    assert files_in(lake.partition_file(TABLE, D1).parent) == [PART_FILE]
    with duckdb.connect(str(lake.warehouse), read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (len(old),)


@pytest.mark.parametrize("bad", ["../x", "a;b", "A", "x/../y", "", "a/b/c", "/abs"])
def test_invalid_table_names_are_refused(lake: Lake, tmp_path, bad: str):
    data = flights_frame([(D1, "AA", 1)])
    with pytest.raises(ValueError, match="invalid table name"):
        lake.write_partitions(bad, data, "flight_date", [D1])
    with pytest.raises(ValueError, match="invalid table name"):
        lake.write_table(bad, data)
    with pytest.raises(ValueError, match="invalid table name"):
        lake.read(bad, [D1])
    with pytest.raises(ValueError, match="invalid table name"):
        lake.read(bad)
    # Nothing was written anywhere, inside or beside the lake.
    assert not lake.root.exists() or not any(lake.root.rglob("*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_reading_missing_partitions_names_the_table_and_the_days(lake: Lake):
    lake.write_partitions(TABLE, flights_frame([(D1, "AA", 1)]), "flight_date", [D1])
    with pytest.raises(FileNotFoundError) as error:
        lake.read(TABLE, [D1, D2, D3])
    message = str(error.value)
    assert TABLE in message
    assert "2013-01-02" in message and "2013-01-03" in message
    assert "2013-01-01" not in message

    with pytest.raises(FileNotFoundError) as error:
        lake.read("flight_delay/features", [D2])
    assert "flight_delay/features" in str(error.value) and "2013-01-02" in str(error.value)

    with pytest.raises(FileNotFoundError, match="raw_planes"):
        lake.read("raw_planes")


# --- The warehouse, over a lake materialized through predictions --------------------------------


def test_warehouse_catalogs_the_predictions_with_the_contract_columns(
    synthetic_pipeline: BuiltPipeline,
):
    lake = synthetic_pipeline.platform.lake
    with duckdb.connect(str(lake.warehouse), read_only=True) as con:
        views = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        assert {
            "flight_delay_predictions",
            "flight_delay_features",
            "raw_flights",
            "raw_weather",
            "flight_outcomes",
        } <= views
        columns = {
            row[0]: row[1] for row in con.execute("DESCRIBE flight_delay_predictions").fetchall()
        }
        assert columns["flight_date"] == "DATE"
        for name in ("carrier", "flight", "origin", "score", "model_version"):
            assert name in columns, f"flight_delay_predictions lacks {name}"
        days, rows, low, high, unnamed = con.execute(
            """
            SELECT count(DISTINCT flight_date), count(*), min(score), max(score),
                   count(*) FILTER (WHERE model_version IS NULL)
            FROM flight_delay_predictions
            """
        ).fetchone()
        lo_day, hi_day = con.execute(
            "SELECT min(flight_date), max(flight_date) FROM flight_delay_predictions"
        ).fetchone()
    assert (lo_day.isoformat(), hi_day.isoformat()) == (PIPELINE_MODEL_CUTOFF, PIPELINE_LAST)
    assert days == 10 and rows > 0
    assert 0.0 <= low <= high <= 1.0
    assert unnamed == 0


def test_an_open_reader_survives_a_warehouse_refresh(synthetic_pipeline: BuiltPipeline):
    lake = synthetic_pipeline.platform.lake
    query = "SELECT flight_date, carrier, flight, origin, score FROM flight_delay_predictions ORDER BY ALL"
    reader = duckdb.connect(str(lake.warehouse), read_only=True)
    try:
        before = reader.execute(query).fetchall()
        assert len(before) > 0
        lake.refresh_warehouse()
        lake.refresh_warehouse()
        assert reader.execute(query).fetchall() == before
        with duckdb.connect(str(lake.warehouse), read_only=True) as fresh:
            assert fresh.execute(query).fetchall() == before
    finally:
        reader.close()
    leftovers = [p.name for p in lake.warehouse.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], "refresh left staging files beside the warehouse"
