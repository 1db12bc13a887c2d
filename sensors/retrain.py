"""Retraining decided by monitoring: per model, a drift sensor and a quality sensor.

- `<model>_drift_retrain` watches `<model>/feature_drift`: when the share of drifted columns stayed
  above `drift_threshold` on each of the latest `drift_days` days, it requests a retrain.
- `<model>_quality_retrain` watches `<model>/prediction_quality`: when the mean daily AUC of the
  latest `quality_days` days served by the current champion falls below `auc_floor`, or more than
  `auc_margin` below that champion's holdout AUC, it requests a retrain.

Both request `<model>/model[D]` with its blocking quality gate, for D = the day after the latest
day they judged: the new model is fitted on data up to that day and, if it passes the gate, is
champion from the next day to be predicted on. Neither asks again within `cooldown_days` data
days (partitions, not wall time, so a replay or a backfill behaves as the live feed) after the
newest cutoff of the model that is materialized or being materialized, by any run. A run key per
model, trigger and cutoff makes the daemon launch a request once.

Sensors only read the instance: partition metadata written by the monitoring assets and the
model's materialization metadata, never the lake or a model. `drift_tick` and `quality_tick`
evaluate one tick given an instance, so a benchmark can time them.

Both are on by default: the platform must act by itself. Stop either in the UI (Automation) to
leave retraining to people or to the weekly schedule.
"""

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, timedelta

import dagster as dg

from assets import MODELS
from assets.drift import CHAMPION_VERSION, DRIFT_SHARE
from assets.model_spec import ModelSpec
from assets.partitions import daily_partitions
from assets.quality_gate import QUALITY_GATE
from sensors.replay import TRIGGER_TAG, UNFINISHED

