"""The asset factory for one model: `<model>/features`, `<model>/model`, `<model>/predictions`.

Everything comes from the model's declaration (`assets.model_spec.ModelSpec`) as the catalog
resolved it: the inputs and their windows become the lineage of the features, the label's table
and the training window that of the model, the champion of the past year that of predictions. A
model that reads another's features (`features_from`) has no features asset of its own.
"""

from datetime import date

import dagster as dg
import pyarrow as pa

from assets.catalog import Catalog
from assets.comparison import compare
from assets.features import features_of_days, inputs_of_day
from assets.keys import features_key, model_key, predictions_key
from assets.metadata import markdown_table, rows_metadata, with_preview
from assets.model_spec import ModelSpec, Task
from assets.partitions import (
    daily_backfill_policy,
    preceding_days,
    preceding_window,
    run_days,
    window_mapping,
)
from assets.per_day import consecutive, lacking_inputs, merged, report_days
from assets.plots import Point, plot_link, write_history
from assets.quality_gate import QUALITY_GATE
from assets.scoring import (
    ARM,
    SCORE,
    SERVED_BY,
    Serving,
    champions_in_force,
    runs_in_progress,
    scored_days,
    serving_in_force,
    shadow_table,
)
from assets.tags import asset_tags
from assets.training import Trained, TrainingConfig, labelled_rows, train_cutoff
from assets.tuning import study_table
from resources import mlflow_mirror
from resources.days import row_chunks
from resources.lake import Lake
from resources.read_ahead import read_ahead
from resources.registry import ModelRegistry

# Lineage of a served day D to "the champion in force on D": a model of the past year.
MODEL_LOOKBACK_DAYS = 366
# Metadata of `<model>/model` materializations that the quality sensor reads.
MODEL_VERSION = "version"
# Metadata of each cutoff of `<model>/model`: whether its version passed the gate and was
# promoted, and the version that serves from that cutoff on (it, or the champion it failed to beat).
GATE_PASSED, PROMOTED, SERVING_VERSION = "gate_passed", "promoted", "serving_version"
GATE_REASON = "gate_reason"
# Metadata of each cutoff: the model's recent versions side by side (`assets.comparison`), and the
# hyperparameter search's trials when there was one.
VERSIONS_COMPARED, SEARCH_STUDY = "versions_compared", "search_study"
# Metadata of each cutoff when the MLflow mirror is on: the version's MLflow run.
MLFLOW_RUN = "mlflow_run"
# Metadata of each cutoff: the rollout policy its version went through, and whether it started
# as a challenger (its experiment is then decided by the rollout sensor).
ROLLOUT, CHALLENGER = "rollout", "challenger"
# Metadata of each day of `<model>/predictions`: the mean served score, and on the days of an
# experiment its id and the rows of each arm (A/B) or scored in shadow.
MEAN_SCORE = "mean_score"
EXPERIMENT_ROWS = "experiment_rows"
FEATURES, TRAINING, INFERENCE = "features", "training", "inference"


def holdout_key(metric: str) -> str:
    """The metadata name of a version's holdout value of `metric`, e.g. `holdout_auc`."""
    return f"holdout_{metric}"


def training_pool(spec: ModelSpec) -> str:
    """The concurrency pool `<model>/model` holds: one training run of a model at a time."""
    return f"{spec.name}_training"


def build_model_pipeline(catalog: Catalog, spec: ModelSpec) -> list[dg.AssetsDefinition]:
    """The features (unless read from another model), model and predictions of `spec`."""
    built = [] if spec.features_from else [features_asset(catalog, spec)]
    return [*built, model_asset(catalog, spec), predictions_asset(catalog, spec)]


