"""The monitoring factory for one model: `<model>/prediction_quality`, what the served scores were
worth.

Predictions of day D are judged against the labels of D once they exist, by the model's metrics.
The lake table holds one row per day and model version; each partition's materialization carries
that day's overall metrics as numbers, so the UI plots them by partition and sensors read them
without touching the lake.
"""

from datetime import date

import dagster as dg
import duckdb
import pandas as pd

from assets.catalog import Catalog
from assets.keys import predictions_key, quality_key
from assets.metadata import markdown_table
from assets.metrics import ROWS, evaluate
from assets.model_spec import LABEL, ModelSpec
from assets.partitions import daily_backfill_policy, run_days
from assets.per_day import consecutive, lacking_inputs, report_days
from assets.plots import Point, plot_link, write_history
from assets.scoring import MODEL_VERSION, SCORE, SERVED_BY
from assets.tags import asset_tags
from resources.days import chunked
from resources.lake import Lake

# Metadata of each partition: the model's metrics by name, `scoring.SERVED_BY` and these; the
# quality sensor reads the gate metric and SERVED_BY.
UNLABELLED_ROWS = "unlabelled_rows"
MONITORING = "monitoring"


def quality_columns(spec: ModelSpec) -> list[str]:
    return [spec.day_column, MODEL_VERSION, *spec.metrics, ROWS, UNLABELLED_ROWS]


def build_monitoring_assets(catalog: Catalog, spec: ModelSpec) -> list[dg.AssetsDefinition]:
    """The prediction quality of one model."""
    dataset = catalog.dataset_of(spec)
    key = quality_key(spec)

    @dg.asset(
        key=key,
        description=(
            f"How well {spec.name}'s predictions of each day matched that day's labels: "
            f"{', '.join(spec.metrics)} and rows, per model version. Rows without a label are "
            "excluded and counted apart."
        ),
        group_name=spec.name,
        tags=asset_tags(MONITORING, dataset=dataset.name, model=spec.name),
        partitions_def=dataset.partitions,
        backfill_policy=daily_backfill_policy(),
        kinds={"duckdb", "parquet"},
        deps=[
            predictions_key(spec),
            # The labels of D exist only after D: quality of D waits for exactly that partition.
            dg.AssetDep(spec.label.table, partition_mapping=dg.IdentityPartitionMapping()),
        ],
    )
    def prediction_quality(context: dg.AssetExecutionContext, lake: Lake) -> dg.MaterializeResult:
        days = run_days(context)
        table = predictions_key(spec).to_user_string()
        lacking = lacking_inputs(lake, {d: {table: [d], spec.label.table: [d]} for d in days})
        metadata = {}
        for ready in consecutive([d for d in days if d not in lacking]):
            for chunk in chunked(ready):
                scored = scored_labels(lake, spec, chunk)
                by_day = dict(iter(scored.groupby(spec.day_column, sort=True)))
                empty = scored.iloc[0:0]
                rows = []
                for day in chunk:
                    day_rows = quality_rows(spec, day, by_day.get(day, empty))
                    rows += day_rows
                    metadata[day] = day_metadata(spec, by_day.get(day, empty), day_rows)
                lake.write_partitions(
                    key.to_user_string(), quality_frame(spec, rows), spec.day_column, chunk
                )
        table = key.to_user_string()
        write_history(
            lake, table, f"{spec.name}: prediction quality by day", quality_history(lake, spec)
        )
        lake.refresh_warehouse()
        link = plot_link(table)
        return report_days(
            context, {day: values | link for day, values in metadata.items()}, lacking
        )

    return [prediction_quality]


def quality_history(lake: Lake, spec: ModelSpec) -> dict[str, list[Point]]:
    """Each metric of every day in the lake, per version that served it."""
    table = f"{spec.name}/prediction_quality"
    days = lake.partition_days(table)
    if not days:
        return {}
    rows = lake.read(table, days)
    return {
        metric: [
            Point(day.isoformat(), float(value), f"served by {version}")
            for day, version, value in zip(
                rows[spec.day_column].dt.date, rows[MODEL_VERSION], rows[metric], strict=True
            )
        ]
        for metric in spec.metrics
    }


def scored_labels(lake: Lake, spec: ModelSpec, days: list[date]) -> pd.DataFrame:
    """Every prediction of `days` with its label, NULL where the row has none, in one query."""
    con = duckdb.connect()
    lake.register(con, "predictions", predictions_key(spec).to_user_string(), days)
    lake.register(con, "labelled", spec.label.table, days)
    key = ", ".join(f'"{c}"' for c in spec.entity_key)
    rest = ", ".join(f'p."{c}"' for c in spec.entity_key[1:])
    frame = con.sql(
        f"""
        WITH labels AS (SELECT {key}, {spec.label_sql} AS {LABEL} FROM labelled)
        SELECT p."{spec.day_column}", p.{MODEL_VERSION}, p.{SCORE}, l.{LABEL}
        FROM predictions p LEFT JOIN labels l USING ({key})
        ORDER BY p."{spec.day_column}", p.{MODEL_VERSION}{", " + rest if rest else ""}
        """
    ).df()
    frame[spec.day_column] = frame[spec.day_column].dt.date
    return frame


def evaluated(spec: ModelSpec, scored: pd.DataFrame) -> dict[str, float | int]:
    """The metrics of the labelled rows of `scored`, and how many rows had no label."""
    labelled = scored[scored[LABEL].notna()]
    metrics = evaluate(spec.task, labelled[LABEL], labelled[SCORE])
    return {name: metrics[name] for name in (*spec.metrics, ROWS)} | {
        UNLABELLED_ROWS: len(scored) - len(labelled)
    }


def quality_rows(spec: ModelSpec, day: date, scored: pd.DataFrame) -> list[dict]:
    """One row per model version that scored `day`, ordered by version."""
    return [
        {spec.day_column: day, MODEL_VERSION: version, **evaluated(spec, rows)}
        for version, rows in scored.groupby(MODEL_VERSION, sort=True)
    ]


def quality_frame(spec: ModelSpec, rows: list[dict]) -> pd.DataFrame:
    """The lake table of quality rows, with its column types."""
    table = pd.DataFrame(rows, columns=quality_columns(spec))
    return table.astype(
        {spec.day_column: "date32[pyarrow]", MODEL_VERSION: "string"}
        | dict.fromkeys(spec.metrics, "float64")
        | {ROWS: "int64", UNLABELLED_ROWS: "int64"}
    )


def day_metadata(
    spec: ModelSpec, scored: pd.DataFrame, day_rows: list[dict]
) -> dict[str, dg.MetadataValue]:
    """One day's overall metrics as plottable numbers, and its quality rows by model version.

    A day scored by one version (the usual case) has that version's metrics as its overall ones.
    """
    overall = day_rows[0] if len(day_rows) == 1 else evaluated(spec, scored)
    by_version = pd.DataFrame(day_rows, columns=quality_columns(spec)).drop(columns=spec.day_column)
    return {name: dg.MetadataValue.float(overall[name]) for name in spec.metrics} | {
        ROWS: dg.MetadataValue.int(overall[ROWS]),
        UNLABELLED_ROWS: dg.MetadataValue.int(overall[UNLABELLED_ROWS]),
        "dagster/row_count": dg.MetadataValue.int(len(day_rows)),
        SERVED_BY: dg.MetadataValue.text(", ".join(by_version[MODEL_VERSION])),
        "by_model_version": dg.MetadataValue.md(markdown_table(by_version.round(4))),
    }
