"""The decision on a model's live experiment: promote its challenger, retire it, or wait.

`<model>_rollout_decision` watches `<model>/prediction_quality`. When the newest judged day names
an experiment (`assets.monitoring` writes its champion's and challenger's gate metric on each
day of one), the sensor gathers those two values on every day of the experiment so far and
judges them (`assets.rollout.judge`: at least `min_days` paired days, a paired bootstrap over
days at the declared confidence, at most `max_days`). An experiment whose champion is no longer
in force on the newest day (a rollback or a manual promotion replaced it) is retired: what it
was judged against is gone.

A decision is a run of the job `decide_rollout`, which appends the entry (`promote` or `retire`,
with the evidence) to the promotion history, effective from the day after the newest judged day:
the days already served keep their predictions. A run key per model, experiment and decision
makes the daemon launch it once. Like the retrain sensors, the tick only reads the instance's
metadata, never the lake or a model; `rollout_tick` evaluates one tick, so tests and benchmarks
call it directly.
"""

import json
import math
from collections.abc import Mapping
from datetime import date, timedelta

import dagster as dg

from assets.keys import quality_key
from assets.model_spec import ModelSpec, Rollout
from assets.monitoring import (
    CHALLENGER_ROLE,
    CHALLENGER_VERSION,
    CHAMPION_IN_FORCE,
    CHAMPION_ROLE,
    EXPERIMENT,
    EXPERIMENT_CHAMPION,
    EXPERIMENT_STARTED,
    role_value,
)
from assets.promotion_jobs import DECIDE_JOB, DECIDE_OP
from assets.rollout import CONTINUE, RETIRE, DayPair, Evidence, judge
from resources.days import days_between
from sensors.retrain import newest_judged_day, partition_metadata
from sensors.run_tags import REASON_TAG, TRIGGER_TAG, Trigger


def rollout_sensor_name(model: str) -> str:
    return f"{model}_rollout_decision"


def rollout_tick(
    instance: dg.DagsterInstance, spec: ModelSpec, settings: Rollout
) -> dg.SensorResult | dg.SkipReason:
    """One evaluation of the rollout sensor of `spec`."""
    key = quality_key(spec)
    latest, newest = newest_judged_day(instance, spec)
    if latest is None:
        return dg.SkipReason(f"no {key.to_user_string()} partition is materialized yet")
    if newest is None:
        return dg.SkipReason(f"no experiment was live on {latest}, the newest judged day")
    experiment = str(newest[EXPERIMENT].value)
    started = date.fromisoformat(str(newest[EXPERIMENT_STARTED].value))
    found = partition_metadata(instance, key, days_between(started, latest), EXPERIMENT)
    days = [
        day_pair(spec, d, m) for d, m in sorted(found.items()) if m[EXPERIMENT].value == experiment
    ]
    evidence = judge(spec.gate_metric, spec.higher_is_better, days, settings)
    challenged, in_force = (
        str(newest[EXPERIMENT_CHAMPION].value),
        str(newest[CHAMPION_IN_FORCE].value),
    )
    decision, reason = evidence.decision, evidence.reason
    if challenged != in_force:
        decision = RETIRE
        reason = (
            f"the champion it challenged, {challenged}, is no longer in force on {latest} "
            f"({in_force} is: a rollback or a manual promotion replaced it)"
        )
    summary = f"experiment {experiment}: {evidence.summary()}"
    if decision == CONTINUE:
        return dg.SkipReason(f"{summary}; {reason}")
    effective = latest + timedelta(days=1)
    challenger = str(newest[CHALLENGER_VERSION].value)
    return dg.SensorResult(
        run_requests=[
            decision_request(spec, experiment, challenger, decision, effective, reason, evidence)
        ]
    )


def day_pair(spec: ModelSpec, day: date, metadata: Mapping[str, dg.MetadataValue]) -> DayPair:
    """The champion's and the challenger's gate metric on `day`, NaN when one is not recorded."""

    def value(role: str) -> float:
        entry = metadata.get(role_value(role, spec.gate_metric))
        return math.nan if entry is None or entry.value is None else float(entry.value)

    return DayPair(day.isoformat(), value(CHAMPION_ROLE), value(CHALLENGER_ROLE))


def decision_request(
    spec: ModelSpec,
    experiment: str,
    challenger: str,
    decision: str,
    effective: date,
    reason: str,
    evidence: Evidence,
) -> dg.RunRequest:
    """The run of `decide_rollout` that appends `decision` on `experiment` to the history."""
    words = f"{decision} {challenger}: {reason} ({evidence.summary()})"
    return dg.RunRequest(
        run_key=f"rollout:{spec.name}:{experiment}:{decision}",
        job_name=DECIDE_JOB,
        run_config={
            "ops": {
                DECIDE_OP: {
                    "config": {
                        "model": spec.name,
                        "experiment": experiment,
                        "outcome": decision,
                        "effective_from": effective.isoformat(),
                        "reason": reason,
                        "evidence": json.dumps(evidence.as_json()),
                    }
                }
            }
        },
        tags={TRIGGER_TAG: Trigger.ROLLOUT, REASON_TAG: words[:1000]},
    )


def build_rollout_sensor(spec: ModelSpec) -> dg.SensorDefinition:
    """The decision sensor of one model."""
    settings = spec.rollout

    @dg.sensor(
        name=rollout_sensor_name(spec.name),
        job_name=DECIDE_JOB,
        minimum_interval_seconds=settings.decision_sensor_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Decides {spec.name}'s live experiment from its daily {spec.gate_metric}: promotes "
            f"the challenger after at least {settings.min_days} days when it is better with "
            f"{settings.confidence:.0%} confidence (paired bootstrap over days), retires it when "
            f"worse with that confidence or after {settings.max_days} days."
        ),
    )
    def evaluate(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        result = rollout_tick(context.instance, spec, settings)
        if isinstance(result, dg.SensorResult):
            for request in result.run_requests or []:
                context.log.info(f"requesting {request.run_key}: {request.tags[REASON_TAG]}")
        return result

    return evaluate
