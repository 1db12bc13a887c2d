"""The lake and the registry on an S3-compatible server: same behaviour as on a local disk."""

import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import duckdb
import pytest
from conftest import flight_rows, flights_frame, free_port

from prod.conftest import Production
from resources.lake import Lake
from resources.registry import ArtifactIntegrityError, ModelRegistry
from resources.reports import report_server
from resources.storage import StoreUnreachable
from resources.warehouse import analyst_session

TABLE = "raw_flights"
D1, D2, D3 = date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)
MODEL = "flight_delay"
COUNTER = "count-s3-calls"


@pytest.fixture
def lake(production: Production, request: pytest.FixtureRequest) -> Lake:
    """A lake of its own under the module's bucket, configured by PLATFORM_LAKE_URI alone."""
    return Lake(uri=f"s3://{production.lake_bucket}/{request.node.name}")


def test_partitions_are_replaced_exactly_on_s3(lake: Lake):
    first = [(D1, "AA", 1), (D1, "AA", 2), (D2, "B6", 3)]
    assert lake.write_partitions(TABLE, flights_frame(first), "flight_date", [D1, D2]) == {
        D1: 2,
        D2: 1,
    }
    lake.write_partitions(TABLE, flights_frame(first), "flight_date", [D1, D2])
    assert flight_rows(lake, [D1, D2]) == sorted(first)

    lake.write_partitions(TABLE, flights_frame([(D1, "UA", 9)]), "flight_date", [D1])
    assert flight_rows(lake, [D1, D2]) == sorted([(D1, "UA", 9), (D2, "B6", 3)])

    lake.write_partitions(TABLE, flights_frame([]), "flight_date", [D2])
    assert lake.missing_partitions(TABLE, [D1, D2, D3]) == [D3]
    assert flight_rows(lake, [D2]) == []
    assert lake.tables() == [TABLE]


def test_missing_partitions_are_named_with_the_table_and_the_s3_location(lake: Lake):
    lake.write_partitions(TABLE, flights_frame([(D1, "AA", 1)]), "flight_date", [D1])
    with pytest.raises(FileNotFoundError) as error:
        lake.read(TABLE, [D1, D2, D3])
    message = str(error.value)
    assert TABLE in message and lake.location in message
    assert "2013-01-02" in message and "2013-01-03" in message and "2013-01-01" not in message
    with pytest.raises(FileNotFoundError, match="raw_planes"):
        lake.read("raw_planes")


def test_a_range_read_lists_once_and_leaves_the_objects_to_one_scan(lake: Lake):
    days = [D1 + timedelta(days=i) for i in range(40)]
    rows = [(day, "AA", i) for i, day in enumerate(days)]
    lake.write_partitions(TABLE, flights_frame(rows), "flight_date", days)

    calls: list[str] = []
    client = lake.store.client
    client.meta.events.register(
        "before-call.s3.*", lambda model, **_: calls.append(model.name), unique_id=COUNTER
    )
    try:
        con = duckdb.connect()
        lake.register(con, "flights", TABLE, days)
        total, first, last = con.execute(
            "SELECT count(*), min(flight_date), max(flight_date) FROM flights"
        ).fetchone()
    finally:
        client.meta.events.unregister("before-call.s3.*", unique_id=COUNTER)
    assert (total, first, last) == (40, D1, days[-1])
    # The Python side made one listing; the 40 objects were read by the dataset scan itself.
    assert calls == ["ListObjectsV2"]


def test_analysts_query_an_s3_lake_without_a_catalog_file(lake: Lake, tmp_path):
    lake.write_partitions(
        TABLE, flights_frame([(D1, "AA", 1), (D2, "B6", 2)]), "flight_date", [D1, D2]
    )
    warehouse = Lake(uri=lake.uri, warehouse_path=str(tmp_path / "warehouse.duckdb"))
    assert warehouse.refresh_warehouse() is None
    assert not (tmp_path / "warehouse.duckdb").exists()
    con = warehouse.connect()
    assert con.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (2,)


