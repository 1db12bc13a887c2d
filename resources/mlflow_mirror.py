"""The MLflow mirror: each model version as an MLflow run and registered model version, and the
`champion` alias following the promotion history.

Optional: it acts only when PLATFORM_MLFLOW_TRACKING_URI is set, and only then imports MLflow (an
extra of the distribution). The platform's registry and append-only history stay the source of
truth; the mirror is replayed from them, idempotently: a version already mirrored is left as it
is, one half-mirrored is mirrored again, and the alias is set to the champion the history names.
So the same `sync` serves the training's hook, the promotion's hook, the catch-up command
(`models_cli mlflow-sync`) and the catch-up sensor's job (`sensors.mlflow_catch_up`). Nothing
here raises into a training or a promotion (`mirror_quietly`): a failure is logged, alerted and
noted beside the model's registry (`MIRROR_STATE`), and the catch-up sensor retries the sync
while the note says the mirror is behind.

In MLflow, per model: an experiment named after the model, a run per version (parameters, the
gate fit's holdout metrics as `holdout_<metric>`, the served fit's in-sample ones as
`training_<metric>`, the gate's decision, tags naming model, version, cutoff, data fingerprint,
code version and the Dagster run with a link to it), a child run per search trial, the skops
artifact and record under `model/`, and a registered model of the model's name with a version
per platform version, tagged `platform.version`.
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg

from resources import promotions, settings
from resources.registry import ARTIFACT, RECORD, ModelRegistry

CHAMPION_ALIAS = "champion"
# Tags of runs and model versions; the version tag is how the mirror finds what it mirrored.
VERSION_TAG = "platform.version"
ROLE_TAG = "platform.role"
COMPLETE_TAG = "platform.mirrored"
HISTORY_TAG = "platform.history_entries"
ARTIFACT_PATH = "model"
# Without it MLflow 3's UI opens a new experiment as a GenAI one (traces, judges), not its runs.
EXPERIMENT_KIND, CLASSIC_ML = "mlflow.experimentKind", "custom_model_development"
# A server that does not answer makes each call fail within seconds, never retried for minutes:
# the mirror is retried by the next sync instead.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
_TRIAL_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
_FOREVER = date(9999, 12, 31)
# Beside each model's registry: whether its mirror is behind, since when and why.
MIRROR_STATE = "mlflow_mirror.json"


def enabled() -> bool:
    return bool(settings.mlflow_tracking_uri())


@dataclass(frozen=True)
class Mirrored:
    """What a sync did: versions newly mirrored, the champion alias, and each version's run."""

    mirrored: list[str]
    champion: str | None
    run_urls: dict[str, str]


def mirror_quietly(
    registry: ModelRegistry, model: str, versions: Iterable[str] | None = None
) -> Mirrored | None:
    """`sync` when a tracking URI is set; a failure is logged and alerted, never raised, and
    left for the next sync to repair. None when the mirror is off or failed."""
    uri = settings.mlflow_tracking_uri()
    if not uri:
        return None
    try:
        done = sync(registry, model, versions, uri)
    except Exception as error:  # the mirror must never fail a training or a promotion
        from resources.notifier import Notifier

        summary = (
            f"MLflow mirror of {model} is behind: {type(error).__name__}: {error}. The platform's "
            "registry is unaffected; the catch-up sensor retries, and the next training, "
            "promotion or `models_cli mlflow-sync` catches up"
        )
        dg.get_dagster_logger("mlflow_mirror").warning(summary)
        Notifier().notify("mlflow_mirror", summary, {"model": model, "tracking_uri": uri})
        with contextlib.suppress(Exception):  # a lake that fails too leaves the alert
            note_state(registry, model, f"{type(error).__name__}: {error}")
        return None
    note_state(registry, model, None)
    return done


