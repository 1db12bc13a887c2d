"""`dagster dev` (webserver and daemon) on a temporary instance and lake, the way `make run` serves it.

The lake and instance are bootstrapped in this process with a small synthetic source, then
`dagster dev` serves the real code location (`workspace.yaml`) with the same source chosen through
the environment (`PLATFORM_SOURCE`, `PLATFORM_SYNTHETIC_*`), so the browser sees what the
bootstrap wrote, and every run launched from the UI or by a sensor reads the same data.

The calendar of the tests (all 2013):

- 01-01..02-14: bootstrapped; the first champion has cutoff 02-01 and scores 02-01..02-14;
- 02-15..02-21: never materialized, left for the backfill journey;
- 02-22..02-26: the synthetic source drifts from 02-22 on; the retraining journey feeds these days.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import dagster as dg
from conftest import SYNTHETIC_FLIGHTS_PER_DAY, Platform, free_port, make_lake
from resources.source_choice import SOURCE_ENV, SYNTHETIC_ENV
from resources.synthetic import SyntheticFlightSource

from resources.lake import Lake

REPO_ROOT = Path(__file__).resolve().parents[2]

BOOTSTRAP_FIRST, BOOTSTRAP_LAST = "2013-01-01", "2013-02-14"
FIRST_CUTOFF = "2013-02-01"
BACKFILL_FIRST, BACKFILL_LAST = "2013-02-15", "2013-02-21"
DRIFT_START, DRIFT_LAST = "2013-02-22", "2013-02-26"
SYNTHETIC = {"seed": 7, "flights_per_day": SYNTHETIC_FLIGHTS_PER_DAY, "drift_start": DRIFT_START}

MODEL = "flight_delay"
RAW_TABLES = ["raw_flights", "raw_weather", "flight_outcomes"]
DAILY_GRAPH = [
    *RAW_TABLES,
    f"{MODEL}/features",
    f"{MODEL}/predictions",
    f"{MODEL}/feature_drift",
    f"{MODEL}/prediction_quality",
]
# Asset keys materialized together in one run over the days first..last (one, or none when None).
Steps = list[tuple[list[str], str | None, str | None]]
# The graph as `make run` bootstraps it, each step one run over its whole partition range.
BOOTSTRAP_STEPS: Steps = [
    (["raw_planes"], None, None),
    (RAW_TABLES, BOOTSTRAP_FIRST, BOOTSTRAP_LAST),
    ([f"{MODEL}/features"], BOOTSTRAP_FIRST, BOOTSTRAP_LAST),
    ([f"{MODEL}/model"], FIRST_CUTOFF, None),
    (
        [f"{MODEL}/predictions", f"{MODEL}/feature_drift", f"{MODEL}/prediction_quality"],
        FIRST_CUTOFF,
        BOOTSTRAP_LAST,
    ),
]
# The platform's settings for the journeys (see sensors/retrain.py and sensors/schedules.py):
# - sensors and the daily cycle tick every few seconds, so the journeys stay short;
# - a day counts as drifted from 15% of drifted columns: with 120 flights a day the synthetic drift
#   moves 5 to 9 of the 28 feature columns (the 7-day delay statistics among them) while noise
#   alone moves up to 3, and 15% sits in the middle of that gap;
# - the quality sensor never fires: the daily AUC of 120 flights is too noisy to judge, and a
#   retrain it requested would put the drift sensor in its cooldown.
PLATFORM_SETTINGS = {
    "PLATFORM_AUTOMATION_SECONDS": "5",
    "PLATFORM_RETRAIN_SENSOR_SECONDS": "5",
    "PLATFORM_DRIFT_THRESHOLD": "0.15",
    "PLATFORM_QUALITY_AUC_FLOOR": "0",
    "PLATFORM_QUALITY_AUC_MARGIN": "1",
}
STARTUP_TIMEOUT_S = 300
T = TypeVar("T")


def poll_until(
    probe: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 2.0
) -> T:
    """The first truthy value of `probe()`, or an AssertionError naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)


