"""Bad deliveries: rows that break the contract are quarantined with file, row and reason, files that
cannot be read fail the run naming them, and good data already stored never changes."""

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import Platform, make_lake, platform_instance
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
from assets.ingestion import raw_asset
from resources.dataset import Dataset, RawTable
from resources.landing import NULL_TEXTS
from resources.sources import Sources


@pytest.fixture(scope="module")
def ingested_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the corpus zone and a lake that ingested all of it, built once."""
    folder = tmp_path_factory.mktemp("ingested_corpus")
    with platform_instance() as instance:
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


def test_a_header_only_register_is_refused_and_the_stored_register_kept(landing: Landing):
    planes = landing.zone / "planes.csv"
    planes.write_text(planes.read_text().splitlines(keepends=True)[0])
    before = landing.stored()

    result = landing.ingest(["raw_planes"], first=None)

    assert not result.success
    message = failure_messages(result)
    assert "raw_planes: refusing to replace the register" in message, message
    assert "planes.csv: it has no rows" in message, message
    assert "the stored register of 103 rows is kept" in message, message
    assert "allow_empty: true" in message, message
    assert result.get_asset_materialization_events() == []
    assert [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"] == []
    stored = landing.stored()
    for table, frame in before.items():
        pd.testing.assert_frame_equal(stored[table], frame, obj=table)


def test_a_register_whose_rows_are_all_rejected_is_refused(landing: Landing):
    planes = landing.zone / "planes.csv"
    header, *rows = planes.read_text().splitlines(keepends=True)
    planes.write_text(header + "".join(row.replace(",", ",x", 1) for row in rows[:3]))
    before = landing.platform.lake.read("raw_planes")

    result = landing.ingest(["raw_planes"], first=None)

    assert not result.success
    message = failure_messages(result)
    assert "all 3 delivered rows break the contract (first: row 1, year: 'x" in message, message
    pd.testing.assert_frame_equal(landing.platform.lake.read("raw_planes"), before)


def test_an_empty_register_replaces_the_stored_one_only_when_the_run_allows_it(landing: Landing):
    planes = landing.zone / "planes.csv"
    planes.write_text(planes.read_text().splitlines(keepends=True)[0])

    result = landing.ingest(["raw_planes"], first=None, allow_empty=True)

    assert result.success
    assert len(landing.platform.lake.read("raw_planes")) == 0
    evaluation = check_evaluation(result, "raw_planes")
    assert evaluation.passed
    assert evaluation.description == (
        "raw_planes: the delivery had no rows; the register is now empty, as the run config "
        "allow_empty asked"
    )


@dataclass
class Shelf:
    """A bundled delivery whose register rows the test sets."""

    stores: pd.DataFrame

    def rows(self, table: RawTable, first, last) -> pd.DataFrame:
        return table.conform(self.stores)

    def rows_per_day(self) -> int:
        return len(self.stores)


def test_any_datasets_register_is_kept_when_a_delivery_brings_no_rows(tmp_path: Path, instance):
    stores = RawTable(
        name="shop_stores",
        description="The shops of a dataset declared here.",
        columns={"store": "string", "city": "string"},
        key=("store",),
    )
    shelf = Shelf(pd.DataFrame({"store": ["north", "south"], "city": ["Oslo", "Bergen"]}))
    shop = Dataset(
        name="shop",
        description="A dataset with a register only.",
        tables=(stores,),
        first_day=date(2024, 1, 1),
        last_day=date(2024, 12, 31),
        replay_from=date(2024, 6, 1),
        bundled=shelf,
    )
    lake = make_lake(tmp_path)

    def ingest(**config) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [raw_asset(shop, stores)],
            instance=instance,
            resources={"sources": Sources(kind="bundled"), "lake": lake},
            run_config={"ops": {"shop_stores": {"config": config}}},
            raise_on_error=False,
        )

    assert ingest().success
    shelf.stores = shelf.stores.head(0)
    refused = ingest()
    assert not refused.success
    message = failure_messages(refused)
    assert "the bundled source: it has no rows; the stored register of 2 rows is kept" in message
    assert lake.read("shop_stores")["store"].tolist() == ["north", "south"]

    assert ingest(allow_empty=True).success
    assert len(lake.read("shop_stores")) == 0


def _replace_row(path: Path, row: int, column: str, value: str) -> None:
    """Set `column` of data row `row` (1 = the first after the header) in a CSV delivery."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row - 1, column] = value
    frame.to_csv(path, index=False)


