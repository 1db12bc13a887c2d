"""Runs whose process is gone are marked failed, so that nothing waits on them.

A run killed with SIGKILL, or whose machine stopped, records no end: it stays `STARTED` forever.
Every run in progress counts against the run queue's limits, and a run that trains a model holds
its model's pool (`<model>_training`, one run at a time: platform/dagster.yaml) while it is in
progress, so a dead run would block the queue and every later training of its model. Dagster
notices dead runs itself only where something watches their process: run monitoring, for
launchers that report a worker's health (Kubernetes, ECS), and the code server, for the runs it
launched. A run started from the command line (`dagster asset materialize`) has neither.

`dead_runs` finds the runs in progress whose process no longer exists and marks them failed
(cancelled, if they were being cancelled), naming the process. It judges only an instance whose
storage is SQLite: such an instance lives on one machine's disk, used by the processes of one
machine (and one container: process ids are not shared between containers), so each process id
its runs record means something here; on a shared PostgreSQL instance, run monitoring does this
job.
"""

import os
from pathlib import Path

import dagster as dg

DEAD_RUNS_SENSOR = "dead_runs"
SECONDS = 15
# Engine events read from the start of a run to find its process: the first names it.
FIRST_EVENTS = 20
# A process started this long after its run's first event re-uses a dead process's id.
CLOCK_SLACK_SECONDS = 2.0
PROC = Path("/proc")
WATCHED = {
    dg.DagsterRunStatus.STARTED: "failed",
    dg.DagsterRunStatus.CANCELING: "cancelled",
}


@dg.sensor(
    name=DEAD_RUNS_SENSOR,
    minimum_interval_seconds=SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Marks failed the runs in progress whose process is gone (killed, or its machine "
        "stopped), so that the run queue and the model training pools do not wait on them."
    ),
)
def dead_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    ended = end_dead_runs(context.instance)
    for message in ended:
        context.log.warning(message)
    return dg.SkipReason("; ".join(ended) or "every run in progress has its process")


def end_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed (or cancelled) every run in progress on this machine whose process is gone;
    a message per run ended."""
    from dagster._core.storage.runs import SqliteRunStorage

    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    ended = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=list(WATCHED))):
        process = run_process(instance, record.dagster_run.run_id)
        if process is None or is_running(*process):
            continue
        # Read again after finding the process gone: a run that ended by itself wrote its end
        # before its process exited.
        run = instance.get_run_by_id(record.dagster_run.run_id)
        if run is None or run.status not in WATCHED:
            continue
        pid, _ = process
        message = (
            f"run {run.run_id} ({run.job_name}) {WATCHED[run.status]}: its process {pid} is "
            "gone (killed, or its machine stopped) and recorded no end"
        )
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message)
        else:
            instance.report_run_failed(run, message)
        ended.append(message)
    return ended


def run_process(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The id of the process that executes a run, and when it said so (seconds since the
    epoch): the first engine event of the run that names a process. None before it has one."""
    events = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=FIRST_EVENTS
    ).records
    for record in events:
        pid = record.event_log_entry.dagster_event.engine_event_data.metadata.get("pid")
        if pid is not None:
            return int(pid.value), record.event_log_entry.timestamp
    return None


def is_running(pid: int, since: float) -> bool:
    """Whether process `pid` runs and is the one that ran at `since`: neither gone, nor a
    zombie, nor a later process given the same id."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    if not PROC.is_dir():  # not Linux: that it exists is all that can be told
        return True
    try:
        state, started = _proc_stat(pid)
    except FileNotFoundError:  # it ended just now
        return False
    return state != "Z" and started <= since + CLOCK_SLACK_SECONDS


def _proc_stat(pid: int) -> tuple[str, float]:
    """The state letter of process `pid` and when it started, in seconds since the epoch."""
    fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    booted = next(
        float(line.split()[1])
        for line in (PROC / "stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    # After the command name come stat(5)'s fields from the third: the state, then the start
    # time (clock ticks after boot) as the 22nd.
    return fields[0], booted + int(fields[19]) / os.sysconf("SC_CLK_TCK")