def platform_environment(data_dir: Path, home: Path) -> dict[str, str]:
    """This process's environment with every platform and Dagster setting replaced by the test's:
    a developer's own lake, Slack webhook or replay switch must not leak into the tests."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PLATFORM_", "DAGSTER_"))
    }
    env |= {
        "PLATFORM_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(home),
        SOURCE_ENV: "synthetic",
        **{SYNTHETIC_ENV[field][0]: str(value) for field, value in SYNTHETIC.items()},
        **PLATFORM_SETTINGS,
    }
    return env


@dataclass
class DagsterDev:
    """A running `dagster dev` and the folders it serves."""

    url: str
    data_dir: Path
    home: Path
    log: Path
    process: subprocess.Popen

    @property
    def lake(self) -> Lake:
        return make_lake(self.data_dir)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """The `data` of a GraphQL answer from the webserver; errors fail the test."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise AssertionError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the webserver, the daemon, the code server and any run they launched: the whole
        process group. `dagster dev` may not exit on SIGTERM while it waits for its children."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def materialize_in_process(home: Path, lake: Lake, steps: Steps) -> None:
    """Each of `steps` (asset keys, first and last day) in one run, with the synthetic source, into
    the instance at `home`: runs that did not go through the UI or the daemon.

    They execute in a worker thread: Playwright's synchronous API keeps an event loop running in
    the test's thread, in which Dagster could not close the run's own loop."""

    def run() -> None:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            platform = Platform(instance, SyntheticFlightSource(**SYNTHETIC), lake)
            for keys, first, last in steps:
                platform.materialize(keys, first, last)

    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(run).result()


def bootstrap(data_dir: Path, home: Path) -> None:
    """A Dagster instance in `home` (from platform/dagster.yaml) and a lake in `data_dir` with
    BOOTSTRAP_STEPS materialized, as `make run` does before starting the UI."""
    home.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "platform" / "dagster.yaml", home / "dagster.yaml")
    materialize_in_process(home, make_lake(data_dir), BOOTSTRAP_STEPS)


def deliver_raw_days(dev: DagsterDev, first: str, last: str) -> None:
    """The feed lands the raw tables of `first`..`last` in one run, as an upstream system would;
    the daily cycle and the sensors take it from there."""
    materialize_in_process(dev.home, dev.lake, [(RAW_TABLES, first, last)])


READINESS = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""


def ready(dev: DagsterDev) -> bool:
    """True once the code location is loaded and every required daemon reports healthy."""
    if dev.process.poll() is not None:
        raise RuntimeError(f"dagster dev exited with {dev.process.returncode}:\n{dev.log_tail()}")
    try:
        data = dev.graphql(READINESS)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False  # the webserver is not listening yet
    entries = data["workspaceOrError"].get("locationEntries", [])
    for entry in entries:
        if entry["locationOrLoadError"] and entry["locationOrLoadError"]["__typename"] == (
            "PythonError"
        ):
            raise RuntimeError(
                f"code location {entry['name']} failed to load: "
                f"{entry['locationOrLoadError']['message']}"
            )
    loaded = bool(entries) and all(
        e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries
    )
    daemons = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    return loaded and all(d["healthy"] for d in daemons if d["required"])


def default_stop_signals() -> None:
    """Let SIGTERM and SIGINT stop `dagster dev` gracefully even when this process was started
    ignoring them (as background jobs of some shells and CI runners are): the child would inherit
    the ignoring and only SIGKILL would stop it."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_dagster_dev(folder: Path) -> DagsterDev:
    """Bootstrap under `folder`, start `dagster dev` on a free port and wait until it serves."""
    data_dir, home = folder / "data", folder / "dagster_home"
    bootstrap(data_dir, home)
    port = free_port()
    log = folder / "dagster_dev.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml"]
            + ["-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=platform_environment(data_dir, home),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
            preexec_fn=default_stop_signals,
        )
    dev = DagsterDev(f"http://127.0.0.1:{port}", data_dir, home, log, process)
    try:
        poll_until(lambda: ready(dev), STARTUP_TIMEOUT_S, "dagster dev to serve", every_s=1)
    except BaseException:
        dev.stop()
        raise
    return dev
