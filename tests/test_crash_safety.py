"""Killed runs leave nothing broken or held: a materialization killed with SIGKILL in the middle
of writing a partition leaves the previous content whole and readable, and a rerun completes it;
a training killed mid-fit holds no pool, and a rerun of its cutoff succeeds within a minute."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import (
    DAGSTER,
    QUIET,
    REPO_ROOT,
    BuiltPipeline,
    make_lake,
    platform_env,
    start_materialize,
)
from daemon_support import Daemon

from datasets.flights.synthetic import SyntheticFlights
from datasets.flights.tables import FLIGHTS
from resources.registry import ModelRegistry
from sensors.run_tags import PARTITION_TAG

DAY = date(2013, 1, 5)
# Large enough that writing the day takes a while: the kill has a write to land in.
FLIGHTS_PER_DAY = 150_000
SEEDS = (1, 2)
ATTEMPTS = 4
# The child materializes raw_flights[DAY] over and over, alternating two different contents, and
# prints which one it finished each time.
CHILD = f"""
import sys, warnings
import dagster as dg
warnings.filterwarnings("ignore")
from assets import defs
from resources import platform_resources
from resources.lake import Lake
from resources.sources import Sources

lake = Lake(uri=sys.argv[1], warehouse_path=sys.argv[2])
instance = dg.DagsterInstance.ephemeral()
for run in range(1000):
    seed = {SEEDS}[run % 2]
    sources = Sources(
        kind="synthetic", synthetic={{"seed": str(seed), "flights_per_day": "{FLIGHTS_PER_DAY}"}}
    )
    dg.materialize(
        list(defs.assets), selection=["raw_flights"], partition_key="{DAY}", instance=instance,
        resources=platform_resources(sources=sources, lake=lake), run_config={QUIET},
    )
    print(seed, flush=True)
