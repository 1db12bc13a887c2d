"""Clock-driven policies: the sensor that runs the daily cycle, and the weekly retrain schedule.

`daily_cycle` evaluates the automation conditions of `assets/automation.py` every
`PLATFORM_AUTOMATION_SECONDS` (default 30). It is on by default: without it nothing downstream of
the raw tables runs by itself.

`weekly_retrain` is the alternative to sensor-driven retraining: every Monday at 06:00 UTC it
retrains each model with the cutoff D = the day after the newest ingested day, so the new model is
in force from the next day to be predicted. It is off by default (running both policies would
retrain twice); start it in the UI (Automation -> weekly_retrain) and stop the drift and quality
sensors to switch policy.
"""

from datetime import timedelta

import dagster as dg

from assets import MODELS
from sensors.replay import LAST_DAY, TRIGGER_TAG, newest_ingested_day, seconds_from_env

DAILY_CYCLE_SENSOR = "daily_cycle"
AUTOMATION_SECONDS_ENV = "PLATFORM_AUTOMATION_SECONDS"
DEFAULT_AUTOMATION_SECONDS = 30
WEEKLY_RETRAIN = "weekly_retrain"
WEEKLY_CRON = "0 6 * * 1"
MODEL_KEYS = [dg.AssetKey([spec.name, "model"]) for spec in MODELS]
RUN_KEY_TAG = "dagster/run_key"

daily_cycle = dg.AutomationConditionSensorDefinition(
    DAILY_CYCLE_SENSOR,
    # Every asset of the location that has an automation condition; the others are skipped.
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=seconds_from_env(AUTOMATION_SECONDS_ENV, DEFAULT_AUTOMATION_SECONDS),
    description=(
        "The daily cycle: when a day's raw data lands, runs its features, drift, predictions and "
        "quality (see assets/automation.py). Models are retrained by sensors, not here."
    ),
)


def weekly_retrain_requests(
    instance: dg.DagsterInstance,
) -> list[dg.RunRequest] | dg.SkipReason:
    """A retrain of every model for the day after the newest ingested one, unless already asked."""
    newest = newest_ingested_day(instance)
    if newest is None:
        return dg.SkipReason("no day is ingested yet: nothing to train on")
    if newest >= LAST_DAY:
        return dg.SkipReason(f"the partitions end on {LAST_DAY}: no later cutoff to train for")
    cutoff = (newest + timedelta(days=1)).isoformat()
    requests = []
    for key in MODEL_KEYS:
        run_key = f"{WEEKLY_RETRAIN}:{key.to_user_string()}:{cutoff}"
        # Schedules deduplicate run keys per tick only: a week without new data must not retrain
        # the same cutoff again.
        if instance.get_runs_count(dg.RunsFilter(tags={RUN_KEY_TAG: run_key})):
            continue
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                partition_key=cutoff,
                asset_selection=[key],
                tags={TRIGGER_TAG: "schedule"},
            )
        )
    return requests or dg.SkipReason(f"every model was already retrained for cutoff {cutoff}")


@dg.schedule(
    name=WEEKLY_RETRAIN,
    cron_schedule=WEEKLY_CRON,
    execution_timezone="UTC",
    target=dg.AssetSelection.assets(*MODEL_KEYS),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "Alternative retrain policy, off by default: every Monday 06:00 UTC, retrain each model "
        "with the day after the newest ingested day as cutoff."
    ),
)
def weekly_retrain(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    return weekly_retrain_requests(context.instance)
