"""`make run`: bootstrap the platform, then serve Dagster and the reports until Ctrl-C.

The terminal says what the platform does, a line per replayed day, retrain, promotion and failure
(`feed.py`); Dagster's own logs go, at INFO, to `<PLATFORM_DATA_DIR>/logs/dagster.log`.

The code server, the webserver and the daemon run as processes of a group of their own, out of
the terminal's reach, so Ctrl-C comes to this process alone, which stops them in order: the
daemon first, so that no run is launched any more (queued runs stay queued for the next start);
then it waits up to PLATFORM_STOP_GRACE_SECONDS for the runs in progress, cancels those still
running and queues a re-execution of each for the next start (a canceled run raises no alert);
then it stops the webserver and the code server, and exits with status 0. A second Ctrl-C stops
everything at once (runs cut off then are reported failed at the next start). Started from a terminal, it takes the terminal's foreground for itself, so
that `make`, its parent, never sees the Ctrl-C and ends quietly with this process's status.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 300
POLL_S = 2.0
# How often the start checks whether the code server listens and the UI serves the code location.
STARTUP_POLL_S = 0.1
STOP_TIMEOUT_S = 30
BIN = Path(sys.executable).parent
IN_PROGRESS = ("STARTING", "STARTED", "CANCELING")
PR_SET_PDEATHSIG = 1  # prctl(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="platform/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--no-bootstrap", action="store_true", help="serve the instance as it is, unchanged"
    )
    args = parser.parse_args(argv)
    with terminal_foreground():
        if not args.no_bootstrap:
            try:
                import bootstrap

                if bootstrap.main([]) != 0:  # its options are not make run's
                    return 1
            except KeyboardInterrupt:
                print("\nStopped during the bootstrap; the next make run goes on from there.")
                return 0
        try:
            return serve(args.host, args.port)
        except NotServing as error:
            print(f"Could not serve: {error}", file=sys.stderr, flush=True)
            return 1


class NotServing(RuntimeError):
    """A service could not start; the message says which and where to look."""


def serve(host: str, port: int) -> int:
    import warnings

    import dagster as dg

    # The feed reads the declarations, which build the assets, whose beta parameters Dagster
    # warns about: noise on the terminal (platform/definitions.py silences them too).
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    from resources import settings
    from resources.lake import Lake
    from resources.reports import report_server

    stops = Interrupts()
    instance = dg.DagsterInstance.get()
    log = settings.data_dir() / "logs" / "dagster.log"
    services = Services(Path(instance.root_directory), log, host, port)
    reports = urllib.parse.urlsplit(settings.reports_url())
    try:
        report_http = report_server(Lake().store, reports.hostname, reports.port or 80)
    except OSError as error:
        raise NotServing(
            f"the report server cannot listen on {reports.netloc} ({error.strerror}): set "
            f"{settings.REPORTS_URL_ENV} or DAGSTER_PORT to a free port"
        ) from None
    threading.Thread(target=report_http.serve_forever, daemon=True).start()
    try:
        services.start(stops)
        if stops.count:
            return 0
        print(
            f"Dagster is at http://{host}:{port} and the reports at {settings.reports_url()}; "
            f"Dagster's logs: {log}. Ctrl-C stops.",
            flush=True,
        )
        if settings.replay_on():
            print(
                f"Live replay: one day every {settings.replay_seconds()} s "
                "(PLATFORM_REPLAY=off make run starts without it).",
                flush=True,
            )
        follow(instance, services, stops)
        stop(instance, services, stops, settings.stop_grace_seconds())
    finally:
        services.kill()
        report_http.shutdown()
        instance.dispose()
    print("Stopped.", flush=True)
    return 0


def follow(instance, services: "Services", stops: "Interrupts") -> None:
    """Print what the platform does until Ctrl-C, or until a service dies."""
    from feed import Feed

    feed = Feed(instance)
    while not stops.count:
        for line in feed.lines():
            print(line, flush=True)
        dead = services.dead()
        if dead:
            print(f"{dead} stopped unexpectedly; its log: {services.log}", flush=True)
            return
        stops.wait(POLL_S)


def stop(instance, services: "Services", stops: "Interrupts", grace: int) -> None:
    """No new run, the runs in progress finished or canceled and queued again, then the rest."""
    services.stop_daemon()
    running = runs_in_progress(instance)
    if running:
        print(
            f"Stopping: no new runs; waiting up to {grace} s for {len(running)} run(s) in "
            f"progress (Ctrl-C again stops at once) ...",
            flush=True,
        )
        deadline = time.monotonic() + grace
        while running and time.monotonic() < deadline and stops.count < 2:
            stops.wait(1.0)
            running = runs_in_progress(instance)
    if stops.count >= 2:
        return  # at once: what is left of the group is killed on the way out
    for run_id in running:
        requeued = services.cancel_and_requeue(instance, run_id)
        print(
            f"run {run_id[:8]} canceled; run {requeued[:8]} queued for the next start", flush=True
        )
    services.stop_servers()


def runs_in_progress(instance) -> list[str]:
    import dagster as dg

    statuses = [dg.DagsterRunStatus[s] for s in IN_PROGRESS]
    return [r.run_id for r in instance.get_runs(dg.RunsFilter(statuses=statuses))]


class Interrupts:
    """Ctrl-C (SIGINT) and SIGTERM counted instead of raised, and waited on."""

    def __init__(self):
        self.count = 0
        self._event = threading.Event()
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._interrupted)

    def _interrupted(self, number, frame) -> None:
        self.count += 1
        self._event.set()

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)
        self._event.clear()


class Services:
    """The code server, webserver and daemon, in a process group of their own."""

    def __init__(self, home: Path, log: Path, host: str, port: int):
        self.home, self.log, self.host, self.port = home, log, host, port
        self.processes: dict[str, subprocess.Popen] = {}
        self.group: int | None = None
        # A socket path must stay short (about 100 bytes): a folder of its own under /tmp.
        self.socket = str(Path(tempfile.mkdtemp(prefix="flightdesk-")) / "code.sock")

    def start(self, stops: Interrupts) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        location = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())["load_from"][0]
        target = location["python_file"]
        self.spawn(
            "code server",
            [BIN / "dagster", "code-server", "start", "-f", target["relative_path"]]
            + ["-d", target["working_directory"], "--location-name", target["location_name"]]
            + ["-s", self.socket, "--log-level", "info"],
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not listening(self.socket):  # the code is loaded before the server listens
            if stops.count or self.dead() or time.monotonic() > deadline:
                raise NotServing(f"the code server did not start; its log: {self.log}")
            stops.wait(STARTUP_POLL_S)
        workspace = self.home / "served_workspace.yaml"
        served = {"socket": self.socket, "location_name": target["location_name"]}
        workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": served}]}))
        self.spawn(
            "webserver",
            [BIN / "dagster-webserver", "-w", workspace, "-h", self.host, "-p", str(self.port)]
            + ["--dagster-log-level", "info", "--uvicorn-log-level", "warning"],
        )
        self.spawn(
            "daemon", [BIN / "dagster-daemon", "run", "-w", workspace, "--log-level", "info"]
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.loaded():
            if stops.count or self.dead() or time.monotonic() > deadline:
                raise NotServing(
                    f"Dagster's webserver or daemon did not start (is port {self.port} free?); "
                    f"their log: {self.log}"
                )
            stops.wait(STARTUP_POLL_S)

    def spawn(self, name: str, command: list) -> None:
        with self.log.open("ab") as output:
            self.processes[name] = subprocess.Popen(
                [str(part) for part in command],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                process_group=self.group or 0,
                preexec_fn=die_with_parent,
            )
        self.group = self.group or self.processes[name].pid

    def dead(self) -> str | None:
        return next((n for n, p in self.processes.items() if p.poll() is not None), None)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://{self.host}:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise RuntimeError(f"the webserver refused {query.split('(')[0]}: {answer['errors']}")
        return answer["data"]

    def loaded(self) -> bool:
        """Whether the webserver serves the code location; raises naming a load error."""
        try:
            entries = self.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        for entry in entries:
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "PythonError":
                raise NotServing(f"the code location failed to load: {loaded['message']}")
        return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)

    def cancel_and_requeue(self, instance, run_id: str) -> str:
        """Cancel the run and queue a re-execution of all of it for the next start."""
        import dagster as dg

        self.graphql(TERMINATE, {"runId": run_id})
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while instance.get_run_by_id(run_id).status != dg.DagsterRunStatus.CANCELED:
            if time.monotonic() > deadline:
                instance.report_run_canceled(instance.get_run_by_id(run_id))
                break
            time.sleep(0.5)
        launched = self.graphql(REEXECUTE, {"parentRunId": run_id})["launchRunReexecution"]
        return launched["run"]["runId"]

    def stop_daemon(self) -> None:
        self.terminate(["daemon"])

    def stop_servers(self) -> None:
        self.terminate(["webserver", "code server"])

    def terminate(self, names: list[str]) -> None:
        for name in names:
            self.processes[name].send_signal(signal.SIGTERM)
        for name in names:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.processes[name].wait(timeout=STOP_TIMEOUT_S)

    def kill(self) -> None:
        """Whatever of the group is still alive, runs included; the socket's folder."""
        if self.group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.group, signal.SIGKILL)
            for process in self.processes.values():
                process.wait()
        shutil.rmtree(Path(self.socket).parent, ignore_errors=True)


