"""Retraining decided by monitoring: per model, a drift sensor and a quality sensor.

- `<model>_drift_retrain` watches `<model>/feature_drift`: when the share of drifted columns stayed
  above `drift_threshold` on each of the `drift_days` days ending with the day last judged (that
  of its newest materialization), it requests a retrain.
- `<model>_quality_retrain` watches `<model>/prediction_quality`: when the mean daily gate metric of
  the `quality_days` days up to the day last judged, served by the current champion, is worse
  than `quality_limit`, or worse than that champion's holdout value by more than
  `quality_margin`, it requests a retrain. "Worse" follows the metric's direction: lower AUC,
  higher MAE or MAPE.

Both request `<model>/model[D]` with its blocking quality gate, for D = the day after the day they
judged: the new model is fitted on data up to that day and, if it passes the gate, is champion
from the next day to be predicted on. Neither asks when the training window of D lacks features
or labels (a backfill ahead of the replay leaves gaps), nor within `retrain_cooldown_days` data
days (partitions, not wall time, so a replay or a backfill behaves as the live feed) after the
newest cutoff of the model that is materialized or being materialized, by any run, or after the
cutoff of a retrain they requested that failed: they back off instead of failing every day. Nor
while the newest judged day names a live experiment (`shadow` or `ab` rollout): a new version
passing the gate would supersede the challenger before its decision, and under persistent drift
every challenger would be replaced just as its evidence was complete. A run
key per model, trigger and cutoff makes the daemon launch a request once.

The settings are the model's declaration (`assets.model_spec.Monitoring`), which the environment
may override (`resources.settings.monitoring_overrides`). Sensors only read the instance:
partition metadata written by the monitoring assets and the model's materialization metadata,
never the lake or a model. `drift_tick` and `quality_tick` evaluate one tick given an instance, so
a benchmark can time them.

Both are on by default: the platform must act by itself. Stop either in the UI (Automation) to
leave retraining to people or to the weekly schedule.
"""

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta

import dagster as dg

from assets.catalog import Catalog
from assets.drift import CHAMPION_VERSION, DRIFT_SHARE
from assets.keys import drift_key, model_key, quality_key
from assets.metrics import METRICS
from assets.model_pipeline import MODEL_VERSION, holdout_key
from assets.model_spec import ModelSpec, Monitoring
from assets.monitoring import CHALLENGER_VERSION, EXPERIMENT, EXPERIMENT_STARTED
from assets.partitions import preceding_days
from assets.quality_gate import QUALITY_GATE
from assets.scoring import SERVED_BY
from resources.dataset import Dataset
from resources.days import describe_days
from sensors.replay import UNFINISHED
from sensors.run_tags import (
    PARTITION_TAG,
    RANGE_END_TAG,
    REASON_TAG,
    RETRAIN_TRIGGERS,
    TRIGGER_TAG,
    Trigger,
)

# Failed retrains read per tick to find the model's newest: enough for every model's recent ones.
FAILED_RUNS_READ = 50


def drift_sensor_name(model: str) -> str:
    return f"{model}_drift_retrain"


def quality_sensor_name(model: str) -> str:
    return f"{model}_quality_retrain"


def drift_tick(
    instance: dg.DagsterInstance, spec: ModelSpec, settings: Monitoring, dataset: Dataset
) -> dg.SensorResult | dg.SkipReason:
    """One evaluation of the drift sensor of `spec`, which follows `dataset`'s calendar."""
    key = drift_key(spec)
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
    described = ", ".join(f"{d}: {share:.2f}" for d, share in shares.items())
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
    return retrain_request(instance, spec, latest, Trigger.DRIFT, reason, settings, dataset)