def test_a_value_over_a_mebibyte_fails_naming_its_row_and_field(landing: Landing):
    delivered = landing.zone / "flights" / f"{DAY}.csv"
    _replace_row(delivered, 5, "tailnum", "N" * (1 << 20 | 1))
    before = landing.stored()

    result = landing.ingest(["raw_flights"], DAY, DAY)

    assert not result.success
    message = failure_messages(result)
    assert (
        f"flights/{DAY}.csv: row 5, field 'tailnum': a value of 1,048,577 bytes; a cell holds "
        "at most 1 MiB" in message
    ), message
    assert "straddl" not in message and "NNNN" not in message, message
    pd.testing.assert_frame_equal(landing.stored()["raw_flights"], before["raw_flights"])


def test_a_value_just_under_a_mebibyte_is_read(landing: Landing):
    _replace_row(landing.zone / "flights" / f"{DAY}.csv", 5, "tailnum", "N" * (1 << 20))

    result = landing.ingest(["raw_flights"], DAY, DAY)

    assert result.success
    assert (landing.read("raw_flights", [DAYS[-1]])["tailnum"].str.len() == 1 << 20).sum() == 1


def test_carriage_return_line_endings_are_named_as_such(landing: Landing):
    delivered = landing.zone / "flights" / f"{DAY}.csv"
    delivered.write_bytes(delivered.read_bytes().replace(b"\n", b"\r"))

    result = landing.ingest(["raw_flights"], DAY, DAY)

    assert not result.success
    message = failure_messages(result)
    assert f"flights/{DAY}.csv: lines end with a carriage return only" in message, message
    assert "truncated" not in message, message


def _as_parquet(csv_file: Path, frame: pd.DataFrame) -> Path:
    parquet = csv_file.with_suffix(".parquet")
    frame.to_parquet(parquet, index=False)
    csv_file.unlink()
    return parquet


def test_a_parquet_list_column_where_text_is_expected_is_refused_naming_it(landing: Landing):
    csv_file = landing.zone / "flights" / f"{DAY}.csv"
    frame = pd.read_csv(csv_file, dtype=str, keep_default_na=False)
    frame["tailnum"] = [[tailnum, tailnum] for tailnum in frame["tailnum"]]
    _as_parquet(csv_file, frame)
    before = landing.read("raw_flights")

    result = landing.ingest(["raw_flights"], DAY, DAY)

    assert not result.success
    message = failure_messages(result)
    assert f"flights/{DAY}.parquet: column 'tailnum' holds list<" in message, message
    pd.testing.assert_frame_equal(landing.read("raw_flights"), before)


def test_a_parquet_nan_in_a_number_column_is_missing_as_in_csv(landing: Landing):
    from_csv = landing.read("raw_weather", [DAYS[-1]])
    csv_file = landing.zone / "weather" / f"{DAY}.csv"
    frame = pd.read_csv(csv_file)  # pandas reads the empty wind_gust cells as float NaN
    assert frame["wind_gust"].isna().sum() > 0
    _as_parquet(csv_file, frame)

    result = landing.ingest(["raw_weather"], DAY, DAY)

    assert result.success
    assert check_evaluation(result, "raw_weather").metadata["rejected_rows"].value == 0
    pd.testing.assert_frame_equal(landing.read("raw_weather", [DAYS[-1]]), from_csv)
