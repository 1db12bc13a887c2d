"""Run-failure alerts: every failed run of this code location reaches a person through the notifier."""

from collections.abc import Mapping
from typing import TYPE_CHECKING

import dagster as dg

from resources.notifier import Notifier
from sensors.run_tags import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

if TYPE_CHECKING:  # Dagster does not export the type of a serialized error
    from dagster._utils.error import SerializableErrorInfo

RUN_FAILURE_ALERT = "run_failure_alert"
MAX_ERROR_CHARS = 2000


@dg.run_failure_sensor(
    name=RUN_FAILURE_ALERT,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Notifies the run id, failed assets, partitions and error of every failed run.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, notifier: Notifier) -> None:
    """Alert on every failed run of the code location, naming what failed, for which days, and why.

    On by default (`DefaultSensorStatus.RUNNING`): a failure alert that has to be remembered and
    switched on is one nobody receives. Stop it in the UI to silence it.
    """
    summary, details = describe_failure(context)
    where = notifier.notify("run_failure", summary, details)
    context.log.info(f"alert for run {context.dagster_run.run_id} sent to {where}")


def describe_failure(context: dg.RunFailureSensorContext) -> tuple[str, dict[str, str]]:
    """A one-line summary and the details a person needs to act: run, assets, partition, error."""
    run = context.dagster_run
    step_failures = context.get_step_failure_events()
    assets = failed_assets(context.instance, run.run_id, {e.step_key for e in step_failures})
    partition = partition_of(run.tags)
    errors = [root_cause(e.event_specific_data.error) for e in step_failures]
    error = "\n".join(errors) or context.failure_event.message or "unknown error"
    summary = f"Run {run.run_id} failed: {', '.join(assets) or run.job_name} [{partition}]"
    return summary, {
        "run_id": run.run_id,
        "job": run.job_name,
        "assets": ", ".join(assets),
        "partition": partition,
        "error": error[:MAX_ERROR_CHARS],
    }


def failed_assets(instance: dg.DagsterInstance, run_id: str, step_keys: set[str]) -> list[str]:
    """Assets the run planned in its failed steps; all planned assets when no step failed."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    planned = [r.event_log_entry.dagster_event for r in records]
    return sorted(
        {
            event.asset_key.to_user_string()
            for event in planned
            if not step_keys or event.step_key in step_keys
        }
    )


def partition_of(tags: Mapping[str, str]) -> str:
    """The run's partition, its range `first..last`, or 'unpartitioned'."""
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG]
    if RANGE_START_TAG in tags:
        first, last = tags[RANGE_START_TAG], tags[RANGE_END_TAG]
        return first if first == last else f"{first}..{last}"
    return "unpartitioned"


def root_cause(error: "SerializableErrorInfo") -> str:
    """The innermost error message: the user's exception, not Dagster's wrapper around it."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
