"""The monitoring factory for one model: `<model>/prediction_quality`, what the served scores were
worth.

Predictions of day D are judged against the labels of D once they exist, by the model's metrics.
The lake table holds one row per day, model version and arm: every version that scored the day,
the challenger of an experiment included (on the same rows under shadow, on its own arm under
A/B). Each partition's materialization carries that day's overall metrics of the served rows as
numbers, so the UI plots them by partition and sensors read them without touching the lake; on
the days of an experiment it also carries the gate metric of the champion and of the challenger,
which the rollout sensor decides on.
"""

from datetime import date

import dagster as dg
import numpy as np
import pandas as pd

from assets.catalog import Catalog
from assets.keys import predictions_key, quality_key
from assets.metadata import markdown_rows
from assets.metrics import ROWS, evaluate
from assets.model_spec import LABEL, ModelSpec
from assets.partitions import daily_backfill_policy, run_days
from assets.per_day import consecutive, lacking_inputs, report_days
from assets.plots import Point, plot_link, write_history
from assets.rollout import DayPair, Evidence, judge
from assets.scoring import (
    ARM,
    CHALLENGER_ARM,
    CHAMPION_ARM,
    MODEL_VERSION,
    SCORE,
    SERVED_BY,
    SHADOW_ARM,
    Serving,
    serving_in_force,
    shadow_table,
)
from assets.tags import asset_tags
from resources import experiments
from resources.days import row_chunks
from resources.experiments import Experiment
from resources.lake import Lake
from resources.read_ahead import read_ahead
from resources.registry import ModelRegistry
from resources.scratch import scratch

# Metadata of each partition: the model's metrics by name, `scoring.SERVED_BY` and these; the
# quality sensor reads the gate metric and SERVED_BY.
UNLABELLED_ROWS = "unlabelled_rows"
MONITORING = "monitoring"
# Metadata of a day scored during an experiment, which the rollout sensor reads: the experiment,
# its policy and first day, the champion it challenges, the champion in force that day, the
# challenger, and `<role>_<gate metric>` of each (`role_value`).
EXPERIMENT, EXPERIMENT_POLICY, EXPERIMENT_STARTED = (
    "experiment",
    "experiment_policy",
    "experiment_started",
)
EXPERIMENT_CHAMPION, CHAMPION_IN_FORCE, CHALLENGER_VERSION = (
    "experiment_champion",
    "champion_in_force",
    "challenger_version",
)
CHAMPION_ROLE, CHALLENGER_ROLE = "champion", "challenger"


def role_value(role: str, metric: str) -> str:
    """The metadata name of the champion's or the challenger's value of `metric` on a day."""
    return f"{role}_{metric}"


def quality_columns(spec: ModelSpec) -> list[str]:
    return [spec.day_column, MODEL_VERSION, ARM, *spec.metrics, ROWS, UNLABELLED_ROWS]


