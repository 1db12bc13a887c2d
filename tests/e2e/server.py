"""The platform as `make run` serves it (`platform/run.py`: the bootstrap, then Dagster's code
server, webserver and daemon, and the report server) on a temporary instance and lake.

The source is the synthetic one, chosen through the environment (`PLATFORM_SOURCE`,
`PLATFORM_SYNTHETIC_*`), so that the bootstrap, every run launched from the UI or by a sensor and
the tests' own reads see the same data. The live replay is on, as after `make run`.

The calendar of the journeys (all 2013):

- 01-01..03-31: bootstrapped; the first champions have cutoff 03-01 and serve March;
- from 04-01: replayed one day at a time; the synthetic delays drift from DRIFT_START on, so the
  drift sensor retrains a few replayed days later;
- BACKFILL_FIRST..BACKFILL_LAST: the last two weeks of the year, backfilled from the UI far ahead
  of the replay.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from conftest import SYNTHETIC_FLIGHTS_PER_DAY, free_port, make_lake

from resources import settings
from resources.lake import Lake

REPO_ROOT = Path(__file__).resolve().parents[2]

MODEL = "flight_delay"
FIRST_CUTOFF = "2013-03-01"
REPLAY_FROM = "2013-04-01"
DRIFT_START = "2013-04-03"
BACKFILL_FIRST, BACKFILL_LAST = "2013-12-17", "2013-12-31"
SYNTHETIC = {"seed": 7, "flights_per_day": SYNTHETIC_FLIGHTS_PER_DAY, "drift_start": DRIFT_START}
RAW_TABLES = ["raw_flights", "raw_weather", "flight_outcomes"]
# The platform's settings for the journeys (see sensors/retrain.py and sensors/replay.py):
# - the replay, sensors and the daily cycle tick every few seconds, so the journeys stay short;
# - a day counts as drifted from 15% of drifted columns: with 120 flights a day the synthetic drift
#   moves 5 to 9 of the 28 feature columns (the 7-day delay statistics among them) while noise
#   alone moves up to 3, and 15% sits in the middle of that gap;
# - the quality sensors never fire: the daily metrics of 120 flights are too noisy to judge, and
#   a retrain they requested would put the drift sensor in its cooldown;
# - Ctrl-C at the end waits a few seconds for runs in progress.
PLATFORM_SETTINGS = {
    "PLATFORM_REPLAY": "on",
    "PLATFORM_REPLAY_SECONDS": "3",
    "PLATFORM_AUTOMATION_SECONDS": "3",
    "PLATFORM_RETRAIN_SENSOR_SECONDS": "5",
    "PLATFORM_DRIFT_THRESHOLD": "0.15",
    "PLATFORM_FLIGHT_DELAY_QUALITY_LIMIT": "0",
    "PLATFORM_FLIGHT_DELAY_QUALITY_MARGIN": "1",
    "PLATFORM_ARRIVAL_DELAY_QUALITY_LIMIT": "1000",
    "PLATFORM_ARRIVAL_DELAY_QUALITY_MARGIN": "1000",
    "PLATFORM_STOP_GRACE_SECONDS": "5",
}
STARTUP_TIMEOUT_S = 600
STOP_TIMEOUT_S = 90
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


def platform_environment(data_dir: Path, home: Path, reports_port: int) -> dict[str, str]:
    """This process's environment with every platform and Dagster setting replaced by the test's:
    a developer's own lake, Slack webhook or replay switch must not leak into the tests."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PLATFORM_", "DAGSTER_"))
    }
    return env | {
        settings.DATA_DIR_ENV: str(data_dir),
        "DAGSTER_HOME": str(home),
        settings.SOURCE_ENV: "synthetic",
        **{f"{settings.SYNTHETIC_PREFIX}{k.upper()}": str(v) for k, v in SYNTHETIC.items()},
        settings.REPORTS_URL_ENV: f"http://127.0.0.1:{reports_port}",
        **PLATFORM_SETTINGS,
    }


@dataclass
class Served:
    """The platform `platform/run.py` serves, what it printed, and the folders it serves."""

    url: str
    reports_url: str
    data_dir: Path
    home: Path
    terminal: Path
    process: subprocess.Popen

    @property
    def lake(self) -> Lake:
        return make_lake(self.data_dir)

    @property
    def log(self) -> Path:
        return self.data_dir / "logs" / "dagster.log"

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

    def printed(self) -> str:
        """What the terminal of `make run` shows."""
        return self.terminal.read_text(errors="replace")

    def stop(self) -> int:
        """Ctrl-C, as a person stops it; its exit status. Killed, with its services, when it
        does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self.process.wait(timeout=STOP_TIMEOUT_S)
            self.process.kill()
        return self.process.wait(timeout=30)


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


def ready(served: Served) -> bool:
    """True once the terminal said the platform serves and every required daemon is healthy."""
    if served.process.poll() is not None:
        raise RuntimeError(f"make run exited with {served.process.returncode}:\n{served.printed()}")
    if "Ctrl-C stops." not in served.printed():
        return False
    try:
        data = served.graphql(READINESS)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
    daemons = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    return all(d["healthy"] for d in daemons if d["required"])


def default_stop_signals() -> None:
    """Let SIGTERM and SIGINT reach the platform even when this process was started ignoring
    them (as background jobs of some shells and CI runners are): the child would inherit it."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_platform(folder: Path) -> Served:
    """`platform/run.py` under `folder`: it bootstraps, then serves; returns once it serves."""
    data_dir, home = folder / "data", folder / "dagster_home"
    port, reports_port = free_port(), free_port()
    terminal = folder / "terminal.txt"
    with terminal.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "platform/run.py", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=platform_environment(data_dir, home, reports_port),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=default_stop_signals,
        )
    served = Served(
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{reports_port}",
        data_dir,
        home,
        terminal,
        process,
    )
    try:
        poll_until(lambda: ready(served), STARTUP_TIMEOUT_S, "make run to serve", every_s=2)
    except BaseException:
        served.stop()
        raise
    return served