def features_asset(catalog: Catalog, spec: ModelSpec) -> dg.AssetsDefinition:
    dataset = catalog.dataset_of(spec)
    key = features_key(spec)
    deps = []
    for input_ in spec.inputs.values():
        upstream = dg.AssetKey.from_user_string(input_.table)
        mapping = (
            window_mapping(input_.lookback_days, input_.same_day)
            if catalog.is_daily(input_)
            else None
        )
        deps.append(dg.AssetDep(upstream, partition_mapping=mapping))
    # The range is cut by the volume of the first input read on day D itself.
    sized_by = next(
        (i.table for i in spec.inputs.values() if i.same_day and catalog.is_daily(i)), None
    )

    @dg.asset(
        key=key,
        description=f"Features of {spec.name}, known before the day. {spec.description}",
        group_name=spec.name,
        tags=asset_tags(FEATURES, dataset=dataset.name, model=spec.name),
        partitions_def=dataset.partitions,
        backfill_policy=daily_backfill_policy(),
        kinds={"duckdb", "parquet"},
        deps=deps,
    )
    def features(context: dg.AssetExecutionContext, lake: Lake) -> dg.MaterializeResult:
        days = run_days(context)
        lacking = lacking_inputs(
            lake, {day: inputs_of_day(catalog, spec, day, dataset.first_day) for day in days}
        )
        metadata = {}
        for ready in consecutive([d for d in days if d not in lacking]):
            volume = lake.row_count(sized_by, ready) if sized_by else 0
            chunks = row_chunks(ready, volume)
            computed = read_ahead(
                lambda chunk: features_of_days(lake, catalog, spec, chunk), chunks
            )
            for chunk, table in computed:
                written = lake.write_partitions(key.to_user_string(), table, spec.day_column, chunk)
                metadata |= rows_metadata(written)
        if metadata:  # the last table written holds the newest day
            metadata = with_preview(metadata, table, spec.day_column)
        lake.refresh_warehouse([key.to_user_string()])
        return report_days(context, metadata, lacking)

    return features


def model_asset(catalog: Catalog, spec: ModelSpec) -> dg.AssetsDefinition:
    dataset = catalog.dataset_of(spec)
    key = model_key(spec)
    direction = "higher" if spec.higher_is_better else "lower"

    @dg.asset(
        key=key,
        description=(
            f"A {spec.name} {spec.task.replace('_', ' ')} model per training cutoff D, fitted on "
            f"the {spec.window_days} days before D. The quality gate judges it by a fit of the "
            f"same parameters without the last {spec.holdout_days} of those days, scored on them "
            f"by {spec.gate_metric} ({direction} is better); a version that passes is promoted "
            f"to champion from D on (rollout {spec.rollout.policy.value}) or, under the shadow "
            "and ab policies, starts as a challenger judged on the days it scores."
        ),
        group_name=spec.name,
        tags=asset_tags(TRAINING, dataset=dataset.name, model=spec.name),
        partitions_def=dataset.partitions,
        backfill_policy=daily_backfill_policy(),
        kinds={"scikit-learn"},
        # One training of a model at a time through the run queue: a second would fit the same
        # window again. Promotions are correct without it (`assets.training.gate_and_store`).
        pool=training_pool(spec),
        deps=[
            dg.AssetDep(features_key(spec), partition_mapping=preceding_window(spec.window_days)),
            dg.AssetDep(spec.label.table, partition_mapping=preceding_window(spec.window_days)),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                QUALITY_GATE,
                asset=key,
                blocking=True,
                description=(
                    f"Holdout {spec.gate_metric} not worse than the limit, and not worse than the "
                    "champion's on the same rows by more than the tolerance. A failure stops "
                    "downstream assets in the run."
                ),
            )
        ],
    )
    def model(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        lake: Lake,
        registry: ModelRegistry,
    ) -> dg.MaterializeResult:
        days = run_days(context)
        windows = {day: preceding_days(day, spec.window_days, dataset.first_day) for day in days}
        short = {
            day: [
                f"history: {len(window)} days since {dataset.first_day}, fewer than the "
                f"{spec.min_window_days} a window needs"
            ]
            for day, window in windows.items()
            if len(window) < spec.min_window_days
        }
        needs = {
            day: {spec.features_table: window, spec.label.table: window}
            for day, window in windows.items()
            if day not in short
        }
        lacking = merged(short, lacking_inputs(lake, needs))
        trained = []
        # In date order, so each cutoff is gated against the champion the previous one left.
        for day, window in windows.items():
            if day in lacking:
                continue
            labelled = labelled_rows(lake, catalog, spec, window, config.max_training_rows)
            result = train_cutoff(spec, config, registry, day, window, labelled, context.run_id)
            started = "; promoted" if result.promoted else ""
            started = "; started as challenger" if result.challenger else started
            context.log.info(
                f"{result.record['version']}: gate {'passed' if result.decision.passed else 'FAILED'}"
                f" ({result.decision.reason}){started}"
            )
            trained.append(result)
        table = key.to_user_string()
        history = version_history(registry, spec)
        write_history(lake, table, f"{spec.name}: versions by cutoff", history)
        mirrored = (
            mlflow_mirror.mirror_quietly(
                registry, spec.name, [t.record["version"] for t in trained]
            )
            if trained
            else None
        )
        compared = (
            {VERSIONS_COMPARED: dg.MetadataValue.md(markdown_table(compare(registry, lake, spec)))}
            if trained
            else {}
        )
        serving = champions_in_force(registry, spec, sorted(lacking))[0]
        consequence = "; ".join(
            f"{version} keeps serving from {day}" for day, version in serving.items()
        )
        return report_days(
            context,
            {
                date.fromisoformat(t.record["partition"]): model_metadata(spec, t)
                | plot_link(table)
                | compared
                | mlflow_link(mirrored, t.record["version"])
                for t in trained
            },
            lacking,
            [gate_result(spec, trained)] if trained else [],
            consequence,
        )

    return model