def test_an_analysts_own_database_holds_their_tables_beside_the_s3_lakes(
    lake: Lake, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    lake.write_partitions(
        TABLE, flights_frame([(D1, "AA", 1), (D2, "B6", 2)]), "flight_date", [D1, D2]
    )
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PLATFORM_LAKE_URI", lake.uri)
    with analyst_session("ana") as mine:
        mine.execute(f"CREATE TABLE early AS SELECT * FROM {TABLE} WHERE flight_date = '{D1}'")
    with analyst_session("ana") as again:
        assert again.execute("SELECT count(*) FROM early").fetchone() == (1,)
        assert again.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (2,)
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_reports_on_s3_open_through_the_report_server(lake: Lake):
    page = "flight_delay/feature_drift/date=2013-01-01/report.html"
    lake.write_object(page, b"<html>drift</html>")
    lake.write_partitions(TABLE, flights_frame([(D1, "AA", 1)]), "flight_date", [D1])
    port = free_port()
    server = report_server(lake.store, "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}", timeout=10) as answer:
            assert answer.read() == b"<html>drift</html>"
        table = f"http://127.0.0.1:{port}/{lake.partition_key(TABLE, D1)}"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(table, timeout=10)
    finally:
        server.shutdown()
        server.server_close()


def test_platform_endpoint_variable_overrides_the_aws_one(
    production: Production, monkeypatch: pytest.MonkeyPatch
):
    lake = Lake(uri=f"s3://{production.lake_bucket}/endpoint-choice")
    monkeypatch.setenv("PLATFORM_S3_ENDPOINT_URL", production.env["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    lake.write_table("raw_planes", flights_frame([(D1, "AA", 1)]))
    assert len(lake.read("raw_planes")) == 1


def test_an_unreachable_s3_endpoint_is_named_with_the_location(
    production: Production, monkeypatch: pytest.MonkeyPatch
):
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PLATFORM_S3_ENDPOINT_URL", nothing_listens)
    lake = Lake(uri=f"s3://{production.lake_bucket}/unreachable")
    where = (
        rf"S3 cannot be reached at {nothing_listens} for s3://{production.lake_bucket}/unreachable"
    )
    with pytest.raises(StoreUnreachable, match=where):
        lake.write_table("raw_planes", flights_frame([(D1, "AA", 1)]))
    with pytest.raises(StoreUnreachable, match=where):
        lake.read(TABLE, [D1])


def _estimator():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


@pytest.fixture
def registry(lake: Lake) -> ModelRegistry:
    return ModelRegistry(lake=lake)


def _store(registry: ModelRegistry, cutoff: str) -> str:
    version = f"{cutoff}.{cutoff.replace('-', '')}00"
    registry.save(
        MODEL,
        version,
        _estimator(),
        {"partition": cutoff, "training_window": [cutoff, cutoff], "created_at": cutoff},
    )
    return version


def test_concurrent_promotions_on_s3_never_share_a_sequence_number(registry: ModelRegistry):
    versions = [_store(registry, f"2013-02-{day:02d}") for day in range(1, 9)]
    with ThreadPoolExecutor(max_workers=len(versions)) as pool:
        list(pool.map(lambda v: registry.promote(MODEL, v, reason="race"), versions))
    history = registry.history(MODEL)
    assert [entry["seq"] for entry in history] == list(range(1, len(versions) + 1))
    assert sorted(entry["version"] for entry in history) == versions
    assert registry.champion_at(MODEL, date(2013, 2, 8))["version"] == versions[-1]
    # An existing entry is never replaced: the store refuses to create it again.
    with pytest.raises(FileExistsError):
        registry.lake.store.put_new(f"registry/{MODEL}/promotions/000001.json", b"{}")


def test_a_tampered_artifact_on_s3_is_refused(registry: ModelRegistry, production: Production):
    version = _store(registry, "2013-03-01")
    assert registry.load(MODEL, version).predict([[3.0]]) == [1]
    assert [r["version"] for r in registry.versions(MODEL)] == [version]
    store = registry.lake.store
    key = f"registry/{MODEL}/{version}/model.skops"
    store.put(key, store.get(key) + b"\0")
    with pytest.raises(ArtifactIntegrityError, match=rf"{version}.*s3://.*model\.skops"):
        registry.load(MODEL, version)


@pytest.mark.parametrize(
    ("location", "complaint"),
    [("gs://flightdesk/lake", "unsupported lake location"), ("s3://A_Bucket/lake", "invalid S3")],
)
def test_an_unusable_lake_location_is_named(location: str, complaint: str):
    with pytest.raises(ValueError, match=complaint) as error:
        Lake(uri=location).read(TABLE, [D1])
    assert location in str(error.value)
