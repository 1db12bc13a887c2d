"""What reaches a path or SQL is validated, a tampered model never scores, secrets stay out of
Dagster's storage, and the UI listens on the loopback interface by default (docs/security.md)."""

import os
import re
import shutil
import subprocess
import threading
from datetime import date, datetime
from html import unescape
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import QUIET, REPO_ROOT, BuiltPipeline, Platform, make_lake
from landing_support import DAY, DAYS, check_evaluation, failure_messages, landing_platform

from assets import CATALOG
from assets import defs as asset_defs
from resources.landing import LandingError
from resources.registry import ModelRegistry
from resources.storage import check_key

MALICIOUS_KEYS = ["../../../etc", "2013-01-01/../../x", "2013-01-01'; DROP TABLE x; --"]


@pytest.mark.parametrize("key", MALICIOUS_KEYS)
def test_a_malicious_partition_key_is_refused_before_any_write(key: str, tmp_path: Path, instance):
    platform = Platform(instance, None, make_lake(tmp_path))
    with pytest.raises(dg.DagsterUnknownPartitionError, match="Could not find a partition"):
        dg.materialize(
            list(asset_defs.assets),
            selection=["raw_flights"],
            partition_key=key,
            instance=instance,
            resources=platform.resources,
            run_config=QUIET,
        )
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize("key", MALICIOUS_KEYS)
def test_a_malicious_partition_range_is_refused_before_any_write(
    key: str, tmp_path: Path, instance
):
    platform = Platform(instance, None, make_lake(tmp_path))
    with pytest.raises((ValueError, dg.DagsterError)):
        dg.materialize(
            list(asset_defs.assets),
            selection=["raw_flights"],
            instance=instance,
            resources=platform.resources,
            tags={
                "dagster/asset_partition_range_start": key,
                "dagster/asset_partition_range_end": "2013-01-02",
            },
            run_config=QUIET,
        )
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(
    "day", ["../../etc", "2013-01-01", datetime(2013, 1, 1), pd.Timestamp("2013-01-01")]
)
def test_the_lake_takes_partition_days_as_dates_only(day, tmp_path: Path):
    lake = make_lake(tmp_path)
    with pytest.raises(TypeError, match="expected a datetime.date"):
        lake.partition_key("raw_flights", day)
    frame = pd.DataFrame({"flight_date": [date(2013, 1, 1)], "x": [1]})
    with pytest.raises(TypeError):
        lake.write_partitions("raw_flights", frame, "flight_date", [day])
    assert lake.partition_key("raw_flights", date(2013, 1, 1)).endswith(
        "raw_flights/date=2013-01-01/part-0.parquet"
    )


@pytest.mark.parametrize(
    "name", ["../raw_flights", "raw_flights/../../x", 'raw"; DROP TABLE x; --', "Raw", "a/b/c", ""]
)
def test_table_names_that_could_escape_the_lake_or_break_sql_are_refused(name, tmp_path: Path):
    lake = make_lake(tmp_path)
    with pytest.raises(ValueError, match="invalid table name"):
        lake.read(name)
    with pytest.raises(ValueError, match="invalid table name"):
        lake.write_table(name, pd.DataFrame({"x": [1]}))
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "a//b", "./a"])
def test_object_keys_outside_the_root_are_refused(key: str):
    with pytest.raises(ValueError, match="invalid object key"):
        check_key(key)


@pytest.mark.parametrize(
    ("model", "version"),
    [("../flight_delay", "2013-03-01.0123456789"), ("flight_delay", "../../../etc/passwd")],
)
def test_model_names_and_versions_are_validated(model: str, version: str, tmp_path: Path):
    registry = ModelRegistry(lake=make_lake(tmp_path))
    with pytest.raises(ValueError, match="invalid model"):
        registry.load(model, version)


def test_sql_in_delivered_data_is_only_data(tmp_path: Path, instance):
    landing = landing_platform(tmp_path, instance)
    path = landing.zone / "flights" / f"{DAY}.csv"
    lines = path.read_text().splitlines(keepends=True)
    injected = '2013-01-03,"\'); DROP TABLE raw_flights; --",1,N1,JFK,BOS,900,1000,9,187.0\n'
    path.write_text("".join([*lines, injected]))

    result = landing.ingest(["raw_flights"], DAY, DAY, max_reject_ratio=0.5)

    assert result.success
    rejected = landing.read("raw_flights_rejected", [DAYS[-1]])
    assert rejected["carrier"].tolist() == ["'); DROP TABLE raw_flights; --"]
    assert "is not a known carrier" in rejected["reason"].iloc[0]
    assert len(landing.read("raw_flights", [DAYS[-1]])) == 40