def build_monitoring_assets(catalog: Catalog, spec: ModelSpec) -> list[dg.AssetsDefinition]:
    """The prediction quality of one model."""
    dataset = catalog.dataset_of(spec)
    key = quality_key(spec)

    @dg.asset(
        key=key,
        description=(
            f"How well {spec.name}'s predictions of each day matched that day's labels: "
            f"{', '.join(spec.metrics)} and rows, per model version and arm, a challenger's "
            "included. Rows without a label are excluded and counted apart."
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
    def prediction_quality(
        context: dg.AssetExecutionContext, lake: Lake, registry: ModelRegistry
    ) -> dg.MaterializeResult:
        days = run_days(context)
        table = predictions_key(spec).to_user_string()
        lacking = lacking_inputs(lake, {d: {table: [d], spec.label.table: [d]} for d in days})
        serving, _ = serving_in_force(registry, spec, days)
        shadowed = {
            day: s.experiment.challenger for day, s in serving.items() if s.shadow() is not None
        }
        present = set(shadowed) - set(lake.missing_partitions(shadow_table(spec), sorted(shadowed)))
        metadata = {}

        def labelled(chunk: list[date]) -> pd.DataFrame:
            shadows = {d: v for d, v in shadowed.items() if d in chunk and d in present}
            return scored_labels(lake, spec, chunk, shadows)

        for ready in consecutive([d for d in days if d not in lacking]):
            chunks = row_chunks(ready, lake.row_count(table, ready))
            for chunk, scored in read_ahead(labelled, chunks):
                by_day = quality_rows(spec, scored)
                rows = []
                for day in chunk:
                    day_rows = by_day.get(day, [])
                    rows += day_rows
                    metadata[day] = day_metadata(spec, scored, day, day_rows)
                    if day in serving and serving[day].experiment is not None:
                        metadata[day] |= experiment_metadata(spec, serving[day], day_rows)
                lake.write_partitions(
                    key.to_user_string(), quality_frame(spec, rows), spec.day_column, chunk
                )
        table = key.to_user_string()
        charts = quality_history(lake, spec)
        running = experiments.experiments(registry.history(spec.name))
        if running:
            charts |= experiment_history(lake, spec, running[-1])
        write_history(lake, table, f"{spec.name}: prediction quality by day", charts)
        lake.refresh_warehouse([table])
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
    if ARM in rows.columns:  # tables written before arms were served rows only
        rows = rows[rows[ARM] != SHADOW_ARM]
    return {
        metric: [
            Point(day.isoformat(), float(value), f"served by {version}")
            for day, version, value in zip(
                rows[spec.day_column].dt.date, rows[MODEL_VERSION], rows[metric], strict=True
            )
        ]
        for metric in spec.metrics
    }


def scored_labels(
    lake: Lake, spec: ModelSpec, days: list[date], shadows: dict[date, str] | None = None
) -> pd.DataFrame:
    """Every prediction of `days` with its arm and its label, NULL where the row has none, in one
    query; with the shadow scores of `shadows`' days by the challenger each names."""
    con = scratch()
    lake.register(con, "predictions", predictions_key(spec).to_user_string(), days)
    lake.register(con, "labelled", spec.label.table, days)
    key = ", ".join(f'"{c}"' for c in spec.entity_key)
    rest = ", ".join(f'p."{c}"' for c in spec.entity_key[1:])
    # Predictions written before rows named their arm were all the champion's.
    arm_of = {f.name for f in con.sql("SELECT * FROM predictions LIMIT 0").arrow().schema}
    served_arm = ARM if ARM in arm_of else f"'{CHAMPION_ARM}'"
    scored = f"SELECT {key}, {MODEL_VERSION}, {served_arm} AS {ARM}, {SCORE} FROM predictions"
    if shadows:
        lake.register(con, "shadow", shadow_table(spec), sorted(shadows))
        con.register(
            "challengers",
            pd.DataFrame({"day": list(shadows), "version": list(shadows.values())}).astype(
                {"day": "date32[pyarrow]"}
            ),
        )
        scored += f"""
            UNION ALL
            SELECT {", ".join(f's."{c}"' for c in spec.entity_key)}, s.{MODEL_VERSION},
                '{SHADOW_ARM}', s.{SCORE}
            FROM shadow s JOIN challengers c
                ON s."{spec.day_column}" = c.day AND s.{MODEL_VERSION} = c.version
        """
    frame = con.sql(
        f"""
        WITH labels AS (SELECT {key}, {spec.label_sql} AS {LABEL} FROM labelled),
        scored AS ({scored})
        SELECT p."{spec.day_column}", p.{MODEL_VERSION}, p.{ARM}, p.{SCORE}, l.{LABEL}
        FROM scored p LEFT JOIN labels l USING ({key})
        ORDER BY p."{spec.day_column}", p.{MODEL_VERSION}, p.{ARM}{", " + rest if rest else ""}
        """
    ).df()
    frame[spec.day_column] = frame[spec.day_column].dt.date
    return frame


def evaluated(spec: ModelSpec, scored: pd.DataFrame) -> dict[str, float | int]:
    """The metrics of the labelled rows of `scored`, and how many rows had no label."""
    return evaluated_arrays(spec, scored[LABEL].to_numpy(), scored[SCORE].to_numpy())


def evaluated_arrays(
    spec: ModelSpec, labels: np.ndarray, scores: np.ndarray
) -> dict[str, float | int]:
    """`evaluated` of the rows whose labels (None or NaN when missing) and scores are these."""
    present = pd.notna(labels)
    metrics = evaluate(spec.task, labels[present], scores[present])
    return {name: metrics[name] for name in (*spec.metrics, ROWS)} | {
        UNLABELLED_ROWS: len(labels) - int(present.sum())
    }


def quality_rows(spec: ModelSpec, scored: pd.DataFrame) -> dict[date, list[dict]]:
    """Each day's rows of the quality table, one per model version and arm that scored it,
    ordered by version and arm. The rows of all days are grouped at once: a group's metrics
    are a few array operations, and a grouping per day cost more than they do."""
    labels, scores = scored[LABEL].to_numpy(), scored[SCORE].to_numpy()
    groups = scored.groupby([spec.day_column, MODEL_VERSION, ARM], sort=False).indices
    by_day: dict[date, list[dict]] = {}
    for day, version, arm in sorted(groups):
        index = groups[day, version, arm]
        row = {spec.day_column: day, MODEL_VERSION: version, ARM: arm}
        by_day.setdefault(day, []).append(
            row | evaluated_arrays(spec, labels[index], scores[index])
        )
    return by_day


def quality_frame(spec: ModelSpec, rows: list[dict]) -> pd.DataFrame:
    """The lake table of quality rows, with its column types."""
    table = pd.DataFrame(rows, columns=quality_columns(spec))
    return table.astype(
        {spec.day_column: "date32[pyarrow]", MODEL_VERSION: "string", ARM: "string"}
        | dict.fromkeys(spec.metrics, "float64")
        | {ROWS: "int64", UNLABELLED_ROWS: "int64"}
    )


def day_metadata(
    spec: ModelSpec, scored: pd.DataFrame, day: date, day_rows: list[dict]
) -> dict[str, dg.MetadataValue]:
    """One day's overall metrics of the served rows as plottable numbers, and its quality rows by
    model version and arm.

    A day served by one version (the usual case) has that version's metrics as its overall ones;
    shadow scores are never part of them.
    """
    served_rows = [r for r in day_rows if r[ARM] != SHADOW_ARM]
    if len(served_rows) == 1:
        overall = served_rows[0]
    else:
        served = scored[(scored[spec.day_column] == day) & (scored[ARM] != SHADOW_ARM)]
        overall = evaluated(spec, served)
    columns = [c for c in quality_columns(spec) if c != spec.day_column]
    by_version = [[rounded(row[c]) for c in columns] for row in day_rows]
    served_by = [r[MODEL_VERSION] for r in served_rows]
    return {name: dg.MetadataValue.float(overall[name]) for name in spec.metrics} | {
        ROWS: dg.MetadataValue.int(overall[ROWS]),
        UNLABELLED_ROWS: dg.MetadataValue.int(overall[UNLABELLED_ROWS]),
        "dagster/row_count": dg.MetadataValue.int(len(day_rows)),
        SERVED_BY: dg.MetadataValue.text(", ".join(served_by)),
        "by_model_version": dg.MetadataValue.md(markdown_rows(columns, by_version)),
    }


def rounded(value: object) -> object:
    """A metric as the quality table's Markdown shows it: four decimals."""
    return np.round(value, 4) if isinstance(value, float) else value


def experiment_metadata(
    spec: ModelSpec, serving: Serving, day_rows: list[dict]
) -> dict[str, dg.MetadataValue]:
    """What the rollout sensor decides on, for a day of an experiment: the gate metric of the
    champion in force (its served rows) and of the challenger (its arm, or its shadow scores of
    every row), NaN for a version without labelled rows that day."""
    live = serving.experiment
    metric = spec.gate_metric

    def value(version: str, arms: set[str]) -> float:
        found = [r[metric] for r in day_rows if r[MODEL_VERSION] == version and r[ARM] in arms]
        return float(found[0]) if found else float("nan")

    return {
        EXPERIMENT: dg.MetadataValue.text(live.id),
        EXPERIMENT_POLICY: dg.MetadataValue.text(live.policy),
        EXPERIMENT_STARTED: dg.MetadataValue.text(live.started.isoformat()),
        EXPERIMENT_CHAMPION: dg.MetadataValue.text(live.champion),
        CHAMPION_IN_FORCE: dg.MetadataValue.text(serving.champion),
        CHALLENGER_VERSION: dg.MetadataValue.text(live.challenger),
        role_value(CHAMPION_ROLE, metric): dg.MetadataValue.float(
            value(serving.champion, {CHAMPION_ARM})
        ),
        role_value(CHALLENGER_ROLE, metric): dg.MetadataValue.float(
            value(live.challenger, {SHADOW_ARM, CHALLENGER_ARM})
        ),
    }


def experiment_days(lake: Lake, spec: ModelSpec, live: Experiment) -> list[DayPair]:
    """The champion's and the challenger's gate metric on each day of `live` in the lake."""
    table = f"{spec.name}/prediction_quality"
    days = [d for d in lake.partition_days(table) if live.live_on(d)]
    if not days:
        return []
    rows = lake.read(table, days)
    if ARM not in rows.columns:
        return []
    rows["day"] = rows[spec.day_column].dt.date
    metric = spec.gate_metric
    champion = rows[(rows[MODEL_VERSION] == live.champion) & (rows[ARM] == CHAMPION_ARM)]
    challenger = rows[(rows[MODEL_VERSION] == live.challenger) & (rows[ARM] != CHAMPION_ARM)]
    ours = dict(zip(champion["day"], champion[metric], strict=True))
    theirs = dict(zip(challenger["day"], challenger[metric], strict=True))
    return [
        DayPair(d.isoformat(), float(ours[d]), float(theirs[d]))
        for d in days
        if d in ours and d in theirs
    ]


def experiment_history(lake: Lake, spec: ModelSpec, live: Experiment) -> dict[str, list[Point]]:
    """The page's chart of the latest experiment: the gate metric of both versions by day, and
    the evidence so far in the chart's title."""
    pairs = experiment_days(lake, spec, live)
    if not pairs:
        return {}
    evidence: Evidence = judge(spec.gate_metric, spec.higher_is_better, pairs, spec.rollout)
    title = (
        f"experiment {live.id} ({live.policy}{f' {live.share:.0%}' if live.share else ''}, "
        f"{live.outcome}): {evidence.summary()}; sensor rule: {evidence.decision}"
    )
    return {
        title: [
            Point(p.day, value, f"{role} {version}", series=role)
            for p in pairs
            for role, version, value in (
                (CHAMPION_ROLE, live.champion, p.champion),
                (CHALLENGER_ROLE, live.challenger, p.challenger),
            )
        ]
    }
