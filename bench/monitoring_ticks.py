"""Monitoring costs measured against a backfilled workspace: one day's drift report, and one
tick of every sensor of the code location against an instance holding the backfill.

The drift figure is the step time of `<model>/feature_drift` for one day, run in this process
after a warm-up day has paid for the imports (evidently, scipy).

A sensor tick is what the daemon runs every interval: `evaluate_tick` on the sensor with the
instance and the platform's resources. Cursor-based sensors get two ticks, the first one
initialising the cursor; run-status sensors get a failed run between the two (a model's
predictions of a day no champion serves), so the second tick finds it and sends its alert. The
slower tick is reported. The automation sensor's tick is the evaluation of its assets'
automation conditions in this process.
"""

import statistics
import time
import traceback
from collections.abc import Sequence
from datetime import date, timedelta

import dagster as dg

from bench.harness import code_location, environment
from resources.lake import Lake

TARGET_DRIFT_SECONDS = 1.0
TARGET_TICK_SECONDS = 0.5
# A day of the dataset's first weeks, which no champion serves: predicting it fails, which gives
# run-status sensors a failure.
FAILING_DAY_OFFSET = timedelta(days=9)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def drift_report_seconds(lake: Lake, model: str, sample: Sequence[str]) -> dict:
    """Median seconds of one day's drift step of `model` over `sample`, after a warm-up day.

    Each day is one in-process run of `<model>/feature_drift` against the backfilled lake and an
    in-memory instance: the step's time is the asset's own work for that day (reading features
    and the champion's reference, evidently's tests, the HTML report, writing them), with the
    imports paid by the warm-up run.
    """
    from assets import CATALOG
    from assets.keys import drift_key
    from resources import platform_resources
    from resources.sources import Sources

    asset = drift_key(CATALOG.model(model)).to_user_string()
    defs = code_location()
    resources = platform_resources(sources=Sources(kind="bundled"), lake=lake)
    step = asset.replace("/", "__")

    def one_day(day: str) -> float:
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize(
                list(defs.assets or []),
                selection=[asset],
                partition_key=day,
                instance=instance,
                resources=resources,
                run_config=QUIET,
            )
            [stats] = [s for s in instance.get_run_step_stats(result.run_id) if s.step_key == step]
            return stats.end_time - stats.start_time

    warm_up = one_day(sample[0])
    timed = {day: one_day(day) for day in (sample[1:] or sample)}
    return {
        "seconds": statistics.median(timed.values()),
        "per_day": timed,
        "warm_up_seconds": warm_up,
        "note": f"median of {len(timed)} days; first day with imports {warm_up:.1f} s",
    }


def sensor_tick_seconds(
    instance: dg.DagsterInstance, lake: Lake, data_dir: str, model: str, first_day: str
) -> dict:
    """Seconds of one tick of each sensor of the code location against `instance`; the failed
    run run-status sensors get is `model`'s predictions of a day after `first_day` that no
    champion serves."""
    from assets import CATALOG
    from assets.keys import predictions_key
    from resources import platform_resources
    from resources.sources import Sources

    defs = code_location()
    resources = platform_resources(sources=Sources(kind="bundled"), lake=lake)
    failing = (
        predictions_key(CATALOG.model(model)).to_user_string(),
        date.fromisoformat(first_day) + FAILING_DAY_OFFSET,
    )
    seconds, notes = {}, {}
    with environment(
        PLATFORM_DATA_DIR=data_dir,
        PLATFORM_SLACK_WEBHOOK_URL=None,
        PLATFORM_SLACK_BOT_TOKEN=None,
    ):
        for sensor in defs.sensors or []:
            try:
                seconds[sensor.name], notes[sensor.name] = _two_ticks(
                    sensor, instance, resources, defs, failing
                )
            except Exception as error:  # a broken sensor is a finding, not a bench crash
                seconds[sensor.name] = float("nan")
                notes[sensor.name] = f"tick failed: {error!r}"
                traceback.print_exc()
    return {"seconds": seconds, "notes": notes}


def _two_ticks(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    resources: dict,
    defs: dg.Definitions,
    failing: tuple[str, date],
) -> tuple[float, str]:
    if isinstance(sensor, dg.AutomationConditionSensorDefinition):
        return _automation_ticks(sensor, instance, defs)

    def tick(cursor: str | None) -> tuple[float, dg.SensorResult | object]:
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=resources, definitions=defs
        ) as context:
            started = time.perf_counter()
            result = sensor.evaluate_tick(context)
            return time.perf_counter() - started, result

    first, result = tick(None)
    cursor = getattr(result, "cursor", None)
    if isinstance(sensor, dg.RunStatusSensorDefinition):
        _fail_a_run(instance, resources, defs, *failing)
    second, result = tick(cursor)
    requests = len(getattr(result, "run_requests", None) or [])
    skip = getattr(result, "skip_message", None) or ""
    what = f"{requests} run requests" if requests else (skip[:80] or "no request")
    return max(first, second), f"ticks {first:.3f} s and {second:.3f} s; {what}"


def _automation_ticks(
    sensor: dg.AutomationConditionSensorDefinition,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
) -> tuple[float, str]:
    """An automation sensor's tick is the evaluation of its assets' automation conditions."""

    def tick(cursor: object) -> tuple[float, object]:
        started = time.perf_counter()
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=sensor.asset_selection, cursor=cursor
        )
        return time.perf_counter() - started, result

    first, result = tick(None)
    second, result = tick(result.cursor)
    requested = result.total_requested
    return max(first, second), (
        f"ticks {first:.3f} s and {second:.3f} s (conditions evaluated in this process); "
        f"{requested} partitions requested"
    )


def _fail_a_run(
    instance: dg.DagsterInstance, resources: dict, defs: dg.Definitions, asset: str, day: date
) -> None:
    """A predictions run for a day no champion serves: it fails as a user's run would."""
    result = dg.materialize(
        list(defs.assets or []),
        selection=[asset],
        partition_key=day.isoformat(),
        instance=instance,
        resources=resources,
        run_config=QUIET,
        raise_on_error=False,
    )
    if result.success:
        raise RuntimeError(f"{asset} of {day} was expected to fail and did not")