def quality_tick(
    instance: dg.DagsterInstance, spec: ModelSpec, settings: Monitoring, dataset: Dataset
) -> dg.SensorResult | dg.SkipReason:
    """One evaluation of the quality sensor of `spec`, which follows `dataset`'s calendar."""
    key = quality_key(spec)
    metric = METRICS[spec.gate_metric]
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
    values = [v for d in days if not math.isnan(v := float(_value(metadata[d], metric.name)))]
    if not values:
        return dg.SkipReason(f"no {metric.name} on the last {settings.quality_days} days")
    rolling = sum(values) / len(values)
    validation = holdout_value(instance, spec, champion)
    window = f"mean daily {metric.name} {rolling:.4f} over {days[0]}..{days[-1]} (champion "
    window += f"{champion}, holdout {validation:.4f})" if validation is not None else f"{champion})"
    limit, margin = settings.quality_limit, settings.quality_margin
    worse = "lower" if metric.higher_is_better else "higher"
    if limit is not None and metric.worse(rolling, limit):
        reason = f"{window} is worse than the limit {limit}"
    elif (
        validation is not None and margin is not None and metric.worse(rolling, validation, margin)
    ):
        reason = f"{window} is more than {margin} {worse} than the holdout value"
    else:
        unknown = "" if validation is not None else "; the champion's holdout value is not recorded"
        return dg.SkipReason(f"{window} is healthy: limit {limit}, margin {margin}{unknown}")
    return retrain_request(instance, spec, latest, Trigger.QUALITY, reason, settings, dataset)


def retrain_request(
    instance: dg.DagsterInstance,
    spec: ModelSpec,
    judged: date,
    trigger: str,
    reason: str,
    settings: Monitoring,
    dataset: Dataset,
) -> dg.SensorResult | dg.SkipReason:
    """A retrain of `spec` for the day after `judged`, unless a challenger is being judged, its
    training window is incomplete, or a retrain is within the cooldown, or one failed within it
    (the sensors back off)."""
    cutoff = judged + timedelta(days=1)
    if cutoff > dataset.last_day:
        return dg.SkipReason(
            f"{reason}, but the partitions end on {dataset.last_day}: nothing to train"
        )
    live = live_experiment(instance, spec)
    if live:
        return dg.SkipReason(
            f"{reason}, but {live} is being judged: a retrain now would end it before its "
            "decision, so the retrain waits for the rollout sensor to promote or retire it"
        )
    incomplete = incomplete_window(instance, spec, dataset.first_day, cutoff)
    if incomplete:
        return dg.SkipReason(f"{reason}, but the training window of cutoff {cutoff} {incomplete}")
    key = model_key(spec)
    cooldown = settings.retrain_cooldown_days
    last = newest_cutoff(instance, key)
    if last is not None and (cutoff - last).days < cooldown:
        return dg.SkipReason(
            f"{reason}, but the newest {key.to_user_string()} cutoff is {last}: within "
            f"the cooldown of {cooldown} days, the next retrain can be for "
            f"{last + timedelta(days=cooldown)} or later"
        )
    failed = newest_failed_retrain(instance, key)
    if failed is not None and (cutoff - failed[0]).days < cooldown:
        failed_cutoff, run_id = failed
        return dg.SkipReason(
            f"{reason}, but the retrain for cutoff {failed_cutoff} failed (run {run_id}, whose "
            f"failure alert says why): backing off for the cooldown of {cooldown} days, the "
            f"next retrain can be for {failed_cutoff + timedelta(days=cooldown)} or later"
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{trigger}:{spec.name}:{cutoff.isoformat()}",
                partition_key=cutoff.isoformat(),
                asset_selection=[key],
                asset_check_keys=[dg.AssetCheckKey(key, QUALITY_GATE)],
                tags={TRIGGER_TAG: trigger, REASON_TAG: reason[:1000]},
            )
        ]
    )


def newest_judged_day(
    instance: dg.DagsterInstance, spec: ModelSpec
) -> tuple[date | None, Mapping[str, dg.MetadataValue] | None]:
    """The newest day of `<model>/prediction_quality` and, when an experiment was live on it,
    that day's metadata naming the experiment (None otherwise)."""
    key = quality_key(spec)
    latest = latest_partition(instance, key)
    if latest is None:
        return None, None
    return latest, partition_metadata(instance, key, [latest], EXPERIMENT).get(latest)


def live_experiment(instance: dg.DagsterInstance, spec: ModelSpec) -> str | None:
    """The challenger and experiment the newest judged day of `spec` names, if one was live:
    a version that passes the gate while it is judged would supersede it, losing its days."""
    _, newest = newest_judged_day(instance, spec)
    if newest is None:
        return None
    return (
        f"challenger {newest[CHALLENGER_VERSION].value} (experiment {newest[EXPERIMENT].value}, "
        f"since {newest[EXPERIMENT_STARTED].value})"
    )