def predictions_asset(catalog: Catalog, spec: ModelSpec) -> dg.AssetsDefinition:
    dataset = catalog.dataset_of(spec)
    key = predictions_key(spec)
    table = key.to_user_string()
    meaning = "probability of the label" if spec.task == Task.BINARY else "predicted label"

    @dg.asset(
        key=key,
        description=(
            f"Scores of {spec.name} for every row of the day ({meaning}), by the champion in "
            "force that day (as of that day, so backfills reproduce), or under an A/B experiment "
            "by the arm a hash of the row's key gives it; each row names its version and arm. A "
            f"shadow challenger's scores go to {shadow_table(spec)}, never served."
        ),
        group_name=spec.name,
        tags=asset_tags(INFERENCE, dataset=dataset.name, model=spec.name),
        partitions_def=dataset.partitions,
        backfill_policy=daily_backfill_policy(),
        kinds={"scikit-learn", "parquet"},
        deps=[features_key(spec), champion_dep(spec)],
    )
    def predictions(
        context: dg.AssetExecutionContext, lake: Lake, registry: ModelRegistry
    ) -> dg.MaterializeResult:
        from assets import modeling

        days = run_days(context)
        serving, unserved = serving_in_force(registry, spec, days)
        needs = {day: {spec.features_table: [day]} for day in days}
        lacking = merged(unserved, lacking_inputs(lake, needs))
        estimators: dict[str, object] = {}
        metadata, written_tables = {}, {table}
        for ready in consecutive([d for d in days if d not in lacking]):
            for chunk in row_chunks(ready, lake.row_count(spec.features_table, ready)):
                threads = modeling.model_threads(runs_in_progress(context.instance))
                served = {day: serving[day].served() for day in chunk}
                scored = scored_days(lake, registry, spec, chunk, served, estimators, threads)
                written = lake.write_partitions(table, scored, spec.day_column, chunk)
                metadata |= prediction_metadata(spec, scored, written, serving)
                shadowed = {d: a for d in chunk if (a := serving[d].shadow()) is not None}
                for run in consecutive(sorted(shadowed)):
                    shadow = scored_days(lake, registry, spec, run, shadowed, estimators, threads)
                    lake.write_partitions(shadow_table(spec), shadow, spec.day_column, run)
                    written_tables.add(shadow_table(spec))
                    for day, rows in lake_rows_by_day(spec, shadow).items():
                        metadata[day][EXPERIMENT_ROWS] = dg.MetadataValue.json({"shadow": rows})
        if metadata:  # the last table scored holds the newest day
            metadata = with_preview(metadata, scored, spec.day_column)
        lake.refresh_warehouse(sorted(written_tables))
        return report_days(context, metadata, lacking)

    return predictions


