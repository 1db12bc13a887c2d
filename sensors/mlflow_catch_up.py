"""The MLflow mirror's retry: a model whose mirror fell behind is synced again until it is not.

A training or a promotion never waits for MLflow (`resources.mlflow_mirror.mirror_quietly`):
when MLflow does not answer, the mirror alerts and notes the model as behind beside its
registry. `mlflow_mirror_catch_up` reads those notes every `CATCH_UP_SECONDS` and, while any
model is behind, launches `mlflow_catch_up`, which replays the models' registry and history into
MLflow (`mlflow_mirror.sync`, idempotent) and clears their notes. A run that fails (MLflow still
down) leaves the notes, and the next interval tries again under a new run key; the failure
sensor alerts each failed run.

Both exist only when PLATFORM_MLFLOW_TRACKING_URI is set. The tick reads one small note per model
and never imports MLflow; `catch_up_tick` evaluates one tick, so tests call it directly.
"""

import time

import dagster as dg
from pydantic import Field

from assets.catalog import Catalog
from resources import mlflow_mirror
from resources.registry import ModelRegistry
from sensors.run_tags import REASON_TAG

CATCH_UP_SENSOR, CATCH_UP_JOB = "mlflow_mirror_catch_up", "mlflow_catch_up"
CATCH_UP_SECONDS = 600


class CatchUpConfig(dg.Config):
    models: list[str] = Field(description="The models whose MLflow mirror is synced again.")


@dg.op
def sync_mlflow_mirror(
    context: dg.OpExecutionContext, config: CatchUpConfig, registry: ModelRegistry
) -> None:
    """Sync each model's mirror; a model that fails stays noted as behind, and the run fails
    naming it once the others are done."""
    failed = {}
    for model in config.models:
        try:
            done = mlflow_mirror.sync(registry, model)
        except Exception as error:
            failed[model] = f"{type(error).__name__}: {error}"
            mlflow_mirror.note_state(registry, model, failed[model])
            continue
        mlflow_mirror.note_state(registry, model, None)
        context.log.info(
            f"{model}: {len(done.mirrored)} versions mirrored; champion alias: "
            f"{done.champion or 'none'}"
        )
    if failed:
        raise RuntimeError(
            "MLflow mirror still behind for "
            + "; ".join(f"{model} ({error})" for model, error in failed.items())
        )


@dg.job(
    name=CATCH_UP_JOB,
    description="Sync the MLflow mirror of models that fell behind (the catch-up sensor "
    "launches it; `models_cli mlflow-sync` does the same by hand).",
)
def mlflow_catch_up() -> None:
    sync_mlflow_mirror()


def catch_up_tick(
    registry: ModelRegistry, models: list[str], now: float
) -> dg.RunRequest | dg.SkipReason:
    """A run of the catch-up job for the models noted as behind, one per interval."""
    behind = {model: mlflow_mirror.behind_since(registry, model) for model in models}
    behind = {model: since for model, since in behind.items() if since is not None}
    if not behind:
        return dg.SkipReason("the MLflow mirror of every model is up to date")
    reason = "MLflow mirror behind: " + ", ".join(
        f"{model} since {since}" for model, since in sorted(behind.items())
    )
    return dg.RunRequest(
        run_key=f"{CATCH_UP_JOB}-{int(now // CATCH_UP_SECONDS)}",
        run_config={"ops": {"sync_mlflow_mirror": {"config": {"models": sorted(behind)}}}},
        tags={REASON_TAG: reason},
    )


def build_catch_up_sensor(catalog: Catalog) -> dg.SensorDefinition:
    """The catch-up sensor over the catalog's models, targeting the catch-up job."""
    models = [spec.name for spec in catalog.models]

    @dg.sensor(
        name=CATCH_UP_SENSOR,
        job=mlflow_catch_up,
        minimum_interval_seconds=CATCH_UP_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Syncs the MLflow mirror again while a model's mirror is behind (MLflow was "
        "down during a training or a promotion).",
    )
    def evaluate(registry: ModelRegistry) -> dg.RunRequest | dg.SkipReason:
        return catch_up_tick(registry, models, time.time())

    return evaluate
