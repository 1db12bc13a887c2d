"""`dagster-daemon run` on a temporary instance, as `make run` starts it, for tests that watch what
the daemon alone does."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO_ROOT


class Daemon:
    """`dagster-daemon run` of the workspace with `environment`, and what a test waits for it to
    do."""

    def __init__(self, environment: dict[str, str], log: Path):
        self.log = log
        with log.open("w") as output:
            self.process = subprocess.Popen(
                [
                    str(REPO_ROOT / ".venv" / "bin" / "dagster-daemon"),
                    "run",
                    "-w",
                    "workspace.yaml",
                ],
                cwd=REPO_ROOT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until(self, condition: Callable[[], object], seconds: float, what: str):
        """The first truthy value of `condition()` within `seconds`; fails saying what happened."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the daemon exited:\n{self.log.read_text()[-5000:]}")
            found = condition()
            if found:
                return found
            time.sleep(1)
        pytest.fail(f"no {what} within {seconds}s; log end:\n{self.log.read_text()[-5000:]}")

    def stop(self) -> None:
        """Stop the daemon and everything it started (code server, runs): its process group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # runs it launched may outlive it
            os.killpg(self.process.pid, signal.SIGKILL)