def prediction_metadata(
    spec: ModelSpec, scored: pa.Table, rows_per_day: dict[date, int], serving: dict[date, Serving]
) -> dict[date, dict[str, dg.MetadataValue]]:
    """Each day's row count, the versions that served it and its mean score; on the days of an
    experiment, its id and the rows each arm served."""
    means = scored.group_by(spec.day_column).aggregate([(SCORE, "mean")])
    mean_of = dict(
        zip(
            means.column(spec.day_column).to_pylist(),
            means.column(f"{SCORE}_mean").to_pylist(),
            strict=True,
        )
    )
    arms = scored.group_by([spec.day_column, ARM]).aggregate([(ARM, "count")]).to_pylist()
    metadata = {}
    for day, values in rows_metadata(rows_per_day).items():
        experiment = serving[day].experiment
        served = [serving[day].champion]
        if experiment is not None and experiment.policy == "ab":
            served.append(experiment.challenger)
        values = values | {
            SERVED_BY: dg.MetadataValue.text(", ".join(served)),
            MEAN_SCORE: dg.MetadataValue.float(
                float("nan") if mean_of.get(day) is None else mean_of[day]
            ),
        }
        if experiment is not None:
            counts = {r[ARM]: r[f"{ARM}_count"] for r in arms if r[spec.day_column] == day}
            values |= {
                "experiment": dg.MetadataValue.text(experiment.id),
                EXPERIMENT_ROWS: dg.MetadataValue.json(counts),
            }
        metadata[day] = values
    return metadata


def lake_rows_by_day(spec: ModelSpec, table: pa.Table) -> dict[date, int]:
    """The rows of `table` on each of its days."""
    counts = table.group_by(spec.day_column).aggregate([(ARM, "count")]).to_pylist()
    return {r[spec.day_column]: r[f"{ARM}_count"] for r in counts}


def champion_dep(spec: ModelSpec) -> dg.AssetDep:
    """Lineage of an asset served by the champion in force on its day: any model partition of
    the preceding year may be that champion, and most of them never exist."""
    return dg.AssetDep(
        model_key(spec),
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-MODEL_LOOKBACK_DAYS,
            end_offset=0,
            allow_nonexistent_upstream_partitions=True,
        ),
    )


def version_history(registry: ModelRegistry, spec: ModelSpec) -> dict[str, list[Point]]:
    """Each stored version's holdout value of every metric, at its cutoff."""
    from resources import promotions

    promoted = {e["version"] for e in promotions.timeline_order(registry.history(spec.name))}
    versions = registry.versions(spec.name)
    return {
        holdout_key(metric): [
            Point(
                r["partition"],
                r["metrics"][metric],
                f"{r['version']}, {'promoted' if r['version'] in promoted else 'not promoted'}",
            )
            for r in versions
        ]
        for metric in spec.metrics
    }


