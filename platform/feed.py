"""What the terminal of `make run` says while the platform runs: one line per replayed day, per
retrain, per promotion (or rejected candidate) and per failure, read from the Dagster instance.

Everything else Dagster does (each step of each run, the daemon's ticks) goes to its log file at
INFO; a person watching the terminal sees the days go by and what the platform decided.
"""

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg

from assets import CATALOG
from assets.model_pipeline import (
    GATE_REASON,
    MODEL_VERSION,
    PROMOTED,
    SERVING_VERSION,
    holdout_key,
    model_key,
)
from sensors.failures import failed_assets, partition_of, root_cause
from sensors.run_tags import REASON_TAG, RETRAIN_TRIGGERS, TRIGGER_TAG, Trigger

FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
MODELS = {model_key(spec): spec for spec in CATALOG.models}
# A reason or an error is cut to this many characters: the terminal is for reading.
SHOWN_CHARS = 160


class Feed:
    """The lines for the runs the instance updated since the feed started."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.since = datetime.now(UTC)
        self.announced: set[str] = set()  # retrains said to be running
        self.finished: set[str] = set()

    def lines(self) -> Iterator[str]:
        records = self.instance.get_run_records(
            dg.RunsFilter(updated_after=self.since), order_by="update_timestamp", ascending=True
        )
        for record in records:
            run = record.dagster_run
            if run.run_id in self.finished:
                continue
            self.since = max(self.since, record.update_timestamp)
            retrain = run.tags.get(TRIGGER_TAG) in RETRAIN_TRIGGERS
            if retrain and run.run_id not in self.announced:
                self.announced.add(run.run_id)
                yield stamp(retrain_line(run))
            if run.status in FINISHED:
                self.finished.add(run.run_id)
                yield from (stamp(line) for line in finished_lines(self.instance, run))


def stamp(line: str) -> str:
    return f"{time.strftime('%H:%M:%S')}  {line}"


def retrain_line(run: dg.DagsterRun) -> str:
    models = ", ".join(MODELS[key].name for key in run.asset_selection or () if key in MODELS)
    reason = run.tags.get(REASON_TAG, "")
    return (
        f"{models}: retraining for cutoff {partition_of(run.tags)} "
        f"({run.tags[TRIGGER_TAG]}){': ' + shortened(reason) if reason else ''}"
    )


def finished_lines(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Iterator[str]:
    """A replayed day, a model's gate decisions, or the failure of `run`."""
    if run.status == dg.DagsterRunStatus.FAILURE:
        yield failure_line(instance, run)
        return
    if run.status == dg.DagsterRunStatus.CANCELED:
        yield f"run {run.run_id[:8]} ({partition_of(run.tags)}) canceled"
        return
    if run.tags.get(TRIGGER_TAG) == Trigger.REPLAY:
        datasets = {CATALOG.tables[k.to_user_string()][0].name for k in run.asset_selection or ()}
        yield f"{', '.join(sorted(datasets))} {partition_of(run.tags)} replayed"
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        spec = MODELS.get(materialization.asset_key)
        if spec is not None:
            yield gate_line(spec.name, spec.gate_metric, materialization.metadata)


def gate_line(model: str, metric: str, metadata: dict) -> str:
    """A version promoted, or rejected with the champion that keeps serving."""
    value = metadata[holdout_key(metric)].value
    version = metadata[MODEL_VERSION].value
    if metadata[PROMOTED].value:
        return f"{model}: {version} promoted, holdout {metric} {value:.4f}"
    serving = metadata[SERVING_VERSION].value if SERVING_VERSION in metadata else "nothing"
    reason = metadata[GATE_REASON].value
    return f"{model}: {version} not promoted ({shortened(reason)}); {serving} keeps serving"


def failure_line(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """What failed, for which days, and the error's first line."""
    failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    assets = failed_assets(instance, run.run_id, {e.step_key for e in failures})
    errors = [root_cause(e.dagster_event.event_specific_data.error) for e in failures]
    if not errors:
        ended = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        errors = [e.message for e in ended] or ["no error recorded"]
    first = errors[0].splitlines()[0] if errors[0] else "no message"
    return (
        f"FAILED run {run.run_id[:8]} {', '.join(assets) or run.job_name} "
        f"[{partition_of(run.tags)}]: {shortened(first)}"
    )


def shortened(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
