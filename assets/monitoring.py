"""The monitoring factory for one model: `<model>/prediction_quality`, what the served scores were worth.

Predictions of day D are judged against the outcomes of D once they exist. The lake table holds one
row per day and model version; each partition's materialization carries that day's overall metrics
as numbers, so the UI plots them over time and sensors read them without touching the lake.
"""

from datetime import date

import dagster as dg
import duckdb
import pandas as pd

from assets.model_spec import ModelSpec
from assets.partitions import chunked, daily_partitions, run_days
from resources import schema
from resources.lake import Lake

# Names shared by the lake table, the classification metrics and the materialization metadata.
METRICS = ("auc", "log_loss", "brier", "positive_rate")
ROWS = "rows"
UNLABELLED_ROWS = "unlabelled_rows"
QUALITY_COLUMNS = ["flight_date", "model_version", *METRICS, ROWS, UNLABELLED_ROWS]


def build_monitoring_assets(spec: ModelSpec) -> list[dg.AssetsDefinition]:
    """The monitoring assets of one model; every model in `assets.MODELS` gets them unchanged."""
    predictions_key = dg.AssetKey([spec.name, "predictions"])
    quality_key = dg.AssetKey([spec.name, "prediction_quality"])

    @dg.asset(
        key=quality_key,
        description=(
            f"How well {spec.name}'s predictions of each day matched that day's outcomes: AUC, log "
            "loss, Brier score, positive rate and rows, per model version. Flights without a "
            "label (cancelled, diverted) are excluded and counted apart."
        ),
        group_name="monitoring",
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"duckdb", "parquet"},
        deps=[
            predictions_key,
            # The labels of D exist only after D: quality of D waits for exactly that partition.
            dg.AssetDep("flight_outcomes", partition_mapping=dg.IdentityPartitionMapping()),
        ],
    )
    def prediction_quality(context: dg.AssetExecutionContext, lake: Lake) -> dg.MaterializeResult:
        metadata = {}
        for days in chunked(run_days(context)):
            scored = scored_outcomes(lake, spec, days)
            by_day = dict(iter(scored.groupby("flight_date", sort=True)))
            empty = scored.iloc[0:0]
            rows = []
            for day in days:
                day_rows = quality_rows(day, by_day.get(day, empty))
                rows += day_rows
                metadata[day] = day_metadata(by_day.get(day, empty), day_rows)
            lake.write_partitions(
                quality_key.to_user_string(), quality_frame(rows), "flight_date", days
            )
        lake.refresh_warehouse()
        for day, values in metadata.items():
            context.add_asset_metadata(values, partition_key=day.isoformat())
        return dg.MaterializeResult()

    return [prediction_quality]


def scored_outcomes(lake: Lake, spec: ModelSpec, days: list[date]) -> pd.DataFrame:
    """Every prediction of `days` with its label, NULL where the flight has none, in one query."""
    con = duckdb.connect()
    lake.register(con, "predictions", f"{spec.name}/predictions", days)
    lake.register(con, "outcomes", "flight_outcomes", days)
    key = ", ".join(schema.FLIGHT_KEY)
    frame = con.sql(
        f"""
        WITH labels AS (
            SELECT {key}, CAST(({spec.label_sql}) AS INTEGER) AS label FROM outcomes
        )
        SELECT p.flight_date, p.model_version, p.score, l.label
        FROM predictions p LEFT JOIN labels l USING ({key})
        ORDER BY p.flight_date, p.model_version, {", ".join(f"p.{c}" for c in schema.FLIGHT_KEY[1:])}
        """
    ).df()
    frame["flight_date"] = frame["flight_date"].dt.date
    return frame


def evaluate(scored: pd.DataFrame) -> dict[str, float | int]:
    """The metrics of the labelled rows of `scored`, and how many rows had no label."""
    from assets import modeling

    labelled = scored[scored["label"].notna()]
    metrics = modeling.classification_metrics(labelled["label"], labelled["score"])
    return {name: metrics[name] for name in (*METRICS, ROWS)} | {
        UNLABELLED_ROWS: len(scored) - len(labelled)
    }


def quality_rows(day: date, scored: pd.DataFrame) -> list[dict]:
    """One row per model version that scored `day`, ordered by version."""
    return [
        {"flight_date": day, "model_version": version, **evaluate(rows)}
        for version, rows in scored.groupby("model_version", sort=True)
    ]


def quality_frame(rows: list[dict]) -> pd.DataFrame:
    """The lake table of quality rows, with its column types."""
    table = pd.DataFrame(rows, columns=QUALITY_COLUMNS)
    return table.astype(
        {"flight_date": "date32[pyarrow]", "model_version": "string"}
        | dict.fromkeys(METRICS, "float64")
        | {ROWS: "int64", UNLABELLED_ROWS: "int64"}
    )


def day_metadata(scored: pd.DataFrame, day_rows: list[dict]) -> dict[str, dg.MetadataValue]:
    """One day's overall metrics as plottable numbers, and its quality rows by model version.

    A day scored by one version (the usual case) has that version's metrics as its overall ones.
    """
    overall = day_rows[0] if len(day_rows) == 1 else evaluate(scored)
    by_version = pd.DataFrame(day_rows, columns=QUALITY_COLUMNS).drop(columns="flight_date")
    return {name: dg.MetadataValue.float(overall[name]) for name in METRICS} | {
        ROWS: dg.MetadataValue.int(overall[ROWS]),
        UNLABELLED_ROWS: dg.MetadataValue.int(overall[UNLABELLED_ROWS]),
        "dagster/row_count": dg.MetadataValue.int(len(day_rows)),
        "model_versions": dg.MetadataValue.text(", ".join(by_version["model_version"])),
        "by_model_version": dg.MetadataValue.md(by_version.round(4).to_markdown(index=False)),
    }