def test_a_tampered_model_file_is_refused_and_predictions_are_kept(
    synthetic_pipeline: BuiltPipeline, tmp_path: Path, instance
):
    shutil.copytree(synthetic_pipeline.platform.lake.root, tmp_path / "lake")
    lake = make_lake(tmp_path)
    platform = Platform(instance, None, lake)
    (record,) = ModelRegistry(lake=lake).versions("flight_delay")
    artifact = lake.root / "registry" / "flight_delay" / record["version"] / "model.skops"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    day = date.fromisoformat(record["partition"])
    before = lake.read("flight_delay/predictions", [day])

    result = dg.materialize(
        list(asset_defs.assets),
        selection=["flight_delay/predictions"],
        partition_key=day.isoformat(),
        instance=instance,
        resources=platform.resources,
        run_config=QUIET,
        raise_on_error=False,
    )

    assert not result.success
    message = failure_messages(result)
    assert "refusing to load a modified artifact" in message, message
    assert record["version"] in message and str(artifact) in message, message
    pd.testing.assert_frame_equal(lake.read("flight_delay/predictions", [day]), before)


def stored_text(instance: dg.DagsterInstance) -> str:
    """Everything Dagster stored about every run: the runs and all their events."""
    stored = []
    for record in instance.get_run_records():
        stored.append(repr(record.dagster_run))
        stored += [repr(entry) for entry in instance.all_logs(record.dagster_run.run_id)]
    return "\n".join(stored)


SECRETS = {
    "PLATFORM_SLACK_BOT_TOKEN": "xoxb-secret-token-5551212",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-key-5551212",
    "DAGSTER_PG_PASSWORD": "pg-password-5551212",
}


def test_secrets_in_the_environment_never_reach_dagsters_storage(
    tmp_path: Path, instance, monkeypatch, synthetic_source
):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    platform = Platform(instance, synthetic_source, make_lake(tmp_path))
    platform.materialize(["raw_planes"])
    platform.materialize(["raw_flights"], "2013-01-01")
    failed = dg.materialize(
        list(asset_defs.assets),
        selection=["flight_delay/features"],
        partition_key="2013-01-02",
        instance=instance,
        resources=platform.resources,
        run_config=QUIET,
        raise_on_error=False,
    )
    assert not failed.success, "a failed run's error is stored too"

    text = stored_text(instance)
    assert "raw_flights" in text
    for name, value in SECRETS.items():
        assert value not in text, f"{name} reached Dagster's run or event storage"


def test_resources_hold_no_secrets_in_their_config():
    from resources import defs as resource_defs

    for name, resource in resource_defs.resources.items():
        fields = type(resource).model_fields
        secret_like = [f for f in fields if any(w in f for w in ("password", "secret", "token"))]
        assert not secret_like, f"{name} takes secrets as config fields {secret_like}: use EnvVar"