"""


def expected_content(seed: int) -> pa.Table:
    frame = SyntheticFlights(seed=seed, flights_per_day=FLIGHTS_PER_DAY).rows(FLIGHTS, DAY, DAY)
    return pa.Table.from_pandas(frame, preserve_index=False).cast(FLIGHTS.arrow_schema)


def staging_files(folder: Path) -> list[Path]:
    """Writes in progress (or cut short): hidden temporary siblings of the partition file."""
    return [p for p in folder.iterdir() if p.name.startswith(".")] if folder.exists() else []


def kill_while_writing(lake_root: Path, warehouse: Path, folder: Path) -> tuple[bool, int]:
    """Start a writer, SIGKILL it as soon as a partition write is in flight (after at least one
    finished), and return whether the write was cut short and the last content it finished."""
    before = set(staging_files(folder))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(lake_root), str(warehouse)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        finished = [child.stdout.readline().strip()]
        assert finished[0] in {str(s) for s in SEEDS}, "no write finished"
        deadline = time.monotonic() + 120
        while not set(staging_files(folder)) - before:
            assert time.monotonic() < deadline, "no second write started"
            assert child.poll() is None, "the writer exited"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        finished += child.communicate()[0].split()
    assert child.returncode == -signal.SIGKILL
    cut_short = bool(set(staging_files(folder)) - before)
    return cut_short, int(finished[-1])


def test_a_partition_write_killed_midway_leaves_the_previous_content(tmp_path: Path):
    lake = make_lake(tmp_path)
    partition = lake.partition_file("raw_flights", DAY)
    expected = {seed: expected_content(seed) for seed in SEEDS}
    assert not expected[SEEDS[0]].equals(expected[SEEDS[1]])

    cut_short = 0
    for _ in range(ATTEMPTS):
        killed_midway, last_finished = kill_while_writing(
            lake.root, lake.warehouse, partition.parent
        )
        # Whatever the moment of the kill, the partition is a whole file of one of the contents.
        stored = pq.read_table(partition)
        assert any(stored.equals(content) for content in expected.values())
        assert len(lake.read("raw_flights", [DAY])) == FLIGHTS_PER_DAY
        if killed_midway:
            # Killed before the rename: the content is the one the last finished write left.
            assert stored.equals(expected[last_finished])
            cut_short += 1
        if cut_short >= 2:
            break
    if not cut_short:
        pytest.fail(f"no kill landed during a write in {ATTEMPTS} attempts")

    # A rerun completes the partition; the leftovers of the killed writes are never read.
    assert staging_files(partition.parent), "a killed write leaves its temporary file"
    rerun = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD.replace("range(1000)", "range(1)"),
            str(lake.root),
            str(lake.warehouse),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert pq.read_table(partition).equals(expected[SEEDS[0]])
    assert lake.tables() == ["raw_flights"]


TRAINING, TRAINING_STEP = "flight_delay/model", "flight_delay__model"
KILLED_CUTOFF, OTHER_CUTOFF = "2013-03-08", "2013-03-09"
LENIENT = {"gate_limit": 0.0, "gate_tolerance": 1.0}
# A hyperparameter search with only a time budget fits model after model for ten minutes: a
# training that is mid-fit whenever the test acts on it.
FITTING = {**LENIENT, "search_seconds": 600}
RERUN_SECONDS = 60
STARTUP_SECONDS = 180


def training_config(fields: dict) -> str:
    return json.dumps({"ops": {TRAINING_STEP: {"config": fields}}})


def fitting_run(instance: dg.DagsterInstance, cutoff: str) -> str | None:
    """The run training `cutoff` once its step has started, or None."""
    for run in instance.get_runs(dg.RunsFilter(tags={PARTITION_TAG: cutoff})):
        if instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_START).records:
            return run.run_id
    return None


def engine_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    return [r.event_log_entry.dagster_event.message or "" for r in records.records]


def launch_queued(env: dict[str, str], cutoff: str, run_id: str) -> None:
    """Submit a training of `cutoff` to the run queue, as the UI, a sensor or a schedule does."""
    launched = subprocess.run(
        [
            str(DAGSTER),
            *("job", "launch", "-w", "workspace.yaml", "-j", "__ASSET_JOB"),
            *("-o", TRAINING_STEP, "--run-id", run_id),
            *("--tags", json.dumps({PARTITION_TAG: cutoff})),
            *("--config-json", training_config(LENIENT)),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )
    assert launched.returncode == 0, launched.stdout + launched.stderr


def test_a_training_killed_mid_fit_holds_nothing_and_its_rerun_succeeds_within_a_minute(
    synthetic_pipeline: BuiltPipeline, tmp_path: Path
):
    shutil.copytree(synthetic_pipeline.platform.lake.root, tmp_path / "lake")
    env = platform_env(tmp_path) | {"PLATFORM_MODEL_THREADS": "1"}
    registry = ModelRegistry(lake=make_lake(tmp_path))
    [bootstrapped] = registry.history("flight_delay")
    daemon = Daemon(env, tmp_path / "daemon.log")
    killed = start_materialize(
        env, TRAINING, "--partition", KILLED_CUTOFF, "--config-json", training_config(FITTING),
        log=tmp_path / "killed.log",
    )  # fmt: skip
    other = None
    try:
        with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
            killed_run = daemon.wait_until(
                lambda: fitting_run(instance, KILLED_CUTOFF), STARTUP_SECONDS, "training"
            )

            # A training of another cutoff started from the command line beside it does not
            # wait for the pool the first holds: it never blocks in its process, and succeeds.
            other = start_materialize(
                env, TRAINING, "--partition", OTHER_CUTOFF, "--config-json",
                training_config(LENIENT), log=tmp_path / "other.log",
            )  # fmt: skip
            assert other.wait(timeout=STARTUP_SECONDS) == 0, (tmp_path / "other.log").read_text()
            [other_run] = instance.get_runs(dg.RunsFilter(tags={PARTITION_TAG: OTHER_CUTOFF}))
            assert not [m for m in engine_messages(instance, other_run.run_id) if "blocked" in m]

            # A rerun through the run queue waits, without a process, while the training holds
            # the pool.
            rerun = str(uuid.uuid4())
            launch_queued(env, KILLED_CUTOFF, rerun)
            daemon.wait_until(
                lambda: (
                    f"Run {rerun} is blocked by global concurrency limits" in daemon.log.read_text()
                ),
                STARTUP_SECONDS,
                "queued rerun held by the pool",
            )
            assert instance.get_run_by_id(rerun).status == dg.DagsterRunStatus.QUEUED

            os.kill(killed.pid, signal.SIGKILL)
            killed.wait()
            died = time.monotonic()
            assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.STARTED
            daemon.wait_until(
                lambda: instance.get_run_by_id(rerun).status == dg.DagsterRunStatus.SUCCESS,
                RERUN_SECONDS,
                "successful rerun",
            )
            took = time.monotonic() - died
            ended = instance.get_run_by_id(killed_run)
            [failure] = instance.all_logs(killed_run, of_type=dg.DagsterEventType.RUN_FAILURE)
    finally:
        daemon.stop()
        for process in (killed, other):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    print(f"rerun of the killed training succeeded {took:.1f}s after the kill")
    assert ended.status == dg.DagsterRunStatus.FAILURE
    assert f"its process {killed.pid} is gone" in failure.message
    history = registry.history("flight_delay")
    assert [e["seq"] for e in history] == [1, 2, 3]
    assert history[0] == bootstrapped
    promoted = [(e["effective_from"], e["action"]) for e in history[1:]]
    assert promoted == [(OTHER_CUTOFF, "promote"), (KILLED_CUTOFF, "promote")]
