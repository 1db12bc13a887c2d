"""A materialization killed with SIGKILL in the middle of writing a partition leaves the previous
content whole and readable, and a rerun completes it."""

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import QUIET, REPO_ROOT, make_lake

from datasets.flights.synthetic import SyntheticFlights
from datasets.flights.tables import FLIGHTS

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
