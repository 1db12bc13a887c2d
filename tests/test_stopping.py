"""Ctrl-C of `make run` while a run is in progress: the run finishes (or is canceled and queued
again for the next start), nothing fails, no alert is raised, and make exits quietly with 0.

`make run` runs in a pseudo-terminal, as in a person's terminal, on an empty instance it serves
without bootstrapping; a run of a week of raw flights is launched through the webserver, and
Ctrl-C is typed once it has started.
"""

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import termios
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
from conftest import REPO_ROOT, free_port, platform_env

from resources import settings

CTRL_C = b"\x03"
STARTUP_S = 240
RUN_S = 120
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on InvalidSubsetError { message }
    ... on PythonError { message }
  }
}
"""


@dataclass
class Terminal:
    """`make run` in a pseudo-terminal, and everything it printed."""

    process: subprocess.Popen
    master: int
    port: int
    output: bytearray = field(default_factory=bytearray)

    def read_forever(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.output.extend(chunk)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def wait_for(self, text: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.text:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never printed {text!r}:\n{self.text}")
            time.sleep(0.5)

    def launch(self, assets: list[str], first: str, last: str) -> str:
        tags = {
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        }
        params = {
            "selector": {
                "repositoryLocationName": "flightdesk",
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": asset.split("/")} for asset in assets],
            },
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=json.dumps({"query": LAUNCH, "variables": {"params": params}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            launched = json.load(response)["data"]["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def type_ctrl_c(self) -> int:
        os.write(self.master, CTRL_C)
        return self.process.wait(timeout=RUN_S + 60)


@contextlib.contextmanager
def make_run(env: dict[str, str]) -> Iterator[Terminal]:
    """`make run RUN_ARGS=--no-bootstrap` with a pseudo-terminal as its controlling terminal."""
    master, slave = os.openpty()
    port = free_port()

    def controlling_terminal() -> None:  # after setsid: the terminal Ctrl-C is typed into
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", "RUN_ARGS=--no-bootstrap", f"DAGSTER_PORT={port}"],
        cwd=REPO_ROOT,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=controlling_terminal,
    )
    os.close(slave)
    terminal = Terminal(process, master, port)
    threading.Thread(target=terminal.read_forever, daemon=True).start()
    try:
        yield terminal
    finally:
        if process.poll() is None:  # the test failed midway: everything of the session goes
            for pid in session_processes(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait()
        os.close(master)


def session_processes(session: int) -> list[int]:
    """The processes of a session: make, the launcher and the services it started."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getsid(int(entry.name)) == session:
                    found.append(int(entry.name))
    return found


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An empty instance and lake; many flights a day, so a week takes a while to ingest; no
    replay, and no daily cycle before the test is over."""
    return platform_env(tmp_path) | {
        settings.REPORTS_URL_ENV: f"http://127.0.0.1:{free_port()}",
        "PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY": "40000",
        "PLATFORM_REPLAY": "off",
        "PLATFORM_AUTOMATION_SECONDS": "3600",
    }


def started(instance: dg.DagsterInstance, run_id: str) -> bool:
    return instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED


def poll(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def assert_nothing_failed(instance: dg.DagsterInstance, data: Path, terminal: Terminal) -> None:
    failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    assert not failed, f"failed runs: {[r.run_id for r in failed]}"
    alerts = data / "alerts"
    assert not (alerts.exists() and any(alerts.iterdir())), "an alert was raised"
    for noise in ("Traceback", "Error", "Warning"):
        assert noise not in terminal.text, terminal.text
    assert terminal.text.rstrip().endswith("Stopped."), terminal.text


def test_ctrl_c_lets_the_run_in_progress_finish_and_exits_quietly(env: dict[str, str]):
    data = Path(env["PLATFORM_DATA_DIR"])
    with make_run(env) as terminal, dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        terminal.wait_for("Ctrl-C stops.", STARTUP_S)
        run_id = terminal.launch(["raw_flights"], "2013-01-01", "2013-01-10")
        poll(lambda: started(instance, run_id), RUN_S, "the run to start")
        assert terminal.type_ctrl_c() == 0, terminal.text
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        assert "waiting up to 30 s for 1 run(s) in progress" in terminal.text
        assert_nothing_failed(instance, data, terminal)


def test_a_run_outlasting_the_grace_is_canceled_and_runs_at_the_next_start(env: dict[str, str]):
    data = Path(env["PLATFORM_DATA_DIR"])
    env = env | {"PLATFORM_STOP_GRACE_SECONDS": "1"}
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        with make_run(env) as terminal:
            terminal.wait_for("Ctrl-C stops.", STARTUP_S)
            # Three months: a range that outlasts the one-second grace on any machine.
            run_id = terminal.launch(["raw_flights"], "2013-01-01", "2013-03-31")
            poll(lambda: started(instance, run_id), RUN_S, "the run to start")
            assert terminal.type_ctrl_c() == 0, terminal.text
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED
        [queued] = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
        assert queued.parent_run_id == run_id
        assert f"run {run_id[:8]} canceled; run {queued.run_id[:8]} queued" in terminal.text
        assert_nothing_failed(instance, data, terminal)

        with make_run(env | {"PLATFORM_STOP_GRACE_SECONDS": str(RUN_S)}) as again:
            again.wait_for("Ctrl-C stops.", STARTUP_S)
            poll(
                lambda: instance.get_run_by_id(queued.run_id).status == dg.DagsterRunStatus.SUCCESS,
                RUN_S,
                "the queued run to run at the next start",
            )
            assert again.type_ctrl_c() == 0, again.text
        assert_nothing_failed(instance, data, again)
