"""Model storage: skops artifacts (never pickle) beside a JSON record, and who is champion when.

Layout under the lake root (a folder or an S3 prefix): `registry/<model>/<version>/model.skops`
and `record.json`, and the promotion history in `registry/<model>/promotions/` (see
`resources.promotions`). The record is written last, so a version exists only once its artifact
is whole. Loading checks the artifact's SHA-256 against the record and refuses a mismatch, and
skops loads only the types in `TRUSTED_TYPES`. A record that is not whole JSON with its fields
is refused naming the file (`resources.records`).
"""

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import dagster as dg

from resources import experiments, promotions, records
from resources.lake import Lake
from resources.storage import ObjectStore

if TYPE_CHECKING:
    import pandas as pd

ARTIFACT = "model.skops"
PROMOTIONS = "promotions"
RECORD = "record.json"
REFERENCE = "reference.parquet"
RECORD_FIELDS = ("model", "version", "partition", "artifact_sha256")
_REWRITE_RECORD = (
    "Restore it from a backup, or materialize the version's cutoff again, which writes it anew."
)
# Types beyond skops' defaults that our estimators contain; anything else in a file is refused.
TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.AbsoluteError",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn.utils.validation.check_array",
]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}\.[0-9a-f]{10}$")
_RECORD_KEY = re.compile(rf"^\d{{4}}-\d{{2}}-\d{{2}}\.[0-9a-f]{{10}}/{re.escape(RECORD)}$")


class ArtifactIntegrityError(RuntimeError):
    """A model file does not match the SHA-256 recorded when it was stored."""