def note_state(registry: ModelRegistry, model: str, error: str | None) -> None:
    """Note beside `model`'s registry whether its mirror is behind (`error`) or up to date.
    A mirror that stays behind keeps the time it fell behind."""
    key, store = _state_key(registry, model), registry.lake.store
    if error is None:
        if store.exists(key) and behind_since(registry, model) is not None:
            store.put(key, json.dumps({"behind": False}).encode())
        return
    since = behind_since(registry, model) or datetime.now(UTC).isoformat()
    store.put(key, json.dumps({"behind": True, "since": since, "error": error}).encode())


def behind_since(registry: ModelRegistry, model: str) -> str | None:
    """When `model`'s mirror fell behind, or None when it is up to date."""
    key, store = _state_key(registry, model), registry.lake.store
    if not store.exists(key):
        return None
    state = json.loads(store.get(key))
    return state["since"] if state.get("behind") else None


def _state_key(registry: ModelRegistry, model: str) -> str:
    return f"{registry.model_dir(model)}/{MIRROR_STATE}"


def sync(
    registry: ModelRegistry,
    model: str,
    versions: Iterable[str] | None = None,
    uri: str | None = None,
) -> Mirrored:
    """Mirror `versions` of `model` (default: every stored one) and set the champion alias to
    the version the history makes champion from the latest date on. Raises on any MLflow error."""
    uri = uri or settings.mlflow_tracking_uri()
    if not uri:
        raise ValueError(f"set {settings.MLFLOW_TRACKING_URI_ENV} to mirror to MLflow")
    mirror = _Mirror(uri, registry, model)
    history = registry.history(model)
    champion = promotions.champion_at(history, _FOREVER)
    wanted = (
        list(versions) if versions is not None else [r["version"] for r in registry.versions(model)]
    )
    if champion is not None and champion["version"] not in wanted:
        wanted.append(champion["version"])
    mirrored = [v for v in wanted if mirror.version(v)]
    mirror.champion(champion["version"] if champion else None, history)
    return Mirrored(
        mirrored,
        champion["version"] if champion else None,
        {v: mirror.run_url(v) for v in wanted},
    )


