"""Clock-driven policies: the sensor that runs the daily cycle, and the weekly retrain schedule.

`daily_cycle` evaluates the automation conditions of `assets/automation.py` every
`PLATFORM_AUTOMATION_SECONDS` (default 30). It is on by default: without it nothing downstream of
the raw tables runs by itself.

`<dataset>_weekly_retrain` is the alternative to sensor-driven retraining: every Monday at 06:00
UTC it retrains each model of the dataset with the cutoff D = the day after the dataset's newest
ingested day, so the new model is in force from the next day to be predicted. One schedule per
dataset, because a run's assets share one calendar. It is off by default (running both policies
would retrain twice); start it in the UI (Automation) and stop the drift and quality sensors to
switch policy.
"""

from datetime import timedelta

import dagster as dg

from assets.catalog import Catalog
from assets.keys import model_key
from resources import settings
from resources.dataset import Dataset
from sensors.replay import newest_ingested_day
from sensors.retrain import incomplete_window
from sensors.run_tags import RUN_KEY_TAG, TRIGGER_TAG, Trigger

DAILY_CYCLE_SENSOR = "daily_cycle"
WEEKLY_CRON = "0 6 * * 1"


def weekly_retrain_name(dataset: Dataset) -> str:
    return f"{dataset.name}_weekly_retrain"


def build_daily_cycle() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        DAILY_CYCLE_SENSOR,
        # Every asset of the location that has an automation condition; the others are skipped.
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=settings.automation_seconds(),
        description=(
            "The daily cycle: when a day's raw data lands, runs each model's features, drift, "
            "predictions and quality for it (see assets/automation.py). Models are retrained by "
            "sensors, not here."
        ),
    )


def weekly_retrain_requests(
    instance: dg.DagsterInstance, catalog: Catalog, dataset: Dataset
) -> list[dg.RunRequest] | dg.SkipReason:
    """A retrain of every model of `dataset` for the day after its newest ingested day, unless
    already asked."""
    newest = newest_ingested_day(instance, dataset)
    if newest is None:
        return dg.SkipReason(f"no day of {dataset.name} is ingested yet: nothing to train on")
    if newest >= dataset.last_day:
        return dg.SkipReason(
            f"{dataset.name}'s partitions end on {dataset.last_day}: no later cutoff to train for"
        )
    cutoff = (newest + timedelta(days=1)).isoformat()
    requests, skipped = [], []
    for spec in catalog.models_of(dataset):
        key = model_key(spec)
        run_key = f"weekly_retrain:{key.to_user_string()}:{cutoff}"
        # Schedules deduplicate run keys per tick only: a week without new data must not retrain
        # the same cutoff again.
        if instance.get_runs_count(dg.RunsFilter(tags={RUN_KEY_TAG: run_key})):
            skipped.append(f"{spec.name}: already retrained for cutoff {cutoff}")
            continue
        incomplete = incomplete_window(
            instance, spec, dataset.first_day, newest + timedelta(days=1)
        )
        if incomplete:
            skipped.append(f"{spec.name}: the training window of cutoff {cutoff} {incomplete}")
            continue
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                partition_key=cutoff,
                asset_selection=[key],
                tags={TRIGGER_TAG: Trigger.SCHEDULE},
            )
        )
    return requests or dg.SkipReason("; ".join(skipped))


def build_weekly_retrain(catalog: Catalog, dataset: Dataset) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=weekly_retrain_name(dataset),
        cron_schedule=WEEKLY_CRON,
        execution_timezone="UTC",
        target=dg.AssetSelection.assets(*(model_key(m) for m in catalog.models_of(dataset))),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            f"Alternative retrain policy, off by default: every Monday 06:00 UTC, retrain each "
            f"model of {dataset.name} with the day after its newest ingested day as cutoff."
        ),
    )
    def weekly_retrain(
        context: dg.ScheduleEvaluationContext,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        return weekly_retrain_requests(context.instance, catalog, dataset)

    return weekly_retrain