def test_the_ui_listens_on_loopback_by_default():
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOST", "DAGSTER_PORT")}
    plan = subprocess.run(
        ["make", "-n", "run"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert plan.returncode == 0, plan.stderr
    (command,) = [line for line in plan.stdout.splitlines() if "platform/run.py" in line]
    assert " --host 127.0.0.1 " in command, command


def test_the_landing_zone_is_only_read(tmp_path: Path, instance):
    landing = landing_platform(tmp_path, instance)

    def files() -> dict[Path, tuple[bytes, int]]:
        return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in landing.zone.rglob("*.csv")}

    before = files()
    assert landing.ingest(["raw_flights", "raw_weather", "flight_outcomes"]).success
    assert files() == before


WEBHOOK = "https://hooks.slack.com/services/T0000/B0000/landing-secret-5551212"


def test_a_day_file_linking_outside_the_zone_is_refused_and_not_ingested(tmp_path: Path, instance):
    landing = landing_platform(tmp_path, instance)
    day_file = landing.zone / "flights" / f"{DAY}.csv"
    elsewhere = tmp_path / "elsewhere.csv"  # a valid delivery, but not in the zone
    day_file.rename(elsewhere)
    day_file.symlink_to(elsewhere)

    result = landing.ingest(["raw_flights"], DAY, DAY)

    assert not result.success
    message = failure_messages(result)
    assert f"flights/{DAY}.csv: '{DAY}.csv' is a symbolic link" in message, message
    assert not (landing.platform.lake.root / "raw_flights").exists()
    assert f"flights/{DAY}.csv" in landing.platform.resources["sources"].landing().files()


def test_a_folder_linking_outside_the_zone_is_refused(tmp_path: Path, instance):
    landing = landing_platform(tmp_path, instance)
    folder = landing.zone / "flights"
    folder.rename(tmp_path / "flights_elsewhere")
    folder.symlink_to(tmp_path / "flights_elsewhere", target_is_directory=True)

    result = landing.ingest(["raw_flights"], DAY, DAY)

    assert not result.success
    assert "'flights' is a symbolic link or not a folder" in failure_messages(result)
    assert not (landing.platform.lake.root / "raw_flights").exists()


@pytest.mark.parametrize("delivered_as", ["a link to it", "a copy of it"])
def test_a_secret_file_in_the_zone_never_reaches_errors_or_events(
    tmp_path: Path, instance, delivered_as: str
):
    landing = landing_platform(tmp_path, instance)
    secret = tmp_path / "secrets.env"
    secret.write_text(f"{WEBHOOK}\nPLATFORM_SLACK_BOT_TOKEN=xoxb-5551212\n")
    planes = landing.zone / "planes.csv"
    planes.unlink()
    if delivered_as == "a link to it":
        planes.symlink_to(secret)
    else:
        shutil.copyfile(secret, planes)

    result = landing.ingest(["raw_planes"], first=None)

    assert not result.success
    assert "planes.csv" in failure_messages(result)
    text = stored_text(instance)
    assert "planes.csv" in text
    assert "hooks.slack.com" not in text and "5551212" not in text


def test_a_pipe_in_the_zone_is_refused_without_waiting_for_a_writer(tmp_path: Path, instance):
    landing = landing_platform(tmp_path, instance)
    pipe = landing.zone / "planes.csv"
    pipe.unlink()
    os.mkfifo(pipe)
    zone = landing.platform.resources["sources"].landing()
    outcome: list = []
    reader = threading.Thread(
        target=lambda: outcome.append(
            pytest.raises(LandingError, zone.landed, CATALOG.table("raw_planes"))
        ),
        daemon=True,
    )
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive():
        with open(pipe, "wb"):  # unblock the reader before failing
            pass
        pytest.fail("reading the landing zone waited on a pipe")
    assert "not a regular file" in str(outcome[0].value)


HOSTILE = "a|b **bold** <img src=x> [ln](http://e.x) `c` &amp;"


def rendered_rows(markdown: str) -> list[list[str]]:
    """The cells of a Markdown table as a CommonMark renderer with tables shows them, failing
    when any markup other than the table's own is rendered."""
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(markdown)
    tags = set(re.findall(r"</?([a-z]+)", html))
    assert tags <= {"table", "thead", "tbody", "tr", "th", "td"}, html
    return [
        [unescape(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    ]


def test_delivered_text_in_metadata_shows_as_text_and_never_as_markup(tmp_path: Path, instance):
    landing = landing_platform(tmp_path, instance)
    day_file = landing.zone / "flights" / f"{DAY}.csv"
    frame = pd.read_csv(day_file, dtype=str, keep_default_na=False)
    frame.loc[0, "tailnum"] = HOSTILE  # a good row: it reaches the preview
    frame.loc[1, "carrier"] = "Z|*Z*"  # an unknown carrier: its reason quotes it
    frame.to_csv(day_file, index=False)

    result = landing.ingest(["raw_flights"], DAY, DAY, max_reject_ratio=0.5)

    assert result.success
    metadata = {}
    for event in result.get_asset_materialization_events():
        metadata |= event.materialization.metadata
    preview = rendered_rows(metadata["preview"].value)
    assert all(len(row) == len(frame.columns) for row in preview), preview
    assert preview[1][frame.columns.get_loc("tailnum")] == HOSTILE
    delivery = check_evaluation(result, "raw_flights").metadata  # the run's rejects, on its check
    rejected = rendered_rows(delivery["rejected_preview"].value)
    assert [len(row) for row in rejected] == [3, 3], rejected
    assert rejected[1][2] == "carrier: 'Z|*Z*' is not a known carrier"
