"""Bad deliveries: rows that break the contract are quarantined with file, row and reason, files that
cannot be read fail the run naming them, and good data already stored never changes."""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import Platform, make_lake
from landing_support import (
    CORPUS,
    DAY,
    DAYS,
    FOLDER,
    RAW,
    Landing,
    check_evaluation,
    failure_messages,
    landing_platform,
)

from assets import CATALOG
from resources.landing import NULL_TEXTS
from resources.sources import Sources


@pytest.fixture(scope="module")
def ingested_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the corpus zone and a lake that ingested all of it, built once."""
    folder = tmp_path_factory.mktemp("ingested_corpus")
    with dg.instance_for_test() as instance:
        landing = landing_platform(folder, instance)
        assert landing.ingest(["raw_planes"], first=None).success
        assert landing.ingest(RAW).success
    return folder


@pytest.fixture
def landing(ingested_corpus: Path, tmp_path: Path, instance: dg.DagsterInstance) -> Landing:
    """A copy of the ingested corpus, for one test to change."""
    shutil.copytree(ingested_corpus, tmp_path, dirs_exist_ok=True)
    sources = Sources(kind="landing", landing_uri=str(tmp_path / "zone"))
    return Landing(tmp_path / "zone", Platform(instance, sources, make_lake(tmp_path)))


UNREADABLE = [
    ("empty.csv", "the file is empty"),
    ("truncated.csv", "truncated"),
    ("not_utf8.csv", "not valid UTF-8: byte 0xc9 on line 7"),
    ("not_csv.csv", "missing required columns ['flight_date', 'carrier'"),
    ("missing_column.csv", "missing required columns ['dest']"),
]


@pytest.mark.parametrize(("corpus_file", "reason"), UNREADABLE)
def test_an_unreadable_file_fails_the_run_naming_it_and_changes_nothing(
    landing: Landing, corpus_file: str, reason: str
):
    before = landing.stored()
    delivered = landing.deliver(f"flights/{corpus_file}")
    content = delivered.read_bytes()

    result = landing.ingest(["raw_flights"], DAY, DAY)

    assert not result.success
    message = failure_messages(result)
    assert f"flights/{DAY}.csv" in message and reason in message, message
    assert str(landing.zone) in message, "the error names the landing zone"
    assert result.get_asset_materialization_events() == []
    stored = landing.stored()
    assert stored.keys() == before.keys()
    for table, frame in before.items():
        pd.testing.assert_frame_equal(stored[table], frame, obj=table)
    assert delivered.read_bytes() == content, "the delivered file must stay as it was"


# (corpus file, table, {row: reason}, whether the reject_ratio check passes at 5%)
QUARANTINED = [
    (
        "flights/wrong_type.csv",
        "raw_flights",
        {3: "flight: 'fifteen' is not a whole number", 9: "distance: 'far' is not a number"},
        True,
    ),
    (
        "flights/out_of_range.csv",
        "raw_flights",
        {
            2: "sched_dep_time: 2575 is not a time of day (HHMM)",
            4: "dep_hour: 27 is outside 0..23",
            6: "distance: -5.0 is outside 1..6000",
            8: "flight: 0 is below 1",
        },
        False,
    ),
    (
        "flights/unknown_codes.csv",
        "raw_flights",
        {
            1: "origin: 'XXX' is not a known New York origin (EWR, JFK, LGA)",
            2: "carrier: 'ZZ' is not a known carrier",
            3: "dest: 'QQQ' is not a known airport code",
        },
        False,
    ),
    (
        "flights/duplicate_keys.csv",
        "raw_flights",
        {
            1: "duplicate key (flight_date, carrier, flight, origin): rows 1, 41",
            41: "duplicate key (flight_date, carrier, flight, origin): rows 1, 41",
        },
        True,
    ),
    (
        "flights/null_keys.csv",
        "raw_flights",
        {
            2: "carrier: missing",
            5: "flight: missing",
            7: "origin: missing",
            9: "flight_date: missing",
        },
        False,
    ),
    (
        "flights/wrong_date.csv",
        "raw_flights",
        {row: f"flight_date 2013-01-02 is not the day of its file, {DAY}" for row in range(1, 41)},
        False,
    ),
    (
        "weather/out_of_range.csv",
        "raw_weather",
        {
            1: "humid: 140.0 is outside 0..100",
            2: "wind_speed: 1048.36 is outside 0..250",
            3: "hour: 24 is outside 0..23",
            4: "temp: -100.0 is outside -60..130",
            5: "pressure: 500.0 is outside 850..1100",
        },
        False,
    ),
    (
        "outcomes/bad_rows.csv",
        "flight_outcomes",
        {
            1: "carrier: 'ZZ' is not a known carrier",
            2: "cancelled: 'maybe' is not true or false",
            3: "dep_delay: 5000.0 is outside -240..2880",
        },
        False,
    ),
]


@pytest.mark.parametrize(
    ("corpus_file", "table", "reasons", "passes"),
    QUARANTINED,
    ids=[case[0] for case in QUARANTINED],
)
def test_rows_breaking_the_contract_are_quarantined_and_good_rows_proceed(
    landing: Landing, corpus_file: str, table: str, reasons: dict[int, str], passes: bool
):
    before = landing.stored()
    delivered = landing.deliver(corpus_file, table)
    sent = pd.read_csv(delivered, dtype=str, keep_default_na=False)

    result = landing.ingest([table], DAY, DAY)

    # The materialization happened, whatever the check says.
    assert [e.partition for e in result.get_asset_materialization_events()] == [DAY]
    rejected = landing.read(f"{table}_rejected", [DAYS[-1]])
    assert set(rejected["source_file"]) == {f"{FOLDER[table]}/{DAY}.csv"}
    assert dict(zip(rejected["source_row"], rejected["reason"], strict=True)) == reasons
    assert (pd.to_datetime(rejected["file_day"]).dt.date == DAYS[-1]).all()
    # The raw text is kept as delivered, to see what was wrong.
    rows = rejected.set_index("source_row")
    for row in reasons:
        expected = [None if text in NULL_TEXTS else text for text in sent.iloc[row - 1]]
        assert rows.loc[row, sent.columns].tolist() == expected, row

    good = landing.read(table, [DAYS[-1]])
    assert len(good) == len(sent) - len(reasons)
    # Earlier days, and the other tables, are untouched.
    for name, frame in before.items():
        if name != table:
            pd.testing.assert_frame_equal(landing.stored()[name], frame, obj=name)
    day_column = CATALOG.table(table).day_column
    earlier = before[table][pd.to_datetime(before[table][day_column]).dt.date < DAYS[-1]]
    now = landing.read(table, DAYS[:-1])
    pd.testing.assert_frame_equal(now, earlier.reset_index(drop=True), obj=table)

    evaluation = check_evaluation(result, table)
    assert evaluation.passed is passes
    assert evaluation.metadata["rejected_rows"].value == len(reasons)
    assert evaluation.metadata["worst_reject_ratio"].value == pytest.approx(
        len(reasons) / len(sent)
    )
    assert result.success is passes, "a failed blocking check fails the run"


def test_the_reject_limit_is_run_config_and_blocks_downstream_assets(landing: Landing):
    landing.deliver("flights/out_of_range.csv")
    graph = ["raw_flights", "raw_weather", "flight_delay/features"]

    blocked = landing.ingest(graph, DAY, DAY)
    assert not blocked.success
    assert "raw_flights: 4 of 40 delivered rows rejected" in str(
        check_evaluation(blocked, "raw_flights").description
    )
    assert landing.platform.lake.missing_partitions("flight_delay/features", [DAYS[-1]])

    allowed = landing.ingest(graph, DAY, DAY, max_reject_ratio=0.2)
    assert allowed.success
    assert check_evaluation(allowed, "raw_flights").passed
    features = landing.read("flight_delay/features", [DAYS[-1]])
    assert len(features) == 36, "features of the 36 good flights"


def test_an_extra_column_is_ignored_and_reported_with_the_delivery(landing: Landing):
    before = landing.read("raw_flights")
    landing.deliver("flights/extra_column.csv")

    result = landing.ingest(["raw_flights"], DAY, DAY)

    assert result.success
    ignored = check_evaluation(result, "raw_flights").metadata["ignored_columns"].value
    assert ignored == {f"flights/{DAY}.csv": ["gate"]}
    pd.testing.assert_frame_equal(landing.read("raw_flights"), before)
    assert landing.platform.lake.missing_partitions("raw_flights_rejected", DAYS) == DAYS


def test_a_corrected_redelivery_clears_the_quarantine(landing: Landing):
    good = (landing.zone / "flights" / f"{DAY}.csv").read_bytes()
    landing.deliver("flights/out_of_range.csv")
    landing.ingest(["raw_flights"], DAY, DAY)
    assert len(landing.read("raw_flights_rejected", [DAYS[-1]])) == 4

    (landing.zone / "flights" / f"{DAY}.csv").write_bytes(good)
    assert landing.ingest(["raw_flights"], DAY, DAY).success

    assert len(landing.read("raw_flights_rejected", [DAYS[-1]])) == 0
    assert len(landing.read("raw_flights", [DAYS[-1]])) == 40


def test_a_truncated_parquet_file_fails_naming_it(landing: Landing):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    csv_file = landing.zone / "flights" / f"{DAY}.csv"
    parquet_file = csv_file.with_suffix(".parquet")
    pq.write_table(pcsv.read_csv(csv_file), parquet_file)
    csv_file.unlink()
    whole = parquet_file.read_bytes()
    parquet_file.write_bytes(whole[: len(whole) // 2])
    before = landing.read("raw_flights")

    result = landing.ingest(["raw_flights"], DAY, DAY)

    assert not result.success
    message = failure_messages(result)
    assert f"flights/{DAY}.parquet: not a readable Parquet file" in message, message
    pd.testing.assert_frame_equal(landing.read("raw_flights"), before)


def test_duplicate_planes_are_quarantined(landing: Landing):
    shutil.copyfile(
        CORPUS / "bad" / "planes" / "duplicate_tailnum.csv", landing.zone / "planes.csv"
    )

    result = landing.ingest(["raw_planes"], first=None)

    assert result.success, "2 of 104 rows is under the 5% limit"
    rejected = landing.platform.lake.read("raw_planes_rejected")
    assert rejected["source_row"].tolist() == [1, 104]
    assert set(rejected["reason"]) == {"duplicate key (tailnum): rows 1, 104"}
    planes = landing.platform.lake.read("raw_planes")
    assert len(planes) == 102 and rejected["tailnum"].iloc[0] not in set(planes["tailnum"])