def model_metadata(spec: ModelSpec, trained: Trained) -> dict[str, dg.MetadataValue]:
    """The experiment record of one cutoff, on that cutoff's materialization (so the UI plots the
    versions' metrics by cutoff), and the version that serves from it."""
    record = trained.record
    metrics, gate = record["metrics"], record["gate"]
    gate_metric = spec.gate_metric
    serving = record["version"] if trained.promoted else gate["champion_version"]
    optional = {
        f"champion_holdout_{gate_metric}": (
            dg.MetadataValue.float(gate["champion_value"])
            if gate["champion_value"] is not None
            else None
        ),
        "search_trials": (
            dg.MetadataValue.int(len(record["search_trials"])) if record["search_trials"] else None
        ),
        SEARCH_STUDY: (
            dg.MetadataValue.md(markdown_table(study_table(record))) if record["search"] else None
        ),
        SERVING_VERSION: dg.MetadataValue.text(serving) if serving else None,
    }
    holdout = {holdout_key(name): dg.MetadataValue.float(metrics[name]) for name in spec.metrics}
    return {
        MODEL_VERSION: dg.MetadataValue.text(record["version"]),
        "training_window": dg.MetadataValue.text(" .. ".join(record["training_window"])),
        "holdout_window": dg.MetadataValue.text(" .. ".join(record["holdout_window"])),
        "data_fingerprint": dg.MetadataValue.text(record["data_fingerprint"]),
        **holdout,
        "gate_metric": dg.MetadataValue.text(gate_metric),
        "fit_rows": dg.MetadataValue.int(record["fit_rows"]),
        "gate_fit_rows": dg.MetadataValue.int(record["gate_fit_rows"]),
        "holdout_rows": dg.MetadataValue.int(metrics["rows"]),
        GATE_PASSED: dg.MetadataValue.bool(trained.decision.passed),
        PROMOTED: dg.MetadataValue.bool(trained.promoted),
        ROLLOUT: dg.MetadataValue.text(gate.get("rollout", "direct")),
        CHALLENGER: dg.MetadataValue.bool(trained.challenger),
        GATE_REASON: dg.MetadataValue.text(trained.decision.reason),
        "training_seconds": dg.MetadataValue.float(record["training_seconds"]),
        "artifact_bytes": dg.MetadataValue.int(record["artifact_bytes"]),
        "artifact_sha256": dg.MetadataValue.text(record["artifact_sha256"]),
        "code_version": dg.MetadataValue.text(record["code_version"]),
        "features": dg.MetadataValue.json(record["features"]),
        "params": dg.MetadataValue.json(record["params"]),
    } | {name: value for name, value in optional.items() if value is not None}


def mlflow_link(mirrored: "mlflow_mirror.Mirrored | None", version: str) -> dict:
    """The link to `version`'s MLflow run, when the mirror is on and reached MLflow."""
    if mirrored is None or version not in mirrored.run_urls:
        return {}
    return {MLFLOW_RUN: dg.MetadataValue.url(mirrored.run_urls[version])}


def gate_result(spec: ModelSpec, trained: list[Trained]) -> dg.AssetCheckResult:
    """One check result per run: Dagster records check results per run, not per partition, so a
    range run passes only when every cutoff in it passed.

    A rejected candidate is a warning while a champion keeps serving in its place (the model is
    not broken, the champion simply stays), and an error, which blocks what follows in the run,
    when no champion serves from its cutoff."""
    failed = [t for t in trained if not t.decision.passed]
    last = (failed or trained)[-1]
    gate = last.record["gate"]
    unserved = [t for t in failed if t.record["gate"]["champion_version"] is None]
    description = last.decision.reason
    if failed:
        champion = gate["champion_version"]
        description += (
            f"; {last.record['version']} is not promoted and {champion} keeps serving"
            if champion
            else f"; no {spec.name} champion serves from {last.record['partition']}"
        )
    return dg.AssetCheckResult(
        check_name=QUALITY_GATE,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR if unserved else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "gate_metric": spec.gate_metric,
            "candidate_version": last.record["version"],
            f"candidate_{spec.gate_metric}": last.record["metrics"][spec.gate_metric],
            "champion_version": str(gate["champion_version"]),
            f"champion_{spec.gate_metric}": (
                float("nan") if gate["champion_value"] is None else gate["champion_value"]
            ),
            "limit": gate["limit"],
            "tolerance": gate["tolerance"],
            "cutoffs_failed": ", ".join(t.record["partition"] for t in failed) or "none",
            "promoted": ", ".join(t.record["version"] for t in trained if t.promoted) or "none",
            "challengers": ", ".join(t.record["version"] for t in trained if t.challenger)
            or "none",
        },
    )
