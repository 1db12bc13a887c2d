"""The asset factory for one model: `<model>/features`, `<model>/model`, `<model>/predictions`.

A second model is a second `ModelSpec` passed to `build_model_pipeline`; nothing is copied.
"""

from datetime import date, timedelta

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from assets.metadata import preview_on_newest_day, table_metadata
from assets.model_spec import ModelSpec
from assets.partitions import (
    FIRST_DAY,
    daily_partitions,
    days_between,
    preceding_days,
    preceding_window,
    row_chunks,
    run_days,
)
from assets.quality_gate import QUALITY_GATE
from assets.training import Trained, TrainingConfig, train_cutoff
from resources import promotions, schema
from resources.lake import Lake, describe_days
from resources.registry import ModelRegistry

# Lineage of a served day D to "the champion in force on D": a model of the past year.
MODEL_LOOKBACK_DAYS = 366
PREDICTION_COLUMNS = ["flight_date", *schema.FLIGHT_KEY[1:], "dest", "score", "model_version"]
# Rows scored at once: about a day and a half at a hundred times the bundled volume; the
# features, matrix and scores of a batch take tens of megabytes.
SCORING_BATCH_ROWS = 2**17


def build_model_pipeline(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    features_key = dg.AssetKey([spec.name, "features"])
    model_key = dg.AssetKey([spec.name, "model"])
    single_run = dg.BackfillPolicy.single_run()

    @dg.asset(
        key=features_key,
        description=f"Features of {spec.name}, known before departure. {spec.description}",
        group_name="features",
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        kinds={"duckdb", "parquet"},
        deps=[
            "raw_flights",
            "raw_weather",
            "raw_planes",
            dg.AssetDep("flight_outcomes", partition_mapping=preceding_window(spec.history_days)),
        ],
    )
    def features(context: dg.AssetExecutionContext, lake: Lake) -> dg.MaterializeResult:
        rows: dict[date, int] = {}
        every_day = run_days(context)
        for days in row_chunks(every_day, lake.row_count("raw_flights", every_day)):
            table = features_of_days(lake, spec, days)
            rows |= lake.write_partitions(features_key.to_user_string(), table, "flight_date", days)
        lake.refresh_warehouse()
        preview_on_newest_day(context, table, rows)
        return dg.MaterializeResult(metadata=table_metadata(rows))

    @dg.asset(
        key=model_key,
        description=(
            f"A {spec.name} classifier per training cutoff D, fitted on the {spec.window_days} days "
            f"before D. The quality gate judges it by a fit of the same parameters without the "
            f"last {spec.holdout_days} of those days, scored on them; a version that passes is "
            "promoted to champion from D on."
        ),
        group_name="training",
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        kinds={"scikit-learn"},
        # The gate reads the champion, compares and promotes: two trainings of one model at once
        # could each promote against a champion the other is replacing.
        pool=f"{spec.name}_training",
        deps=[
            dg.AssetDep(features_key, partition_mapping=preceding_window(spec.window_days)),
            dg.AssetDep("flight_outcomes", partition_mapping=preceding_window(spec.window_days)),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                QUALITY_GATE,
                asset=model_key,
                blocking=True,
                description=(
                    "Holdout AUC at least the floor, and not worse than the champion's on the same "
                    "rows by more than the tolerance. A failure stops downstream assets in the run."
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
        windows = {day: preceding_days(day, spec.window_days) for day in days}
        short = [d for d, w in windows.items() if len(w) < spec.min_window_days]
        if short:
            raise dg.Failure(
                f"{model_key.to_user_string()}: cutoffs {short[0]}..{short[-1]} have fewer than "
                f"{spec.min_window_days} days of history since {FIRST_DAY}; choose a later partition"
            )
        trained = []
        # In date order, so each cutoff is gated against the champion the previous one left.
        for day, window in windows.items():
            labelled = labelled_rows(lake, spec, window, config.max_training_rows)
            result = train_cutoff(spec, config, registry, day, window, labelled)
            context.log.info(
                f"{result.record['version']}: gate {'passed' if result.decision.passed else 'FAILED'}"
                f" ({result.decision.reason}){'; promoted' if result.promoted else ''}"
            )
            trained.append(result)
        return dg.MaterializeResult(
            metadata=model_metadata(trained), check_results=[gate_result(trained)]
        )

    @dg.asset(
        key=[spec.name, "predictions"],
        description=(
            f"Scores of {spec.name} for every scheduled flight of the day, by the champion in "
            "force that day (as of that day, so backfills reproduce); each row names its version."
        ),
        group_name="inference",
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        kinds={"scikit-learn", "parquet"},
        deps=[
            features_key,
            champion_dep(spec),
        ],
    )
    def predictions(
        context: dg.AssetExecutionContext, lake: Lake, registry: ModelRegistry
    ) -> dg.MaterializeResult:
        from assets import modeling

        days = run_days(context)
        versions = champions_in_force(registry, spec, days, f"{spec.name}/predictions")
        estimators: dict[str, object] = {}
        rows: dict[date, int] = {}
        total_score = 0.0
        features = features_key.to_user_string()
        for chunk in row_chunks(days, lake.row_count(features, days)):
            threads = modeling.model_threads(runs_in_progress(context.instance))
            table = scored_days(lake, registry, spec, chunk, versions, estimators, threads)
            rows |= lake.write_partitions(f"{spec.name}/predictions", table, "flight_date", chunk)
            total_score += pc.sum(table["score"]).as_py() or 0.0
        lake.refresh_warehouse()
        preview_on_newest_day(context, table, rows)
        return dg.MaterializeResult(
            metadata=table_metadata(rows)
            | {
                "model_versions": dg.MetadataValue.text(", ".join(sorted(estimators))),
                "mean_score": dg.MetadataValue.float(
                    total_score / sum(rows.values()) if sum(rows.values()) else float("nan")
                ),
            }
        )

    return [features, model, predictions]


def champion_dep(spec: ModelSpec) -> dg.AssetDep:
    """Lineage of an asset served by the champion in force on its day: any model partition of
    the preceding year may be that champion, and most of them never exist."""
    return dg.AssetDep(
        dg.AssetKey([spec.name, "model"]),
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-MODEL_LOOKBACK_DAYS,
            end_offset=0,
            allow_nonexistent_upstream_partitions=True,
        ),
    )


def champions_in_force(
    registry: ModelRegistry, spec: ModelSpec, days: list[date], asset: str
) -> dict[date, str]:
    """The champion version in force on each day, looked up as of that day (so backfills
    reproduce); fails naming the days that have none."""
    history = registry.history(spec.name)
    chosen = {day: promotions.champion_at(history, day) for day in days}
    unserved = [day for day, entry in chosen.items() if entry is None]
    if unserved:
        since = min((e["effective_from"] for e in history), default="no day yet")
        raise dg.Failure(
            f"{asset}: no {spec.name} champion is in force on {describe_days(unserved)} (the "
            f"first is in force from {since}). Materialize {spec.name}/model for an earlier "
            "cutoff (a model becomes champion when it passes the quality gate) or choose later days"
        )
    return {day: entry["version"] for day, entry in chosen.items()}


def features_of_days(lake: Lake, spec: ModelSpec, days: list[date]) -> pa.Table:
    """The spec's features of `days`, in one query over their flights and weather and the
    outcomes of the `history_days` before them."""
    con = duckdb.connect()
    lake.register(con, "flights", "raw_flights", days)
    lake.register(con, "weather", "raw_weather", days)
    lake.register(con, "planes", "raw_planes")
    history = days_between(
        max(FIRST_DAY, days[0] - timedelta(days=spec.history_days)),
        days[-1] - timedelta(days=1),
    )
    if history:
        lake.register(con, "history", "flight_outcomes", history)
    else:  # the first day has no history: rolling statistics come out NULL
        con.register("history", schema.empty_frame(schema.OUTCOMES, "flight_outcomes"))
    return con.sql(spec.features_sql.format(history_days=spec.history_days)).to_arrow_table()


def runs_in_progress(instance: dg.DagsterInstance) -> int:
    """Runs of this instance in progress now, counting the caller's: the runs that share the
    machine's cores, so scoring takes all of them when its run is alone."""
    started = dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    return max(1, instance.get_runs_count(started))


def scored_days(
    lake: Lake,
    registry: ModelRegistry,
    spec: ModelSpec,
    days: list[date],
    versions: dict[date, str],
    estimators: dict[str, object],
    threads: int,
) -> pa.Table:
    """The prediction rows of `days` in flight order, each scored by the version in force on its
    day (`versions`); versions are loaded into `estimators` once per run. The features are read
    and scored `SCORING_BATCH_ROWS` at a time, so memory does not grow with the rows of a day."""
    from assets import modeling

    con = duckdb.connect()
    lake.register(con, "features", f"{spec.name}/features", days)
    key = ", ".join(schema.FLIGHT_KEY)
    reader = con.sql(f"SELECT * FROM features ORDER BY {key}").to_arrow_reader(SCORING_BATCH_ROWS)
    identity = [c for c in PREDICTION_COLUMNS if c not in ("score", "model_version")]
    scored = pa.schema(
        [
            *(reader.schema.field(c) for c in identity),
            pa.field("score", pa.float64()),
            pa.field("model_version", pa.string()),
        ]
    )
    batches = []
    for batch in reader:
        dates = batch.column("flight_date")
        batch_days = pc.unique(dates)
        in_force = pa.array([versions[d] for d in batch_days.to_pylist()], pa.string())
        version = pc.take(in_force, pc.index_in(dates, value_set=batch_days))
        scores = np.empty(batch.num_rows)
        for name in pc.unique(in_force).to_pylist():
            if name not in estimators:
                estimators[name] = registry.load(spec.name, name)
            mine = pc.equal(version, name)
            rows = batch if pc.all(mine).as_py() else batch.filter(mine)
            scores[mine.to_numpy(zero_copy_only=False)] = modeling.score(
                estimators[name], spec, pa.Table.from_batches([rows]), threads
            )
        batches.append(
            pa.RecordBatch.from_arrays(
                [*(batch.column(c) for c in identity), pa.array(scores), version], schema=scored
            )
        )
    return pa.Table.from_batches(batches, schema=scored)


def labelled_rows(
    lake: Lake, spec: ModelSpec, days: list[date], max_rows: int | None = None
) -> pd.DataFrame:
    """Features of `days` joined with their labels, in flight order; flights without a label
    are left out. Above `max_rows`, every k-th of them in that order is kept (the smallest k that
    fits), so the same data always gives the same rows; `frame.attrs` says how many there were
    and which k was used."""
    con = duckdb.connect()
    lake.register(con, "features", f"{spec.name}/features", days)
    lake.register(con, "outcomes", "flight_outcomes", days)
    key = ", ".join(schema.FLIGHT_KEY)
    labelled = f"""
        SELECT f.*, CAST(({spec.label_sql}) AS INTEGER) AS label
        FROM features f JOIN outcomes o USING ({key})
        WHERE ({spec.label_sql}) IS NOT NULL
    """
    [(total,)] = con.sql(f"SELECT count(*) FROM ({labelled})").fetchall()
    every = -(-total // max_rows) if max_rows and total > max_rows else 1
    sample = "" if every == 1 else f"QUALIFY (row_number() OVER (ORDER BY {key}) - 1) % {every} = 0"
    frame = con.sql(f"{labelled} {sample} ORDER BY {key}").df()
    frame["flight_date"] = frame["flight_date"].dt.date
    frame.attrs.update(window_rows=total, sampled_every=every)
    return frame


def model_metadata(trained: list[Trained]) -> dict[str, dg.MetadataValue]:
    """The experiment record of the newest cutoff of the run (plotted by the UI over
    materializations), and a table of every cutoff trained."""
    last = trained[-1].record
    metrics, gate = last["metrics"], last["gate"]
    summary = pd.DataFrame(
        [
            {
                "version": t.record["version"],
                "window": " .. ".join(t.record["training_window"]),
                "auc": round(t.record["metrics"]["auc"], 4),
                "champion": t.record["gate"]["champion_version"],
                "champion_auc": t.record["gate"]["champion_auc"],
                "gate": "passed" if t.decision.passed else "failed",
                "promoted": t.promoted,
            }
            for t in trained
        ]
    )
    optional = {
        "champion_holdout_auc": (
            dg.MetadataValue.float(gate["champion_auc"])
            if gate["champion_auc"] is not None
            else None
        ),
        "search_trials": (
            dg.MetadataValue.int(len(last["search_trials"])) if last["search_trials"] else None
        ),
    }
    return {
        "version": dg.MetadataValue.text(last["version"]),
        "training_window": dg.MetadataValue.text(" .. ".join(last["training_window"])),
        "holdout_window": dg.MetadataValue.text(" .. ".join(last["holdout_window"])),
        "data_fingerprint": dg.MetadataValue.text(last["data_fingerprint"]),
        "holdout_auc": dg.MetadataValue.float(metrics["auc"]),
        "holdout_log_loss": dg.MetadataValue.float(metrics["log_loss"]),
        "holdout_brier": dg.MetadataValue.float(metrics["brier"]),
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
        "models_trained": dg.MetadataValue.md(summary.to_markdown(index=False)),
    } | {name: value for name, value in optional.items() if value is not None}


def gate_result(trained: list[Trained]) -> dg.AssetCheckResult:
    """One check result per run: Dagster records check results per run, not per partition, so a
    range run passes only when every cutoff in it passed."""
    failed = [t for t in trained if not t.decision.passed]
    last = (failed or trained)[-1]
    return dg.AssetCheckResult(
        check_name=QUALITY_GATE,
        passed=not failed,
        description=last.decision.reason,
        metadata={
            "candidate_version": last.record["version"],
            "candidate_auc": last.record["metrics"]["auc"],
            "champion_version": str(last.record["gate"]["champion_version"]),
            "champion_auc": last.record["gate"]["champion_auc"] or float("nan"),
            "auc_floor": last.record["gate"]["auc_floor"],
            "auc_tolerance": last.record["gate"]["auc_tolerance"],
            "cutoffs_failed": ", ".join(t.record["partition"] for t in failed) or "none",
            "promoted": ", ".join(t.record["version"] for t in trained if t.promoted) or "none",
        },
    )
