"""Runs whose process is gone are ended by the `dead_runs` sensor; runs whose process lives are
left alone. (A real training killed mid-fit, ended by the sensor in the daemon, is in
tests/test_crash_safety.py.)"""

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.events import EngineEventData

from sensors.dead_runs import CLOCK_SLACK_SECONDS, dead_runs, is_running

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen]]:
    """Processes started for a test, killed and reaped after it."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def sleeper(started: list[subprocess.Popen]) -> subprocess.Popen:
    started.append(subprocess.Popen(SLEEPER))
    return started[-1]


def run_in_process(
    instance: dg.DagsterInstance, pid: int, status: dg.DagsterRunStatus
) -> dg.DagsterRun:
    """A run in `status` whose steps execute in process `pid`, recorded as Dagster records it."""
    run = dg.DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()), status=status)
    instance.add_run(run)
    instance.report_engine_event(
        f"Executing steps in process (pid: {pid})", run, EngineEventData.in_process(pid)
    )
    return run


def status(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run.run_id).status


def test_runs_whose_process_is_gone_are_ended_and_the_others_kept(instance, sleepers):
    alive, killed, zombie = sleeper(sleepers), sleeper(sleepers), sleeper(sleepers)
    killed.kill()
    killed.wait()
    zombie.kill()  # not reaped: its entry stays, as a zombie, until its parent waits for it
    runs = {
        "alive": run_in_process(instance, alive.pid, dg.DagsterRunStatus.STARTED),
        "killed": run_in_process(instance, killed.pid, dg.DagsterRunStatus.STARTED),
        "zombie": run_in_process(instance, zombie.pid, dg.DagsterRunStatus.STARTED),
        "cancelling": run_in_process(instance, killed.pid, dg.DagsterRunStatus.CANCELING),
    }
    succeeded = run_in_process(instance, killed.pid, dg.DagsterRunStatus.SUCCESS)

    skipped = dead_runs(dg.build_sensor_context(instance=instance))

    assert status(instance, runs["alive"]) == dg.DagsterRunStatus.STARTED
    assert status(instance, runs["killed"]) == dg.DagsterRunStatus.FAILURE
    assert status(instance, runs["zombie"]) == dg.DagsterRunStatus.FAILURE
    assert status(instance, runs["cancelling"]) == dg.DagsterRunStatus.CANCELED
    assert status(instance, succeeded) == dg.DagsterRunStatus.SUCCESS
    [failure] = instance.all_logs(runs["killed"].run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert f"its process {killed.pid} is gone" in failure.message
    assert runs["killed"].run_id in skipped.skip_message
    assert runs["alive"].run_id not in skipped.skip_message

    again = dead_runs(dg.build_sensor_context(instance=instance))
    assert again.skip_message == "every run in progress has its process"


def test_a_process_that_took_a_dead_runs_id_later_does_not_keep_it_in_progress(sleepers):
    before = time.time()
    time.sleep(CLOCK_SLACK_SECONDS + 1)
    later = sleeper(sleepers)
    assert is_running(later.pid, since=time.time())
    assert not is_running(later.pid, since=before)


def test_a_run_not_yet_in_a_process_is_left_alone(instance):
    run = dg.DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()))
    instance.add_run(run.with_status(dg.DagsterRunStatus.STARTED))

    dead_runs(dg.build_sensor_context(instance=instance))

    assert status(instance, run) == dg.DagsterRunStatus.STARTED