LOCATIONS = """
{
  workspaceOrError {
    ... on Workspace {
      locationEntries {
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""
TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) { __typename ... on PythonError { message } }
}
"""
REEXECUTE = """
mutation Requeue($parentRunId: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $parentRunId, strategy: ALL_STEPS}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""


def die_with_parent() -> None:
    """In a service before it starts: on Linux, it is sent SIGTERM when this process dies, even
    killed, so that no orphan keeps the ports and the instance (elsewhere: no such guard)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def listening(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        return probe.connect_ex(path) == 0


@contextlib.contextmanager
def terminal_foreground() -> Iterator[None]:
    """Make this process's own group the terminal's foreground, so that Ctrl-C is delivered to
    it alone and not to `make`, which would then report an interrupt; restored on the way out."""
    try:
        terminal = sys.stdin.fileno()
        owned = os.isatty(terminal) and os.tcgetpgrp(terminal) == os.getpgrp()
    except (ValueError, OSError):
        owned = False
    if not owned:
        yield
        return
    previous = os.getpgrp()
    with contextlib.suppress(PermissionError):  # a session leader already has its own group
        os.setpgid(0, 0)
    hand_over(terminal, os.getpgrp())
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            hand_over(terminal, previous)


def hand_over(terminal: int, group: int) -> None:
    """Give the terminal's foreground to `group`; a process outside the foreground may do so
    only while it ignores SIGTTOU."""
    ignored = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(terminal, group)
    finally:
        signal.signal(signal.SIGTTOU, ignored)


if __name__ == "__main__":
    sys.exit(main())