REASON_TAG = "platform/trigger_reason"
LAST_DAY = date.fromisoformat(daily_partitions.get_last_partition_key())
# Metadata of `<model>/prediction_quality` partitions and `<model>/model` materializations.
AUC, SERVED_BY = "auc", "model_versions"
MODEL_VERSION, HOLDOUT_AUC = "version", "holdout_auc"
PARTITION_TAG = "dagster/partition"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dataclass(frozen=True)
class RetrainSettings:
    """When the sensors retrain; each field is overridden by the environment variable in
    `ENVIRONMENT` (read when the code location loads)."""

    drift_threshold: float = 0.2
    """A day counts as drifted when its share of drifted feature columns is above this."""
    drift_days: int = 3
    """Consecutive drifted days (the latest ones) that trigger a retrain."""
    cooldown_days: int = 14
    """Data days after the newest retrain cutoff during which no retrain is requested."""
    quality_days: int = 7
    """Days of the rolling AUC: the latest ones served by the current champion."""
    auc_floor: float = 0.6
    """A rolling AUC below this triggers a retrain."""
    auc_margin: float = 0.05
    """A rolling AUC more than this below the champion's holdout AUC triggers a retrain."""
    tick_seconds: int = 30
    """Minimum seconds between two evaluations of each sensor."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "RetrainSettings":
        """The defaults, overridden by every variable of `ENVIRONMENT` that is set."""
        values = {}
        for field in fields(cls):
            variable, parse = ENVIRONMENT[field.name]
            raw = environ.get(variable, "").strip()
            if raw:
                try:
                    values[field.name] = parse(raw)
                except ValueError as error:
                    raise ValueError(f"{variable}={raw!r}: {error}") from None
        return cls(**values)


def _number(low: float, high: float = math.inf) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def _whole(low: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < low:
            raise ValueError(f"expected a whole number of at least {low}")
        return value

    return parse


ENVIRONMENT: dict[str, tuple[str, Callable[[str], float | int]]] = {
    "drift_threshold": ("PLATFORM_DRIFT_THRESHOLD", _number(0.0, 1.0)),
    "drift_days": ("PLATFORM_DRIFT_DAYS", _whole(1)),
    "cooldown_days": ("PLATFORM_RETRAIN_COOLDOWN_DAYS", _whole(0)),
    "quality_days": ("PLATFORM_QUALITY_DAYS", _whole(1)),
    "auc_floor": ("PLATFORM_QUALITY_AUC_FLOOR", _number(0.0, 1.0)),
    "auc_margin": ("PLATFORM_QUALITY_AUC_MARGIN", _number(0.0, 1.0)),
    "tick_seconds": ("PLATFORM_RETRAIN_SENSOR_SECONDS", _whole(1)),
}


def drift_sensor_name(model: str) -> str:
    return f"{model}_drift_retrain"


def quality_sensor_name(model: str) -> str:
    return f"{model}_quality_retrain"


def drift_tick(
    instance: dg.DagsterInstance, model: str, settings: RetrainSettings
) -> dg.SensorResult | dg.SkipReason:
    """One evaluation of the drift sensor of `model`."""
    key = dg.AssetKey([model, "feature_drift"])
    latest = latest_partition(instance, key)
    if latest is None:
        return dg.SkipReason(f"no {key.to_user_string()} partition is materialized yet")
    days = days_up_to(latest, settings.drift_days)
    metadata = partition_metadata(instance, key, days, DRIFT_SHARE)
    missing = [d for d in days if d not in metadata]
    if missing:
        return dg.SkipReason(
            f"{key.to_user_string()} is missing {_list(missing)}: cannot tell whether drift "
            f"persisted on the last {settings.drift_days} days"
        )
    shares = {d: _value(metadata[d], DRIFT_SHARE) for d in days}
    calm = [d for d, share in shares.items() if not share > settings.drift_threshold]
    described = ", ".join(f"{d}: {_fmt(s)}" for d, s in shares.items())
    if calm:
        return dg.SkipReason(
            f"drift share not above {settings.drift_threshold} on {_list(calm)} "
            f"(last {settings.drift_days} days: {described})"
        )
    champions = sorted({str(_value(metadata[d], CHAMPION_VERSION)) for d in days})
    reason = (
        f"drift share above {settings.drift_threshold} on the last {settings.drift_days} days "
        f"({described}) against champion {', '.join(champions)}"
    )
    return retrain_request(instance, model, latest, "drift", reason, settings)


def quality_tick(
    instance: dg.DagsterInstance, model: str, settings: RetrainSettings
) -> dg.SensorResult | dg.SkipReason:
    """One evaluation of the quality sensor of `model`."""
    key = dg.AssetKey([model, "prediction_quality"])
    latest = latest_partition(instance, key)
    if latest is None:
        return dg.SkipReason(f"no {key.to_user_string()} partition is materialized yet")
    days = days_up_to(latest, settings.quality_days)
    metadata = partition_metadata(instance, key, days, SERVED_BY)
    if latest not in metadata:
        return dg.SkipReason(f"{key.to_user_string()}[{latest}] does not name a model version")
    champion = str(_value(metadata[latest], SERVED_BY))
    served = [d for d in days if d in metadata and _value(metadata[d], SERVED_BY) == champion]
    if len(served) < len(days):
        return dg.SkipReason(
            f"champion {champion} has served {len(served)} of the last {settings.quality_days} "
            f"judged days up to {latest}; waiting for {settings.quality_days}"
        )
    aucs = [a for d in days if not math.isnan(a := float(_value(metadata[d], AUC)))]
    if not aucs:
        return dg.SkipReason(f"no AUC on the last {settings.quality_days} days (one class only)")
    rolling = sum(aucs) / len(aucs)
    validation = holdout_auc(instance, model, champion)
    window = f"mean daily AUC {rolling:.4f} over {days[0]}..{days[-1]} (champion {champion}"
    window += f", holdout AUC {validation:.4f})" if validation is not None else ")"
    if rolling < settings.auc_floor:
        reason = f"{window} is below the floor {settings.auc_floor}"
    elif validation is not None and rolling < validation - settings.auc_margin:
        reason = f"{window} is more than {settings.auc_margin} below the holdout AUC"
    else:
        unknown = "" if validation is not None else "; the champion's holdout AUC is not recorded"
        return dg.SkipReason(
            f"{window} is healthy: floor {settings.auc_floor}, margin {settings.auc_margin}"
            f"{unknown}"
        )
    return retrain_request(instance, model, latest, "quality", reason, settings)


def retrain_request(
    instance: dg.DagsterInstance,
    model: str,
    judged: date,
    trigger: str,
    reason: str,
    settings: RetrainSettings,
) -> dg.SensorResult | dg.SkipReason:
    """A retrain of `model` for the day after `judged`, unless within the cooldown."""
    cutoff = judged + timedelta(days=1)
    if cutoff > LAST_DAY:
        return dg.SkipReason(f"{reason}, but the partitions end on {LAST_DAY}: nothing to train")
    model_key = dg.AssetKey([model, "model"])
    last = newest_cutoff(instance, model_key)
    if last is not None and (cutoff - last).days < settings.cooldown_days:
        return dg.SkipReason(
            f"{reason}, but the newest {model_key.to_user_string()} cutoff is {last}: within "
            f"the cooldown of {settings.cooldown_days} days, the next retrain can be for "
            f"{last + timedelta(days=settings.cooldown_days)} or later"
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{trigger}:{model}:{cutoff.isoformat()}",
                partition_key=cutoff.isoformat(),
                asset_selection=[model_key],
                asset_check_keys=[dg.AssetCheckKey(model_key, QUALITY_GATE)],
                tags={TRIGGER_TAG: trigger, REASON_TAG: reason[:1000]},
            )
        ]
    )


def latest_partition(instance: dg.DagsterInstance, key: dg.AssetKey) -> date | None:
    partitions = instance.get_materialized_partitions(key)
    return date.fromisoformat(max(partitions)) if partitions else None


def days_up_to(last: date, count: int) -> list[date]:
    """The `count` days ending with `last`, oldest first."""
    return [last - timedelta(days=i) for i in reversed(range(count))]


def partition_metadata(
    instance: dg.DagsterInstance, key: dg.AssetKey, days: Iterable[date], required: str
) -> dict[date, Mapping[str, dg.MetadataValue]]:
    """The metadata of the latest materialization of each of `days` that has one carrying
    `required` (a materialization reported without it is passed over)."""
    wanted = {d.isoformat(): d for d in days}
    found: dict[date, Mapping[str, dg.MetadataValue]] = {}
    cursor = None
    while len(found) < len(wanted):
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=list(wanted)),
            limit=2 * len(wanted),
            cursor=cursor,
        )
        for record in page.records:  # newest first: keep the first seen of each partition
            metadata = record.asset_materialization.metadata
            if required in metadata:
                found.setdefault(wanted[record.partition_key], metadata)
        if not page.has_more:
            break
        cursor = page.cursor
    return found


def newest_cutoff(instance: dg.DagsterInstance, model_key: dg.AssetKey) -> date | None:
    """The newest cutoff of the model that is materialized, or planned by a run not finished."""
    cutoffs = [date.fromisoformat(p) for p in instance.get_materialized_partitions(model_key)]
    for record in instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        partition = run.tags.get(PARTITION_TAG) or run.tags.get(RANGE_END_TAG)
        if partition and run.asset_selection and model_key in run.asset_selection:
            cutoffs.append(date.fromisoformat(partition))
    return max(cutoffs, default=None)


def holdout_auc(instance: dg.DagsterInstance, model: str, version: str) -> float | None:
    """The holdout AUC recorded when `version` was trained, from the metadata of a `model`
    materialization of its cutoff that names it; None when none does (a range run records the
    metadata of its newest cutoff only)."""
    key = dg.AssetKey([model, "model"])
    cutoff = version.split(".")[0]
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[cutoff]), limit=20
    ).records
    for record in records:
        metadata = record.asset_materialization.metadata
        if MODEL_VERSION in metadata and _value(metadata, MODEL_VERSION) == version:
            return float(_value(metadata, HOLDOUT_AUC))
    return None


def _value(metadata: Mapping[str, dg.MetadataValue], name: str):
    return metadata[name].value


def _fmt(share: float) -> str:
    return f"{share:.2f}"


def _list(days: list[date]) -> str:
    return ", ".join(d.isoformat() for d in days)


def build_retrain_sensors(
    spec: ModelSpec, settings: RetrainSettings | None = None
) -> list[dg.SensorDefinition]:
    """The drift and quality sensors of one model, with `settings` or those of the environment."""
    settings = settings or RetrainSettings.from_env()
    model_key = dg.AssetKey([spec.name, "model"])

    def sensor(
        name: str, tick: Callable[..., dg.SensorResult | dg.SkipReason], watches: str
    ) -> dg.SensorDefinition:
        @dg.sensor(
            name=name,
            target=dg.AssetSelection.assets(model_key),
            minimum_interval_seconds=settings.tick_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description=(
                f"Requests {model_key.to_user_string()} (with its quality gate) when {watches}; "
                f"not within {settings.cooldown_days} days of the newest retrain cutoff."
            ),
        )
        def evaluate(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
            result = tick(context.instance, spec.name, settings)
            if isinstance(result, dg.SensorResult):
                for request in result.run_requests or []:
                    context.log.info(f"requesting {request.run_key}: {request.tags[REASON_TAG]}")
            return result

        return evaluate

    return [
        sensor(
            drift_sensor_name(spec.name),
            drift_tick,
            f"the share of drifted feature columns stays above {settings.drift_threshold} for "
            f"{settings.drift_days} days",
        ),
        sensor(
            quality_sensor_name(spec.name),
            quality_tick,
            f"the mean AUC of {settings.quality_days} days falls below {settings.auc_floor} or "
            f"more than {settings.auc_margin} below the champion's holdout AUC",
        ),
    ]


retrain_sensors = [sensor for spec in MODELS for sensor in build_retrain_sensors(spec)]
