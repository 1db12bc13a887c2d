"""Batch scoring: each day's rows scored by the champion in force on that day."""

from datetime import date

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.model_spec import ModelSpec
from resources import promotions
from resources.lake import Lake
from resources.registry import ModelRegistry

SCORE, MODEL_VERSION = "score", "model_version"
# Metadata of a day's predictions and quality: the versions that scored it, comma-separated.
SERVED_BY = "model_versions"
# Rows scored at once: about a day and a half at a hundred times the bundled flights; the
# features, matrix and scores of a batch take tens of megabytes.
SCORING_BATCH_ROWS = 2**17


def prediction_columns(spec: ModelSpec) -> list[str]:
    """The columns of a prediction row: the entity, the carried columns, the score, the version."""
    return [*spec.entity_key, *spec.carried, SCORE, MODEL_VERSION]


def champions_in_force(
    registry: ModelRegistry, spec: ModelSpec, days: list[date]
) -> tuple[dict[date, str], dict[date, list[str]]]:
    """The champion version in force on each day that has one, looked up as of that day (so
    backfills reproduce), and what the days without one lack."""
    history = registry.history(spec.name)
    chosen = {day: promotions.champion_at(history, day) for day in days}
    since = min((e["effective_from"] for e in history), default="no day yet")
    unserved = (
        f"a {spec.name} champion in force (the first is in force from {since}; a model becomes "
        f"champion when {spec.name}/model of an earlier cutoff passes its quality gate)"
    )
    versions = {day: entry["version"] for day, entry in chosen.items() if entry is not None}
    return versions, {day: [unserved] for day, entry in chosen.items() if entry is None}


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
    """The prediction rows of `days` in entity order, each scored by the version in force on its
    day (`versions`); versions are loaded into `estimators` once per run. The features are read
    and scored `SCORING_BATCH_ROWS` at a time, so memory does not grow with the rows of a day."""
    from assets import modeling

    con = duckdb.connect()
    lake.register(con, "features", spec.features_table, days)
    key = ", ".join(f'"{c}"' for c in spec.entity_key)
    reader = con.sql(f"SELECT * FROM features ORDER BY {key}").to_arrow_reader(SCORING_BATCH_ROWS)
    identity = [*spec.entity_key, *spec.carried]
    scored = pa.schema(
        [
            *(reader.schema.field(c) for c in identity),
            pa.field(SCORE, pa.float64()),
            pa.field(MODEL_VERSION, pa.string()),
        ]
    )
    batches = []
    for batch in reader:
        dates = batch.column(spec.day_column)
        batch_days = pc.unique(dates)
        in_force = pa.array([versions[d] for d in batch_days.to_pylist()], pa.string())
        version = pc.take(in_force, pc.index_in(dates, value_set=batch_days))
        scores = np.empty(batch.num_rows)
        for name in pc.unique(in_force).to_pylist():
            if name not in estimators:
                estimators[name] = registry.load(spec.name, name, spec.trusted_types)
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
