"""Batch scoring: each day's rows scored by the champion in force on that day, or, on the days of
an experiment, beside or shared with its challenger.

Under `shadow` the challenger scores every row too, into a table of its own
(`<model>/shadow_predictions`) that is never served. Under `ab` each row is served by one arm:
the challenger when the hash of the experiment's id and the row's entity key falls below the
challenger's share, the champion otherwise. The hash is MD5 of the id and the key's values joined
by `|` (a day as YYYY-MM-DD), its first 8 hex digits read as a fraction of 2^32: it depends on
nothing but the row and the experiment, so a rerun or a backfill assigns every row to the same
arm, and anyone can recompute an assignment.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.model_spec import ModelSpec
from resources import experiments, promotions
from resources.experiments import Experiment
from resources.lake import Lake
from resources.registry import ModelRegistry
from resources.scratch import scratch

SCORE, MODEL_VERSION, ARM = "score", "model_version", "arm"
# The arm of a scored row: served by the champion or by an A/B challenger, or a shadow score.
CHAMPION_ARM, CHALLENGER_ARM, SHADOW_ARM = "champion", "challenger", "shadow"
# Metadata of a day's predictions and quality: the versions that scored it, comma-separated.
SERVED_BY = "model_versions"
# Rows scored at once: about a day and a half at a hundred times the bundled flights; the
# features, matrix and scores of a batch take tens of megabytes.
SCORING_BATCH_ROWS = 2**17


def prediction_columns(spec: ModelSpec) -> list[str]:
    """The columns of a prediction row: the entity, the carried columns, the score, the version
    that scored it and its arm."""
    return [*spec.entity_key, *spec.carried, SCORE, MODEL_VERSION, ARM]


def shadow_table(spec: ModelSpec) -> str:
    """The lake table of the scores shadow challengers give the served rows, never served."""
    return f"{spec.name}/shadow_predictions"


@dataclass(frozen=True)
class Assignment:
    """Who scores the rows of one day: `version` (as `arm`), except under an A/B experiment,
    where the rows whose hash falls below `share` go to `challenger`."""

    version: str
    arm: str = CHAMPION_ARM
    experiment: str | None = None
    challenger: str | None = None
    share: float = 0.0


@dataclass(frozen=True)
class Serving:
    """The champion in force on a day and the experiment live on it, both as of that day."""

    champion: str
    experiment: Experiment | None

    def served(self) -> Assignment:
        """How the day's served rows are scored."""
        live = self.experiment
        if live is None or live.policy != "ab":
            return Assignment(self.champion)
        return Assignment(self.champion, CHAMPION_ARM, live.id, live.challenger, live.share or 0.0)

    def shadow(self) -> Assignment | None:
        """How the shadow challenger scores the day's rows, when one does."""
        live = self.experiment
        if live is None or live.policy != "shadow":
            return None
        return Assignment(live.challenger, SHADOW_ARM)


def serving_in_force(
    registry: ModelRegistry, spec: ModelSpec, days: list[date]
) -> tuple[dict[date, Serving], dict[date, list[str]]]:
    """The champion and the experiment of each day that has a champion, as of that day, and what
    the days without one lack."""
    history = registry.history(spec.name)
    versions, unserved = _champions(spec, history, days)
    serving = {day: Serving(v, experiments.live_at(history, day)) for day, v in versions.items()}
    return serving, unserved


def champions_in_force(
    registry: ModelRegistry, spec: ModelSpec, days: list[date]
) -> tuple[dict[date, str], dict[date, list[str]]]:
    """The champion version in force on each day that has one, looked up as of that day (so
    backfills reproduce), and what the days without one lack."""
    return _champions(spec, registry.history(spec.name), days)


