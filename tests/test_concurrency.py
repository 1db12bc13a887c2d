"""Runs in parallel processes, as the daemon launches them: different partitions at once, a retrain
beside a backfill, and the analysts' catalog refreshed under a reader. No run may fail on a lock,
and processes opening a new instance at once never race on its schema."""

import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
from conftest import (
    REPO_ROOT,
    SYNTHETIC_FLIGHTS_PER_DAY,
    BuiltPipeline,
    Platform,
    make_lake,
    platform_env,
    start_materialize,
    synthetic_sources,
)

from resources.days import days_between
from resources.lake import Lake
from resources.registry import ModelRegistry

RAW = "raw_flights,raw_weather,flight_outcomes"
LOCK_ERRORS = ("database is locked", "could not set lock", "conflicting lock")
SUBPROCESS_SECONDS = 600


def assert_all_succeed(processes: list[subprocess.Popen]) -> None:
    outputs = [p.communicate(timeout=SUBPROCESS_SECONDS)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-4000:]
        assert not any(error in output.lower() for error in LOCK_ERRORS), output[-4000:]


def successful_runs(home: Path) -> int:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return len(instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])))


# What a CLI run does first: open the instance and each of its storages.
OPEN_INSTANCE = """
import dagster as dg
with dg.DagsterInstance.get() as instance:
    instance.get_runs(limit=1), instance.get_asset_keys(), instance.all_instigator_state()
"""


def test_processes_opening_an_instance_made_by_make_instance_never_race(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PLATFORM_DATA_DIR"] = str(tmp_path)
    made = subprocess.run(
        ["make", "-s", "instance"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stdout + made.stderr

    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_INSTANCE],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(6)
    ]
    for opener in openers:
        output = opener.communicate(timeout=SUBPROCESS_SECONDS)[0]
        assert opener.returncode == 0, output[-3000:]


def test_four_partitions_materialize_in_parallel_processes(tmp_path: Path):
    env = platform_env(tmp_path)
    days = days_between(date(2013, 1, 5), date(2013, 1, 8))

    assert_all_succeed(
        [start_materialize(env, RAW, "--partition", day.isoformat()) for day in days]
    )

    lake = Lake(uri=str(tmp_path / "lake"), warehouse_path=str(tmp_path / "warehouse.duckdb"))
    for table in RAW.split(","):
        assert lake.missing_partitions(table, days) == [], table
    flights = lake.read("raw_flights", days)
    assert len(flights) == len(days) * SYNTHETIC_FLIGHTS_PER_DAY
    assert successful_runs(tmp_path / "dagster_home") == len(days)
    # Every run refreshed the catalog; the last swap in still has every table.
    with duckdb.connect(str(lake.warehouse), read_only=True) as con:
        for table in RAW.split(","):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table


def test_a_retrain_runs_beside_a_backfill(synthetic_pipeline: BuiltPipeline, tmp_path: Path):
    built = synthetic_pipeline.platform.lake
    shutil.copytree(built.root, tmp_path / "lake")
    env = platform_env(tmp_path)
    lake = make_lake(tmp_path)
    registry = ModelRegistry(lake=lake)
    versions = {r["version"] for r in registry.versions("flight_delay")}
    backfill_days = days_between(date(2013, 3, 11), date(2013, 3, 20))

    # A gate that always passes: this test is about running side by side, not model quality.
    gate = (
        '{"ops": {"flight_delay__model": {"config": {"gate_limit": 0.0, "gate_tolerance": 1.0}}}}'
    )
    retrain = start_materialize(
        env, "flight_delay/model", "--partition", "2013-03-08", "--config-json", gate
    )
    backfill = start_materialize(
        env,
        f"{RAW},flight_delay/features",
        "--partition-range",
        f"{backfill_days[0]}...{backfill_days[-1]}",
    )
    assert_all_succeed([retrain, backfill])

    trained = [r for r in registry.versions("flight_delay") if r["version"] not in versions]
    assert [r["partition"] for r in trained] == ["2013-03-08"]
    assert lake.missing_partitions("flight_delay/features", backfill_days) == []
    assert successful_runs(tmp_path / "dagster_home") == 2


READER = """
import os, sys, duckdb
path, stop, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
kept = duckdb.connect(path, read_only=True)
queries, errors = 0, []
print("ready", flush=True)
while not os.path.exists(stop):
    for con in (kept, duckdb.connect(path, read_only=True)):
        try:
            count = con.execute("SELECT count(*) FROM raw_flights").fetchone()[0]
            if count != expected:
                errors.append(f"{count} rows")
            queries += 1
        except Exception as error:
            errors.append(repr(error))
        if con is not kept:
            con.close()
print(queries, len(errors), errors[:3], flush=True)
"""


def test_the_catalog_is_refreshed_while_a_reader_queries_it(tmp_path: Path, instance):
    lake = make_lake(tmp_path)
    Platform(instance, synthetic_sources(), lake).materialize(
        ["raw_flights"], "2013-01-01", "2013-01-03"
    )
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(lake.warehouse), str(stop), str(3 * 120)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "ready"
        for _ in range(30):
            lake.refresh_warehouse()
            time.sleep(0.01)
    finally:
        stop.touch()
        output = reader.communicate(timeout=SUBPROCESS_SECONDS)[0]
    queries, errors = output.split(maxsplit=2)[:2]
    assert int(errors) == 0, output
    assert int(queries) > 30, output
