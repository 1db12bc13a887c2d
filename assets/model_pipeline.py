"""The asset factory for one model: `<model>/features`, `<model>/model`, `<model>/predictions`.

Everything comes from the model's declaration (`assets.model_spec.ModelSpec`) as the catalog
resolved it: the inputs and their windows become the lineage of the features, the label's table
and the training window that of the model, the champion of the past year that of predictions. A
model that reads another's features (`features_from`) has no features asset of its own.
"""

from datetime import date

import dagster as dg
import pandas as pd
import pyarrow.compute as pc

from assets.catalog import Catalog
from assets.features import features_of_days
from assets.keys import features_key, model_key, predictions_key
from assets.metadata import markdown_table, preview_on_newest_day, table_metadata
from assets.model_spec import ModelSpec, Task
from assets.partitions import (
    daily_backfill_policy,
    preceding_days,
    preceding_window,
    run_days,
    window_mapping,
)
from assets.quality_gate import QUALITY_GATE
from assets.scoring import (
    SCORE,
    SERVED_BY,
    champions_in_force,
    runs_in_progress,
    scored_days,
)
from assets.tags import asset_tags
from assets.training import Trained, TrainingConfig, labelled_rows, train_cutoff
from resources.days import row_chunks
from resources.lake import Lake
from resources.registry import ModelRegistry

# Lineage of a served day D to "the champion in force on D": a model of the past year.
MODEL_LOOKBACK_DAYS = 366
# Metadata of `<model>/model` materializations that the quality sensor reads.
MODEL_VERSION = "version"
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
        rows: dict[date, int] = {}
        every_day = run_days(context)
        volume = lake.row_count(sized_by, every_day) if sized_by else 0
        for days in row_chunks(every_day, volume):
            table = features_of_days(lake, catalog, spec, days)
            rows |= lake.write_partitions(key.to_user_string(), table, spec.day_column, days)
        lake.refresh_warehouse()
        preview_on_newest_day(context, table, rows)
        return dg.MaterializeResult(metadata=table_metadata(rows))

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
            "to champion from D on."
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
        short = [d for d, w in windows.items() if len(w) < spec.min_window_days]
        if short:
            raise dg.Failure(
                f"{key.to_user_string()}: cutoffs {short[0]}..{short[-1]} have fewer than "
                f"{spec.min_window_days} days of history since {dataset.first_day}; choose a "
                "later partition"
            )
        trained = []
        # In date order, so each cutoff is gated against the champion the previous one left.
        for day, window in windows.items():
            labelled = labelled_rows(lake, catalog, spec, window, config.max_training_rows)
            result = train_cutoff(spec, config, registry, day, window, labelled)
            context.log.info(
                f"{result.record['version']}: gate {'passed' if result.decision.passed else 'FAILED'}"
                f" ({result.decision.reason}){'; promoted' if result.promoted else ''}"
            )
            trained.append(result)
        return dg.MaterializeResult(
            metadata=model_metadata(spec, trained), check_results=[gate_result(spec, trained)]
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
            "force that day (as of that day, so backfills reproduce); each row names its version."
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
        versions = champions_in_force(registry, spec, days, table)
        estimators: dict[str, object] = {}
        rows: dict[date, int] = {}
        total_score = 0.0
        for chunk in row_chunks(days, lake.row_count(spec.features_table, days)):
            threads = modeling.model_threads(runs_in_progress(context.instance))
            scored = scored_days(lake, registry, spec, chunk, versions, estimators, threads)
            rows |= lake.write_partitions(table, scored, spec.day_column, chunk)
            total_score += pc.sum(scored[SCORE]).as_py() or 0.0
        lake.refresh_warehouse()
        preview_on_newest_day(context, scored, rows)
        return dg.MaterializeResult(
            metadata=table_metadata(rows)
            | {
                SERVED_BY: dg.MetadataValue.text(", ".join(sorted(estimators))),
                "mean_score": dg.MetadataValue.float(
                    total_score / sum(rows.values()) if sum(rows.values()) else float("nan")
                ),
            }
        )

    return predictions


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


def model_metadata(spec: ModelSpec, trained: list[Trained]) -> dict[str, dg.MetadataValue]:
    """The experiment record of the newest cutoff of the run (plotted by the UI over
    materializations), and a table of every cutoff trained."""
    last = trained[-1].record
    metrics, gate = last["metrics"], last["gate"]
    gate_metric = spec.gate_metric
    summary = pd.DataFrame(
        [
            {
                "version": t.record["version"],
                "window": " .. ".join(t.record["training_window"]),
                gate_metric: round(t.record["metrics"][gate_metric], 4),
                "champion": t.record["gate"]["champion_version"],
                f"champion_{gate_metric}": t.record["gate"]["champion_value"],
                "gate": "passed" if t.decision.passed else "failed",
                "promoted": t.promoted,
            }
            for t in trained
        ]
    )
    optional = {
        f"champion_holdout_{gate_metric}": (
            dg.MetadataValue.float(gate["champion_value"])
            if gate["champion_value"] is not None
            else None
        ),
        "search_trials": (
            dg.MetadataValue.int(len(last["search_trials"])) if last["search_trials"] else None
        ),
    }
    holdout = {holdout_key(name): dg.MetadataValue.float(metrics[name]) for name in spec.metrics}
    return {
        MODEL_VERSION: dg.MetadataValue.text(last["version"]),
        "training_window": dg.MetadataValue.text(" .. ".join(last["training_window"])),
        "holdout_window": dg.MetadataValue.text(" .. ".join(last["holdout_window"])),
        "data_fingerprint": dg.MetadataValue.text(last["data_fingerprint"]),
        **holdout,
        "gate_metric": dg.MetadataValue.text(gate_metric),
        "fit_rows": dg.MetadataValue.int(last["fit_rows"]),
        "gate_fit_rows": dg.MetadataValue.int(last["gate_fit_rows"]),
        "holdout_rows": dg.MetadataValue.int(metrics["rows"]),
        "gate_passed": dg.MetadataValue.bool(trained[-1].decision.passed),
        "promoted": dg.MetadataValue.bool(trained[-1].promoted),
        "training_seconds": dg.MetadataValue.float(last["training_seconds"]),
        "artifact_bytes": dg.MetadataValue.int(last["artifact_bytes"]),
        "artifact_sha256": dg.MetadataValue.text(last["artifact_sha256"]),
        "code_version": dg.MetadataValue.text(last["code_version"]),
        "features": dg.MetadataValue.json(last["features"]),
        "params": dg.MetadataValue.json(last["params"]),
        "models_trained": dg.MetadataValue.md(markdown_table(summary)),
    } | {name: value for name, value in optional.items() if value is not None}


def gate_result(spec: ModelSpec, trained: list[Trained]) -> dg.AssetCheckResult:
    """One check result per run: Dagster records check results per run, not per partition, so a
    range run passes only when every cutoff in it passed."""
    failed = [t for t in trained if not t.decision.passed]
    last = (failed or trained)[-1]
    gate = last.record["gate"]
    return dg.AssetCheckResult(
        check_name=QUALITY_GATE,
        passed=not failed,
        description=last.decision.reason,
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
        },
    )