def _champions(
    spec: ModelSpec, history: list[dict], days: list[date]
) -> tuple[dict[date, str], dict[date, list[str]]]:
    chosen = {day: promotions.champion_at(history, day) for day in days}
    timeline = promotions.timeline_order(history)
    since = min((e["effective_from"] for e in timeline), default="no day yet")
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
    assignments: Mapping[date, Assignment],
    estimators: dict[str, object],
    threads: int,
) -> pa.Table:
    """The prediction rows of `days` in entity order, each scored as its day's assignment says;
    versions are loaded into `estimators` once per run. The features are read and scored
    `SCORING_BATCH_ROWS` at a time, so memory does not grow with the rows of a day."""
    from assets import modeling

    con = scratch()
    lake.register(con, "features", spec.features_table, days)
    con.register("arms", arms_frame(assignments))
    reader = con.sql(
        f"""
        SELECT f.*, CASE WHEN a.experiment IS NULL THEN false
            ELSE {bucket_sql(spec, "a.experiment", "f")} < a.share END AS _to_challenger
        FROM features f LEFT JOIN arms a ON f."{spec.day_column}" = a.day
        ORDER BY {", ".join(f'f."{c}"' for c in spec.entity_key)}
        """
    ).to_arrow_reader(SCORING_BATCH_ROWS)
    identity = [*spec.entity_key, *spec.carried]
    scored = pa.schema(
        [
            *(reader.schema.field(c) for c in identity),
            pa.field(SCORE, pa.float64()),
            pa.field(MODEL_VERSION, pa.string()),
            pa.field(ARM, pa.string()),
        ]
    )
    batches = []
    for batch in reader:
        version, arm = assigned(spec, batch, assignments)
        scores = np.empty(batch.num_rows)
        for name in pc.unique(version).to_pylist():
            if name not in estimators:
                estimators[name] = registry.load(spec.name, name, spec.trusted_types)
            mine = pc.equal(version, name)
            rows = batch if pc.all(mine).as_py() else batch.filter(mine)
            scores[mine.to_numpy(zero_copy_only=False)] = modeling.score(
                estimators[name], spec, pa.Table.from_batches([rows]), threads
            )
        batches.append(
            pa.RecordBatch.from_arrays(
                [*(batch.column(c) for c in identity), pa.array(scores), version, arm],
                schema=scored,
            )
        )
    return pa.Table.from_batches(batches, schema=scored)


def assigned(
    spec: ModelSpec, batch: pa.RecordBatch, assignments: Mapping[date, Assignment]
) -> tuple[pa.Array, pa.Array]:
    """The version and the arm of each row of `batch`, from its day's assignment and, under A/B,
    its `_to_challenger` flag."""
    dates = batch.column(spec.day_column)
    batch_days = pc.unique(dates)
    plans = [assignments[d] for d in batch_days.to_pylist()]
    position = pc.index_in(dates, value_set=batch_days)
    version = pc.take(pa.array([p.version for p in plans], pa.string()), position)
    arm = pc.take(pa.array([p.arm for p in plans], pa.string()), position)
    to_challenger = batch.column("_to_challenger")
    if pc.any(to_challenger).as_py():
        challenger = pc.take(pa.array([p.challenger for p in plans], pa.string()), position)
        version = pc.if_else(to_challenger, challenger, version)
        arm = pc.if_else(to_challenger, pa.scalar(CHALLENGER_ARM), arm)
    return version, arm


def arms_frame(assignments: Mapping[date, Assignment]) -> pa.Table:
    """The A/B days of `assignments`: day, experiment id and the challenger's share."""
    ab = {day: a for day, a in assignments.items() if a.challenger is not None}
    return pa.table(
        {
            "day": pa.array(list(ab), pa.date32()),
            "experiment": pa.array([a.experiment for a in ab.values()], pa.string()),
            "share": pa.array([a.share for a in ab.values()], pa.float64()),
        }
    )


def bucket_sql(spec: ModelSpec, experiment: str, rows: str) -> str:
    """DuckDB SQL of a row's place in [0, 1) for the experiment `experiment` (an SQL expression):
    MD5 of the id and the entity key of `rows` joined by '|', its first 8 hex digits over 2^32.
    The challenger's arm is the rows below its share."""
    parts = ", ".join([experiment, *(f'{rows}."{c}"' for c in spec.entity_key)])
    return f"CAST('0x' || left(md5(concat_ws('|', {parts})), 8) AS UBIGINT) / 4294967296.0"
