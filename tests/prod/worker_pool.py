"""Celery workers of the worker-pool profile, started the way docs/deployment.md tells an operator:
`dagster-celery worker start -A resources.celery_worker -n <name>`.

Each worker is a process group of its own with its own DAGSTER_HOME and PLATFORM_DATA_DIR, so
the only things it shares with the test (the machine that launches runs) are the servers (Redis,
PostgreSQL and the S3-compatible store) and the code: it runs in the repository, as a worker of the
image runs in the image's working directory, where the code location's paths resolve alike.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from prod.conftest import PRODUCTION_YAML, Production, environment_of
from prod.servers import REPO_ROOT
from resources import settings

WORKER_APP = "resources.celery_worker"
BIN = Path(sys.executable).parent
READY_SECONDS = 180
STOP_SECONDS = 30
# The source every process of a test deployment reads: small synthetic days.
SOURCE = {
    "PLATFORM_SOURCE": "synthetic",
    "PLATFORM_SYNTHETIC_SEED": "7",
    "PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY": "120",
}


def pool_environment(production: Production, broker_url: str, **extra: str) -> dict[str, str]:
    """The environment of every process of the deployment, launcher and workers: the production
    variables, the Celery executor on `broker_url`, the test's source, and `extra`."""
    return (
        environment_of(production)
        | SOURCE
        | {settings.EXECUTOR_ENV: "celery", settings.CELERY_BROKER_ENV: broker_url}
        | extra
    )


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    folder: Path

    @property
    def node(self) -> str:
        """The worker's Celery node name, as step events name it."""
        return f"{self.name}@{socket.gethostname()}"

    @property
    def log(self) -> Path:
        return self.folder / "worker.log"

    def kill(self) -> None:
        """SIGKILL the worker and its processes at once, as a lost machine would stop them."""
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_SECONDS)
        _signal_group(self.process, signal.SIGKILL)  # pool processes may outlive the main one
        self.process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def start_worker(name: str, environment: dict[str, str], folder: Path) -> Worker:
    """One worker named `name`, running one step at a time, its state and log in `folder`."""
    folder.mkdir(parents=True)
    home = folder / "dagster_home"
    home.mkdir()
    shutil.copyfile(PRODUCTION_YAML, home / "dagster.yaml")
    env = environment | {
        "DAGSTER_HOME": str(home),
        "PLATFORM_DATA_DIR": str(folder / "data"),
        # dagster-celery starts `celery` from PATH.
        "PATH": f"{BIN}{os.pathsep}{environment.get('PATH', '')}",
    }
    with (folder / "worker.log").open("w") as log:
        process = subprocess.Popen(
            [
                str(BIN / "dagster-celery"), "worker", "start",
                "-A", WORKER_APP, "-n", name, "--loglevel", "INFO",
                "--", "--concurrency=1",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Worker(name, process, folder)


def wait_until_answering(workers: Sequence[Worker], broker_url: str) -> None:
    """Return once every worker answers a ping through the broker; fail with their logs."""
    from celery import Celery

    app = Celery(broker=broker_url)
    deadline = time.monotonic() + READY_SECONDS
    waiting = {w.node: w for w in workers}
    try:
        while waiting and time.monotonic() < deadline:
            for worker in waiting.values():
                if worker.process.poll() is not None:
                    pytest.fail(f"worker {worker.name} exited:\n{worker.log.read_text()[-4000:]}")
            for reply in app.control.ping(destination=list(waiting), timeout=2.0):
                for node in reply:
                    waiting.pop(node, None)
    finally:
        app.close()
    if waiting:
        logs = "\n".join(f"--- {w.name}\n{w.log.read_text()[-3000:]}" for w in waiting.values())
        pytest.fail(f"workers {sorted(waiting)} did not answer within {READY_SECONDS}s:\n{logs}")


@contextmanager
def worker_pool(
    names: Sequence[str], environment: dict[str, str], folder: Path
) -> Iterator[list[Worker]]:
    """Workers `names`, started side by side and answering; stopped on exit."""
    workers = []
    try:
        for name in names:
            workers.append(start_worker(name, environment, folder / name))
        wait_until_answering(workers, environment[settings.CELERY_BROKER_ENV])
        yield workers
    finally:
        for worker in workers:
            worker.stop()
