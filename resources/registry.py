"""Model storage: skops artifacts (never pickle) beside a JSON record, and who is champion when.

Layout under the lake root (a folder or an S3 prefix): `registry/<model>/<version>/model.skops`
and `record.json`, and the promotion history in `registry/<model>/promotions/` (see
`resources.promotions`). The record is written last, so a version exists only once its artifact
is whole. Loading checks the artifact's SHA-256 against the record and refuses a mismatch, and
skops loads only the types in `TRUSTED_TYPES`.
"""

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import dagster as dg

from resources import promotions
from resources.lake import Lake

if TYPE_CHECKING:
    import pandas as pd

ARTIFACT = "model.skops"
PROMOTIONS = "promotions"
RECORD = "record.json"
REFERENCE = "reference.parquet"
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
        store.put(f"{folder}/{RECORD}", json.dumps(full, indent=2).encode())
        return full

    def versions(self, model: str) -> list[dict]:
        """Every stored version's record, oldest training cutoff first."""
        base, store = self._dir(model), self.lake.store
        keys = [k for k in store.sizes(base) if _RECORD_KEY.fullmatch(k[len(base) + 1 :])]
        records = [json.loads(content) for content in store.get_many(keys)]
        return sorted(records, key=lambda r: (r["partition"], r["created_at"]))

    def record(self, model: str, version: str) -> dict:
        key, store = f"{self._dir(model, version)}/{RECORD}", self.lake.store
        try:
            return json.loads(store.get(key))
        except FileNotFoundError:
            raise KeyError(f"{model}: no version {version} at {store.uri(key)}") from None

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
        return promotions.read(self.lake.store, f"{self._dir(model)}/{PROMOTIONS}")

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
    ) -> dict:
        """Make `version` champion from `effective_from` (default: its training cutoff) on.

        A version never serves days before its cutoff: it was trained on the days just before it,
        so scoring earlier days would leak their outcomes into the scores.
        """
        cutoff = date.fromisoformat(self.record(model, version)["partition"])
        effective_from = effective_from or cutoff
        if effective_from < cutoff:
            raise ValueError(
                f"{model} version {version} was trained on data up to {cutoff}; it cannot be "
                f"champion from {effective_from}, before its cutoff"
            )
        return self._append(model, version, effective_from, action, reason)

    def rollback(self, model: str, effective_from: date | None = None, reason: str = "") -> dict:
        """Restore the previous champion in place of the current one, from `effective_from` on.

        The default date is the current champion's own effective date, which withdraws it
        entirely. An earlier date is refused: the current entry would still rule from its date.
        """
        current, previous = promotions.rollback_target(self.history(model))
        latest = date.fromisoformat(current["effective_from"])
        effective_from = effective_from or latest
        if effective_from < latest:
            raise ValueError(
                f"{model}: the current champion {current['version']} is in force from {latest}; "
                f"a rollback effective {effective_from} would not override it. Use {latest} or later"
            )
        return self._append(
            model,
            previous["version"],
            effective_from,
            "rollback",
            reason or f"rollback of {current['version']}",
            replaces=current["version"],
        )

    def _append(
        self, model: str, version: str, effective_from: date, action: str, reason: str, **extra
    ) -> dict:
        self.record(model, version)  # refuse versions that are not stored
        entry = {
            "version": version,
            "effective_from": effective_from.isoformat(),
            "action": action,
            "reason": reason,
            **extra,
        }
        return promotions.append(self.lake.store, f"{self._dir(model)}/{PROMOTIONS}", entry)

    def load(self, model: str, version: str, trusted: Sequence[str] = ()) -> Any:
        """Load a version after checking its artifact against the recorded SHA-256. Beside
        `TRUSTED_TYPES`, skops loads the types of `trusted` (those a model's own estimator
        declares) and refuses any other."""
        import skops.io

        record = self.record(model, version)
        key, store = f"{self._dir(model, version)}/{ARTIFACT}", self.lake.store
        artifact = store.get(key)
        digest = hashlib.sha256(artifact).hexdigest()
        if digest != record["artifact_sha256"]:
            raise ArtifactIntegrityError(
                f"{model} version {version}: {store.uri(key)} has SHA-256 {digest}, but the registry "
                f"recorded {record['artifact_sha256']}; refusing to load a modified artifact"
            )
        return skops.io.loads(artifact, trusted=[*TRUSTED_TYPES, *trusted])


def _parquet(frame: "pd.DataFrame") -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue().to_pybytes()