class ModelRegistry(dg.ConfigurableResource):
    """Versions of each model: artifact, training window, data fingerprint, parameters, metrics."""

    lake: Lake

    def model_dir(self, model: str) -> str:
        """The key prefix of a model's versions and history, where notes about it belong too."""
        return self._dir(model)

    def _dir(self, model: str, version: str | None = None) -> str:
        """The key prefix of a model, or of one of its versions."""
        if not _NAME.fullmatch(model):
            raise ValueError(f"invalid model name {model!r}")
        base = f"registry/{model}"
        if version is None:
            return base
        if not _VERSION.fullmatch(version):
            raise ValueError(f"invalid model version {version!r}: expected YYYY-MM-DD.<10 hex>")
        return f"{base}/{version}"

    def save(
        self,
        model: str,
        version: str,
        estimator: Any,
        record: dict[str, Any],
        reference: "pd.DataFrame | None" = None,
    ) -> dict:
        """Store `estimator` as `version` of `model`, with `reference`, a sample of the features it
        was fitted on that drift is measured against; returns the full record written."""
        import skops.io

        artifact = skops.io.dumps(estimator)
        folder, store = self._dir(model, version), self.lake.store
        store.put(f"{folder}/{ARTIFACT}", artifact)
        if reference is not None:
            store.put(f"{folder}/{REFERENCE}", _parquet(reference))
        full = {
            **record,
            "model": model,
            "version": version,
            "artifact": ARTIFACT,
            "artifact_sha256": hashlib.sha256(artifact).hexdigest(),
            "artifact_bytes": len(artifact),
            "reference_rows": None if reference is None else len(reference),
        }
        return self.write_record(model, version, full)

    def write_record(self, model: str, version: str, record: dict[str, Any]) -> dict:
        """Replace the record of `version`, whose artifact is stored (`save` writes both): the
        gate's verdict in it changes when the gate is taken again against a new champion."""
        self.lake.store.put(
            f"{self._dir(model, version)}/{RECORD}", json.dumps(record, indent=2).encode()
        )
        return record

    def versions(self, model: str) -> list[dict]:
        """Every stored version's record, oldest training cutoff first."""
        base, store = self._dir(model), self.lake.store
        keys = [k for k in store.sizes(base) if _RECORD_KEY.fullmatch(k[len(base) + 1 :])]
        stored = [
            _record(store, key, key[len(base) + 1 :].split("/")[0], content)
            for key, content in zip(keys, store.get_many(keys), strict=True)
        ]
        return sorted(stored, key=lambda r: (r["partition"], r.get("created_at", "")))

    def record(self, model: str, version: str) -> dict:
        key, store = f"{self._dir(model, version)}/{RECORD}", self.lake.store
        try:
            content = store.get(key)
        except FileNotFoundError:
            raise KeyError(f"{model}: no version {version} at {store.uri(key)}") from None
        return _record(store, key, version, content)

    def reference_sample(self, model: str, version: str) -> "pd.DataFrame":
        """The sample of fitting-window features stored with `version`: what drift compares with."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        key, store = f"{self._dir(model, version)}/{REFERENCE}", self.lake.store
        try:
            content = store.get(key)
        except FileNotFoundError:
            raise KeyError(
                f"{model} version {version} has no reference sample at {store.uri(key)}: it was "
                "stored before versions kept one. Retrain its cutoff to measure drift against it"
            ) from None
        return pq.read_table(pa.BufferReader(content)).to_pandas()

    def versions_trained_on(self, model: str, day: date) -> list[dict]:
        """Versions whose training window (fitting and holdout) read the partition `day`."""
        return [
            r
            for r in self.versions(model)
            if r["training_window"][0] <= day.isoformat() <= r["training_window"][1]
        ]

    def history(self, model: str) -> list[dict]:
        """Every promotion, manual promotion and rollback of `model`, oldest first."""
        return promotions.read(self.lake.store, self._history_dir(model))

    def champion_at(self, model: str, day: date) -> dict | None:
        """The history entry naming the champion in force on `day` (None before the first one)."""
        return promotions.champion_at(self.history(model), day)

    def promote(
        self,
        model: str,
        version: str,
        effective_from: date | None = None,
        action: str = "manual",
        reason: str = "",
        decided_on: list[dict] | None = None,
    ) -> dict:
        """Make `version` champion from `effective_from` (default: its training cutoff) on.

        A version never serves days before its cutoff: it was trained on the days just before it,
        so scoring earlier days would leak their outcomes into the scores. `decided_on` is the
        history a decision to promote was taken on (the quality gate's): if another promotion was
        appended since, nothing is written and `promotions.HistoryChanged` is raised, so the
        decision can be taken again. Without it (a person's promotion) the entry goes after
        whatever the history holds.
        """
        cutoff = date.fromisoformat(self.record(model, version)["partition"])
        effective_from = effective_from or cutoff
        if effective_from < cutoff:
            raise ValueError(
                f"{model} version {version} was trained on data up to {cutoff}; it cannot be "
                f"champion from {effective_from}, before its cutoff"
            )
        entry = {
            "version": version,
            "effective_from": effective_from.isoformat(),
            "action": action,
            "reason": reason,
        }
        if decided_on is None:
            return self._append_to_latest(model, lambda _: entry)
        appended = promotions.append(self.lake.store, self._history_dir(model), entry, decided_on)
        return self._mirror(model, appended)

    def start_challenger(
        self,
        model: str,
        version: str,
        champion: str,
        policy: str,
        share: float | None,
        day: date,
        reason: str,
        decided_on: list[dict],
    ) -> list[dict]:
        """Start `version` as the challenger of `champion` under `policy` from `day` on: it scores
        beside the champion (`shadow`) or serves `share` of the rows (`ab`) until the decision
        sensor promotes or retires it. An experiment still open is first retired, superseded:
        the newer version was trained on newer days. Appended only to `decided_on`, the history
        the gate decided on (`promotions.HistoryChanged` otherwise); returns the entries written.
        """
        written, history = [], list(decided_on)
        running = experiments.open_experiment(history)
        if running is not None:
            superseded = {
                "version": running.challenger,
                "effective_from": max(day, running.started).isoformat(),
                "action": promotions.RETIRE,
                "reason": f"superseded by the newer challenger {version}",
                "experiment": running.id,
                "champion": running.champion,
                "evidence": None,
            }
            written.append(
                promotions.append(self.lake.store, self._history_dir(model), superseded, history)
            )
            history.append(written[-1])
        entry = {
            "version": version,
            "effective_from": day.isoformat(),
            "action": promotions.CHALLENGE,
            "reason": reason,
            "experiment": version,
            "champion": champion,
            "policy": policy,
            "share": share,
        }
        written.append(promotions.append(self.lake.store, self._history_dir(model), entry, history))
        return written

    def end_experiment(
        self,
        model: str,
        experiment: str,
        outcome: str,
        effective_from: date,
        reason: str,
        evidence: dict | None,
    ) -> dict:
        """End the open experiment `experiment` from `effective_from` on: `promote` makes its
        challenger champion, `retire` withdraws it; the entry keeps the `evidence`. Refused when
        that experiment is not the open one (already decided, or superseded)."""
        if outcome not in experiments.ENDINGS:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {experiments.ENDINGS}")

        def entry(history: list[dict]) -> dict:
            running = experiments.open_experiment(history)
            if running is None or running.id != experiment:
                ended = next(
                    (e for e in experiments.experiments(history) if e.id == experiment), None
                )
                state = (
                    f"was {ended.outcome} by entry {ended.end['seq']}"
                    if ended and ended.end
                    else "is not in the history"
                )
                raise LookupError(f"{model}: experiment {experiment} {state}; nothing to decide")
            if effective_from < running.started:
                raise ValueError(
                    f"{model}: experiment {experiment} started on {running.started}; it cannot "
                    f"end on {effective_from}"
                )
            return {
                "version": running.challenger,
                "effective_from": effective_from.isoformat(),
                "action": outcome,
                "reason": reason,
                "experiment": experiment,
                "champion": running.champion,
                "evidence": evidence,
            }

        return self._append_to_latest(model, entry)

    def rollback(self, model: str, effective_from: date | None = None, reason: str = "") -> dict:
        """Restore the previous champion in place of the current one, from `effective_from` on.

        The default date is the current champion's own effective date, which withdraws it
        entirely. An earlier date is refused: the current entry would still rule from its date.
        """

        def entry(history: list[dict]) -> dict:
            current, previous = promotions.rollback_target(history)
            latest = date.fromisoformat(current["effective_from"])
            if effective_from is not None and effective_from < latest:
                raise ValueError(
                    f"{model}: the current champion {current['version']} is in force from "
                    f"{latest}; a rollback effective {effective_from} would not override it. Use "
                    f"{latest} or later"
                )
            self.record(model, previous["version"])  # refuse restoring a version not stored
            return {
                "version": previous["version"],
                "effective_from": (effective_from or latest).isoformat(),
                "action": "rollback",
                "reason": reason or f"rollback of {current['version']}",
                "replaces": current["version"],
            }

        return self._append_to_latest(model, entry)

    def _history_dir(self, model: str) -> str:
        return f"{self._dir(model)}/{PROMOTIONS}"

    def _append_to_latest(self, model: str, entry: Callable[[list[dict]], dict]) -> dict:
        """Append the entry `entry` makes of the history as it is; when another writer appends
        first, make it again from the history as it has become."""
        while True:
            history = self.history(model)
            try:
                appended = promotions.append(
                    self.lake.store, self._history_dir(model), entry(history), history
                )
            except promotions.HistoryChanged:
                continue
            return self._mirror(model, appended)

    def _mirror(self, model: str, entry: dict) -> dict:
        """After an entry is appended: the MLflow mirror's champion alias follows it (when a
        tracking URI is set; a failure there never fails the promotion). Returns `entry`."""
        from resources import mlflow_mirror

        mlflow_mirror.mirror_quietly(self, model, [entry["version"]])
        return entry

    def load(self, model: str, version: str, trusted: Sequence[str] = ()) -> Any:
        """Load a version after checking its artifact against the recorded SHA-256. Beside
        `TRUSTED_TYPES`, skops loads the types of `trusted` (those a model's own estimator
        declares) and refuses any other."""
        import skops.io

        return skops.io.loads(self.artifact(model, version), trusted=[*TRUSTED_TYPES, *trusted])

    def artifact(self, model: str, version: str) -> bytes:
        """The skops file of a version, checked against the SHA-256 its record holds."""
        record = self.record(model, version)
        key, store = f"{self._dir(model, version)}/{ARTIFACT}", self.lake.store
        artifact = store.get(key)
        digest = hashlib.sha256(artifact).hexdigest()
        if digest != record["artifact_sha256"]:
            raise ArtifactIntegrityError(
                f"{model} version {version}: {store.uri(key)} has SHA-256 {digest}, but the registry "
                f"recorded {record['artifact_sha256']}; refusing to load a modified artifact"
            )
        return artifact


def _record(store: ObjectStore, key: str, version: str, content: bytes) -> dict:
    """The record of `version` stored at `key`, refused naming the file when it is damaged."""
    record = records.parse(store, key, content, RECORD_FIELDS, _REWRITE_RECORD)
    if record["version"] != version:
        raise records.damaged(
            store, key, f"is the record of version {record['version']!r}", _REWRITE_RECORD
        )
    return record


def _parquet(frame: "pd.DataFrame") -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue().to_pybytes()
