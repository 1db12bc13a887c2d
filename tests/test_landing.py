"""The landing zone as a source: its layout, files that have not arrived, redelivery, the sensor
that picks files up, and the same zone on S3."""

import os
import shutil
import time
import uuid
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from landing_support import (
    CORPUS,
    DAY,
    DAYS,
    FIRST,
    FOLDER,
    RAW,
    Landing,
    failure_messages,
    landing_platform,
    valid_rows,
)

from assets import CATALOG
from datasets.flights.tables import FLIGHT_KEY
from resources.sources import Sources, sources_from_settings
from sensors.landing import build_landing_sensor

RUN_KEY = "dagster/run_key"
SENSOR = build_landing_sensor(CATALOG.tables["raw_flights"][0])
# (asset, partition) of each file of the corpus zone
EVERY_FILE = {(table, day.isoformat()) for table in RAW for day in DAYS} | {("raw_planes", None)}


@pytest.fixture
def landing(tmp_path: Path, instance: dg.DagsterInstance) -> Landing:
    """The corpus zone and an empty lake."""
    return landing_platform(tmp_path, instance)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_landed_rows_equal_the_real_data_they_came_from(landing: Landing):
    source = landing.platform.resources["sources"]
    bundled = Sources(kind="bundled")
    key = list(FLIGHT_KEY)
    landed = valid_rows(source, "raw_flights", DAYS[0], DAYS[-1])
    real = valid_rows(bundled, "raw_flights", DAYS[0], DAYS[-1]).merge(landed[key])
    assert len(landed) == 120
    pd.testing.assert_frame_equal(canonical(landed), canonical(real))
    outcomes = valid_rows(source, "flight_outcomes", DAYS[0], DAYS[-1])
    real = valid_rows(bundled, "flight_outcomes", DAYS[0], DAYS[-1]).merge(outcomes[key])
    pd.testing.assert_frame_equal(canonical(outcomes), canonical(real))
    pd.testing.assert_frame_equal(
        canonical(valid_rows(source, "raw_weather", DAYS[0], DAYS[-1])),
        canonical(valid_rows(bundled, "raw_weather", DAYS[0], DAYS[-1])),
    )
    planes = valid_rows(source, "raw_planes")
    real = valid_rows(bundled, "raw_planes").merge(planes[["tailnum"]])
    assert len(planes) == 103
    pd.testing.assert_frame_equal(canonical(planes), canonical(real))


def test_parquet_deliveries_ingest_like_csv(landing: Landing, tmp_path: Path, instance):
    assert landing.ingest(RAW).success
    as_csv = {table: canonical(landing.read(table)) for table in RAW}

    parquet = landing_platform(tmp_path / "parquet", instance)
    source = parquet.platform.resources["sources"]
    for table, folder in FOLDER.items():
        for day in DAYS:
            csv_file = parquet.zone / folder / f"{day}.csv"
            valid_rows(source, table, day, day).to_parquet(csv_file.with_suffix(".parquet"))
            csv_file.unlink()
    assert parquet.ingest(RAW).success
    for table in RAW:
        pd.testing.assert_frame_equal(canonical(parquet.read(table)), as_csv[table], obj=table)


def test_a_day_whose_file_has_not_arrived_fails_naming_it_and_writes_nothing(landing: Landing):
    (landing.zone / "weather" / f"{DAY}.csv").unlink()

    result = landing.ingest(["raw_weather"], FIRST, DAY)

    assert not result.success
    message = failure_messages(result)
    assert f"not arrived yet: weather/{DAY}.(csv|parquet)" in message, message
    failure = next(e for e in result.all_events if e.is_step_failure)
    metadata = failure.event_specific_data.user_failure_data.metadata
    assert metadata["missing_files"].value == [f"weather/{DAY}.(csv|parquet)"]
    # The days that had arrived are not written either: the range is one run, all or nothing.
    assert landing.platform.lake.missing_partitions("raw_weather", DAYS) == DAYS


def test_a_day_delivered_as_csv_and_parquet_is_refused(landing: Landing):
    csv_file = landing.zone / "flights" / f"{DAY}.csv"
    pd.read_csv(csv_file).to_parquet(csv_file.with_suffix(".parquet"))

    result = landing.ingest(["raw_flights"], DAY, DAY)

    assert not result.success
    assert "both a CSV and a Parquet file" in failure_messages(result)


@pytest.mark.parametrize("corpus_file", ["flights/out_of_range.csv", None])
def test_the_same_file_delivered_twice_gives_the_same_lake(landing: Landing, corpus_file):
    if corpus_file:
        landing.deliver(corpus_file)
    landing.ingest(["raw_flights"], FIRST, DAY)
    first = landing.stored()

    delivered = landing.zone / "flights" / f"{DAY}.csv"
    shutil.copyfile(delivered, delivered.with_name("copy"))
    os.replace(delivered.with_name("copy"), delivered)  # delivered again: a new file, same bytes
    landing.ingest(["raw_flights"], FIRST, DAY)

    again = landing.stored()
    assert again.keys() == first.keys()
    for table, frame in first.items():
        pd.testing.assert_frame_equal(again[table], frame, obj=table)
    if corpus_file:
        assert len(again["raw_flights_rejected"]) == 4, "rejects are replaced, never appended"


def test_the_environment_selects_the_landing_zone(landing: Landing, monkeypatch):
    monkeypatch.setenv("PLATFORM_SOURCE", "landing")
    monkeypatch.setenv("PLATFORM_LANDING_URI", str(landing.zone))
    assert len(valid_rows(sources_from_settings(), "raw_flights", DAYS[0], DAYS[0])) == 40

    monkeypatch.delenv("PLATFORM_LANDING_URI")
    with pytest.raises(ValueError, match="a landing source needs PLATFORM_LANDING_URI"):
        valid_rows(sources_from_settings(), "raw_flights", DAYS[0], DAYS[0])