class _Mirror:
    def __init__(self, uri: str, registry: ModelRegistry, model: str):
        for name, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        from mlflow import MlflowClient

        self.uri, self.registry, self.model = uri.rstrip("/"), registry, model
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        found = self.client.get_experiment_by_name(model)
        self.experiment = (
            found.experiment_id
            if found
            else self.client.create_experiment(model, tags={EXPERIMENT_KIND: CLASSIC_ML})
        )
        self.runs = {
            run.data.tags[VERSION_TAG]: run
            for run in self.client.search_runs(
                [self.experiment], f"tags.`{ROLE_TAG}` = 'version'", max_results=50_000
            )
        }
        self.model_versions = self._registered()

    def run_url(self, version: str) -> str:
        run = self.runs[version]
        return f"{self.uri}/#/experiments/{self.experiment}/runs/{run.info.run_id}"

    def version(self, version: str) -> bool:
        """Mirror `version` unless it is whole in MLflow already; whether it was mirrored now."""
        run = self.runs.get(version)
        done = run is not None and run.data.tags.get(COMPLETE_TAG) == "true"
        if done and version in self.model_versions:
            return False
        if not done:
            if run is not None:  # half-mirrored by a sync that was cut off: mirror it anew
                self.client.delete_run(run.info.run_id)
            run = self._run(self.registry.record(self.model, version))
            self.runs[version] = run
        if version not in self.model_versions:
            self.model_versions[version] = self.client.create_model_version(
                self.model,
                f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
                run.info.run_id,
                tags={VERSION_TAG: version},
                description=f"platform version {version}",
            ).version
        return True

    def champion(self, version: str | None, history: list[dict]) -> None:
        """Point the alias at `version` (remove it when there is none) and note how much of the
        history the registered model reflects."""
        if version is None:
            if CHAMPION_ALIAS in self.client.get_registered_model(self.model).aliases:
                self.client.delete_registered_model_alias(self.model, CHAMPION_ALIAS)
        else:
            self.client.set_registered_model_alias(
                self.model, CHAMPION_ALIAS, self.model_versions[version]
            )
        self.client.set_registered_model_tag(self.model, HISTORY_TAG, str(len(history)))

    def _registered(self) -> dict[str, str]:
        """Platform version -> MLflow model version number, creating the registered model."""
        from mlflow.exceptions import RestException

        try:
            self.client.get_registered_model(self.model)
        except RestException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(
                self.model, description=f"Mirror of the platform's {self.model} versions"
            )
        return {
            mv.tags[VERSION_TAG]: mv.version
            for mv in self.client.search_model_versions(f"name='{self.model}'")
            if VERSION_TAG in mv.tags
        }

    def _run(self, record: dict):
        """A finished run of `record`, its trials as child runs and its files as artifacts."""
        from mlflow.entities import RunTag

        version, gate = record["version"], record["gate"]
        created = _millis(record["created_at"])
        tags = {
            ROLE_TAG: "version",
            VERSION_TAG: version,
            "platform.model": self.model,
            "platform.cutoff": record["partition"],
            "platform.data_fingerprint": record["data_fingerprint"],
            "platform.code_version": record["code_version"],
            "mlflow.source.git.commit": record["code_version"],
            "platform.gate_passed": str(gate["passed"]).lower(),
            "platform.gate_reason": gate["reason"],
            "platform.champion_compared": str(gate["champion_version"]),
        }
        run_id = record.get("dagster_run_id")
        if run_id:
            link = f"{settings.dagster_url()}/runs/{run_id}"
            tags |= {"platform.dagster_run_id": run_id, "platform.dagster_run_url": link}
            tags["mlflow.note.content"] = f"Trained by Dagster run [{run_id}]({link})."
        run = self.client.create_run(self.experiment, created, tags, run_name=version)
        metrics = {f"holdout_{k}": v for k, v in record["metrics"].items()}
        metrics |= {f"training_{k}": v for k, v in (record.get("fit_metrics") or {}).items()}
        metrics |= {
            "gate_passed": float(gate["passed"]),
            "fit_rows": record["fit_rows"],
            "gate_fit_rows": record["gate_fit_rows"],
            "training_seconds": record["training_seconds"],
        }
        if gate["champion_value"] is not None:
            metrics[f"champion_holdout_{gate['metric']}"] = gate["champion_value"]
        params = dict(record["params"]) | {
            "training_window": " .. ".join(record["training_window"]),
            "holdout_window": " .. ".join(record["holdout_window"]),
            "gate_limit": gate["limit"],
            "gate_tolerance": gate["tolerance"],
        }
        self._log(run.info.run_id, params, metrics, created)
        for trial in record.get("search_trials") or []:
            self._trial(run.info.run_id, version, trial, created)
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, ARTIFACT).write_bytes(self.registry.artifact(self.model, version))
            Path(folder, RECORD).write_text(json.dumps(record, indent=2))
            self.client.log_artifacts(run.info.run_id, folder, ARTIFACT_PATH)
        self.client.log_batch(run.info.run_id, tags=[RunTag(COMPLETE_TAG, "true")])
        self.client.set_terminated(run.info.run_id, "FINISHED", created)
        return self.client.get_run(run.info.run_id)

    def _trial(self, parent: str, version: str, trial: dict, created: int) -> None:
        tags = {
            "mlflow.parentRunId": parent,
            ROLE_TAG: "trial",
            VERSION_TAG: version,
            "platform.trial": str(trial["number"]),
            "platform.trial_state": trial["state"],
        }
        run = self.client.create_run(
            self.experiment, created, tags, run_name=f"{version} trial {trial['number']}"
        )
        metrics = {k: v for k, v in trial.items() if k.startswith("validation_") and v is not None}
        for name in ("iterations", "seconds"):
            if trial.get(name) is not None:
                metrics[name] = trial[name]
        self._log(run.info.run_id, trial["params"], metrics, created)
        self.client.set_terminated(run.info.run_id, _TRIAL_STATUS.get(trial["state"]), created)

    def _log(self, run_id: str, params: dict, metrics: dict, when: int) -> None:
        from mlflow.entities import Metric, Param

        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), when, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
        )


def _millis(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