def incomplete_window(
    instance: dg.DagsterInstance, spec: ModelSpec, first_day: date, cutoff: date
) -> str | None:
    """What the training window of `cutoff` lacks in the instance, or None when it is whole:
    a retrain that would fail for lack of data is not requested."""
    window = preceding_days(cutoff, spec.window_days, first_day)
    if len(window) < spec.min_window_days:
        return (
            f"has {len(window)} days since {first_day}, fewer than the {spec.min_window_days} "
            "a model needs"
        )
    gaps = []
    for table in (spec.features_table, spec.label.table):
        done = instance.get_materialized_partitions(dg.AssetKey.from_user_string(table))
        missing = [day for day in window if day.isoformat() not in done]
        if missing:
            gaps.append(f"{table} {describe_days(missing)}")
    return f"lacks {'; '.join(gaps)}" if gaps else None


def latest_partition(instance: dg.DagsterInstance, key: dg.AssetKey) -> date | None:
    """The day of the newest materialization of `key`: the edge of what the platform computes,
    the replay's newest day or the last of a backfill just run. Not the latest day: a backfill
    ahead of the replay would then hide the days the replay brings from the sensors for good."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1)
    newest = records.records[0].partition_key if records.records else None
    return date.fromisoformat(newest) if newest else None


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
        cutoff = cutoff_trained(record.dagster_run, model_key)
        if cutoff is not None:
            cutoffs.append(cutoff)
    return max(cutoffs, default=None)


def newest_failed_retrain(
    instance: dg.DagsterInstance, model_key: dg.AssetKey
) -> tuple[date, str] | None:
    """The cutoff and run id of the newest retrain of the model that a sensor or schedule
    requested and that failed, if any."""
    failed = instance.get_run_records(
        dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE], tags={TRIGGER_TAG: list(RETRAIN_TRIGGERS)}
        ),
        limit=FAILED_RUNS_READ,
    )
    for record in failed:  # newest first
        cutoff = cutoff_trained(record.dagster_run, model_key)
        if cutoff is not None:
            return cutoff, record.dagster_run.run_id
    return None


def cutoff_trained(run: dg.DagsterRun, model_key: dg.AssetKey) -> date | None:
    """The (newest) cutoff of the model a run trains, or None when it does not train it."""
    partition = run.tags.get(PARTITION_TAG) or run.tags.get(RANGE_END_TAG)
    if partition and run.asset_selection and model_key in run.asset_selection:
        return date.fromisoformat(partition)
    return None


def holdout_value(instance: dg.DagsterInstance, spec: ModelSpec, version: str) -> float | None:
    """The holdout value of the gate metric recorded when `version` was trained, from the
    metadata of a model materialization of its cutoff that names it; None when none does (a
    range run records the metadata of its newest cutoff only)."""
    cutoff = version.split(".")[0]
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=model_key(spec), asset_partitions=[cutoff]), limit=20
    ).records
    holdout = holdout_key(spec.gate_metric)
    for record in records:
        metadata = record.asset_materialization.metadata
        if MODEL_VERSION in metadata and _value(metadata, MODEL_VERSION) == version:
            return float(_value(metadata, holdout)) if holdout in metadata else None
    return None


def _value(metadata: Mapping[str, dg.MetadataValue], name: str):
    return metadata[name].value


def _list(days: list[date]) -> str:
    return ", ".join(d.isoformat() for d in days)


def build_retrain_sensors(catalog: Catalog, spec: ModelSpec) -> list[dg.SensorDefinition]:
    """The drift and quality sensors of one model, with its monitoring settings as the
    environment leaves them."""
    settings = spec.monitoring.with_environment(spec.name)
    dataset = catalog.dataset_of(spec)
    key = model_key(spec)
    metric = METRICS[spec.gate_metric]
    worse = "below" if metric.higher_is_better else "above"

    def sensor(
        name: str, tick: Callable[..., dg.SensorResult | dg.SkipReason], watches: str
    ) -> dg.SensorDefinition:
        @dg.sensor(
            name=name,
            target=dg.AssetSelection.assets(key),
            minimum_interval_seconds=settings.retrain_sensor_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description=(
                f"Requests {key.to_user_string()} (with its quality gate) when {watches}; "
                f"not within {settings.retrain_cooldown_days} days of the newest retrain cutoff."
            ),
        )
        def evaluate(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
            result = tick(context.instance, spec, settings, dataset)
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
            f"the mean {metric.name} of {settings.quality_days} days goes {worse} "
            f"{settings.quality_limit} or {worse} the champion's holdout value by more than "
            f"{settings.quality_margin}",
        ),
    ]
