"""`make run` on an instance it already bootstrapped: the seconds until the UI answers.

A first `make run` on a fresh temporary instance and lake (the bundled sources, the live replay
off, ports of its own) bootstraps the platform and is stopped with Ctrl-C once it prints that
Dagster is up. Then `make run` is started again, `STARTS` times, and each start is timed from the
command until the webserver answers (`/server_info`) and until the terminal says where Dagster
is, which it prints once the webserver serves the code location: that is when a person can use
the UI. Each start is stopped with Ctrl-C, as a person would.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.harness import Figure, at_most, info, report, stop_cleanly_on_sigterm
from bench.harness import workspace as bench_workspace
from resources.settings import REPO_ROOT

TARGET_SECONDS = 10.0
STARTS = 3
# platform/run.py prints this once the UI serves the code location.
READY_LINE = "Dagster is at"
FIRST_START_TIMEOUT_S = 1800
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start(env: dict[str, str], port: int, log: Path, timeout: float) -> tuple[float, float]:
    """One `make run` until it says where Dagster is, then Ctrl-C; the seconds until the
    webserver first answered and until the terminal said so."""
    started = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"DAGSTER_PORT={port}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, as a terminal's foreground job
        )
    answered = None
    try:
        while READY_LINE not in log.read_text(errors="replace"):
            if answered is None and answers(f"http://127.0.0.1:{port}/server_info"):
                answered = time.perf_counter() - started
            if process.poll() is not None or time.perf_counter() - started > timeout:
                raise RuntimeError(f"make run did not serve the UI; its output: {log}")
            time.sleep(0.05)
        ready = time.perf_counter() - started
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return answered or ready, ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    began = time.perf_counter()
    with bench_workspace("make-run", keep=args.keep) as space:
        port = free_port()
        env = space.env() | {
            "PLATFORM_REPLAY": "off",
            "PLATFORM_REPORTS_URL": f"http://127.0.0.1:{free_port()}",
        }
        logs = space.root / "logs"
        _, first = start(env, port, logs / "make-run-first.log", FIRST_START_TIMEOUT_S)
        print(f"first make run (bootstrap): {first:.1f} s", flush=True)
        seconds = []
        for number in range(1, STARTS + 1):
            seconds.append(start(env, port, logs / f"make-run-{number}.log", START_TIMEOUT_S))
            print(f"  second start {number}: {seconds[-1][1]:.1f} s", flush=True)
    ready = [r for _, r in seconds]
    figures: list[Figure] = [
        info("first make run, bootstrap included", first, "s"),
        at_most(
            "second make run until the UI answers (slowest)",
            max(ready),
            TARGET_SECONDS,
            "s",
            f"{STARTS} starts: {', '.join(f'{r:.1f}' for r in ready)} s until the terminal says "
            "where Dagster is",
        ),
        info(
            "  until the webserver first answers (median)",
            statistics.median(a for a, _ in seconds),
            "s",
        ),
    ]
    report(
        "second_run",
        "make run on a bootstrapped instance",
        figures,
        {"starts": [{"answered": a, "ready": r} for a, r in seconds], "first": first},
        began,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