# --- The sensor ----------------------------------------------------------------------------------


def evaluate(
    instance: dg.DagsterInstance, sources: Sources, cursor: str | None = None
) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"sources": sources}
    )
    result = SENSOR(context)
    if isinstance(result, dg.SkipReason):
        return dg.SensorResult(skip_reason=result, cursor=cursor)
    return result


def launch(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """Record the requested runs as the daemon does: runs tagged with their run keys."""
    for request in result.run_requests or []:
        run = dg.DagsterRun(
            job_name="__ASSET_JOB",
            run_id=str(uuid.uuid4()),
            tags={RUN_KEY: request.run_key},
            status=dg.DagsterRunStatus.NOT_STARTED,
        )
        instance.add_run(run)


def requested(result: dg.SensorResult) -> dict[str, tuple[str, str | None]]:
    """Run key -> (asset, partition) of every requested run."""
    return {
        r.run_key: (r.asset_selection[0].to_user_string(), r.partition_key)
        for r in result.run_requests or []
    }


@pytest.fixture
def watched(landing: Landing) -> Sources:
    return landing.platform.resources["sources"]


def test_the_sensor_is_idle_without_a_landing_zone(instance):
    result = evaluate(instance, Sources(kind="bundled"))
    assert not result.run_requests
    assert "flights does not come from the landing zone" in result.skip_reason.skip_message


def test_the_sensor_requests_each_file_once_and_again_when_redelivered(
    landing: Landing, watched: Sources, instance
):
    first = evaluate(instance, watched)
    runs = requested(first)
    assert set(runs.values()) == EVERY_FILE and len(runs) == len(EVERY_FILE)
    assert all(key.startswith("landing:") for key in runs)
    assert f"landing:flights/{DAY}.csv@" in " ".join(runs)

    launch(instance, first)

    # Nothing new: skipped at once.
    again = evaluate(instance, watched, first.cursor)
    assert not again.run_requests
    assert "no new or redelivered flights files" in again.skip_reason.skip_message

    # A redelivery (a new modification time) is one new run, of that file only.
    delivered = landing.zone / "weather" / f"{DAY}.csv"
    stat = delivered.stat()
    os.utime(delivered, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    redelivered = requested(evaluate(instance, watched, first.cursor))
    assert list(redelivered.values()) == [("raw_weather", DAY)]
    assert not set(redelivered) & set(runs)


def test_a_run_key_already_used_is_never_requested_again(
    landing: Landing, watched: Sources, instance
):
    first = evaluate(instance, watched)
    launch(instance, first)
    delivered = landing.zone / "flights" / f"{DAY}.csv"
    later = time.time() + 60
    os.utime(delivered, (later, later))  # delivered again after the sensor started
    (key,) = requested(evaluate(instance, watched, first.cursor))

    # The run happened, but the tick that requested it lost its cursor update.
    result = landing.ingest(["raw_flights"], DAY, DAY)
    instance.add_run_tags(result.run_id, {RUN_KEY: key})

    assert requested(evaluate(instance, watched, first.cursor)) == {}


def test_a_sensor_started_beside_a_backfilled_lake_skips_what_is_ingested(
    landing: Landing, watched: Sources, instance
):
    assert landing.ingest(RAW, FIRST, DAYS[1].isoformat()).success

    runs = requested(evaluate(instance, watched))

    assert set(runs.values()) == {(table, DAY) for table in RAW} | {("raw_planes", None)}


def test_files_outside_the_partitions_are_ignored(landing: Landing, watched: Sources, instance):
    for name in ("2014-06-01.csv", "2013-02-30.csv"):
        shutil.copyfile(landing.zone / "flights" / f"{DAY}.csv", landing.zone / "flights" / name)
    (landing.zone / "flights" / "notes.txt").write_text("not a delivery\n")
    runs = requested(evaluate(instance, watched))
    assert set(runs.values()) == EVERY_FILE and len(runs) == len(EVERY_FILE)


# --- S3 ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory):
    from prod.servers import start_s3_server

    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    yield server.endpoint_url
    server.stop()


def test_a_landing_zone_on_s3_reads_and_versions_like_a_folder(
    s3_endpoint: str, monkeypatch, tmp_path: Path
):
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="landing")
    zone = CORPUS / "zone"
    for path in zone.rglob("*.csv"):
        client.upload_file(str(path), "landing", f"drop/{path.relative_to(zone).as_posix()}")
    client.upload_file(
        str(CORPUS / "bad" / "flights" / "empty.csv"), "landing", "drop/flights/2013-01-04.csv"
    )

    on_s3 = Sources(kind="landing", landing_uri="s3://landing/drop", s3_endpoint_url=s3_endpoint)
    local = Sources(kind="landing", landing_uri=str(zone))
    pd.testing.assert_frame_equal(
        valid_rows(on_s3, "raw_flights", DAYS[0], DAYS[-1]),
        valid_rows(local, "raw_flights", DAYS[0], DAYS[-1]),
    )
    with pytest.raises(ValueError, match=r"flights/2013-01-04.csv: the file is empty"):
        valid_rows(on_s3, "raw_flights", DAYS[0], date(2013, 1, 4))

    versions = on_s3.landing().files()
    assert len(versions) == 11  # 9 daily files, the empty one, the planes
    key = f"flights/{DAY}.csv"
    client.upload_file(str(zone / key), "landing", f"drop/{key}")
    assert on_s3.landing().files()[key].version == versions[key].version, "same bytes, same ETag"
    client.put_object(Bucket="landing", Key=f"drop/{key}", Body=b"changed\n")
    assert on_s3.landing().files()[key].version != versions[key].version
