"""The platform's read API for notebooks: one import, and a notebook reads a model's features,
labels and predictions of a range of days, a version's record and estimator, and the rows its
quality gate judged, without building a path or a query against the lake's layout.

```python
from assets.notebook_api import Reader

platform = Reader(lake_root, inputs)   # both injected by the platform
rows = platform.labelled("flight_delay", "2013-02-22", "2013-02-28")
```

Everything is read as the platform's own steps read it: partitions missing from the lake are
named rather than skipped, an estimator is loaded only when its artifact matches the SHA-256 its
record holds, and the gate's evidence is replayed only on the very rows the version was trained
on (their fingerprint is checked). Dates are `datetime.date` or `YYYY-MM-DD`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from assets import CATALOG
from assets.keys import predictions_key
from assets.metrics import evaluate
from assets.model_spec import LABEL, ModelSpec
from assets.training import holdout_split, labelled_rows
from resources import promotions
from resources.days import days_between
from resources.lake import Lake
from resources.registry import ModelRegistry

Day = date | str


@dataclass(frozen=True)
class GateEvidence:
    """What a version's quality gate judged, replayed: the held-out rows with their labels, the
    gate's fit (the version's parameters on its window without those days) and its scores, and
    the scores of the champion it was judged against (None for a first version)."""

    holdout: pd.DataFrame
    estimator: Any
    scores: np.ndarray
    champion: str | None
    champion_scores: np.ndarray | None


class Reader:
    """Reads the lake at `lake_root` (a folder or `s3://bucket/prefix`); `inputs` are the
    declared inputs the platform injects, read by name with `input`."""

    def __init__(self, lake_root: str, inputs: Mapping[str, Mapping] | None = None):
        self.lake = Lake(uri=lake_root)
        self.registry = ModelRegistry(lake=self.lake)
        self.inputs = dict(inputs or {})

    def spec(self, model: str) -> ModelSpec:
        """The model's declaration: its task, metrics, features, entity key."""
        return CATALOG.model(model)

    def table(self, name: str, first: Day | None = None, last: Day | None = None) -> pd.DataFrame:
        """A lake table's rows of the days first..last (one day when `last` is omitted), or all
        of an unpartitioned table (a register) when no day is given."""
        return self.lake.read(name, None if first is None else _days(first, last))

    def input(self, name: str) -> pd.DataFrame:
        """The rows of a declared input, over the days its window covers for this run."""
        if name not in self.inputs:
            raise KeyError(f"no input {name!r}; declared: {', '.join(self.inputs) or 'none'}")
        declared = self.inputs[name]
        days = declared.get("days")
        if days is None:
            return self.lake.read(declared["table"])
        return self.lake.read(declared["table"], [date.fromisoformat(d) for d in days])

    def features(self, model: str, first: Day, last: Day | None = None) -> pd.DataFrame:
        """The model's feature rows of the days, as served and trained on."""
        return self.table(self.spec(model).features_table, first, last)

    def predictions(self, model: str, first: Day, last: Day | None = None) -> pd.DataFrame:
        """The model's served scores of the days; each row names the version that scored it."""
        return self.table(predictions_key(self.spec(model)).to_user_string(), first, last)

    def labels(self, model: str, first: Day, last: Day | None = None) -> pd.DataFrame:
        """The entity key and label (column `label`) of the days' rows that have one."""
        spec = self.spec(model)
        return self.labelled(model, first, last)[[*spec.entity_key, LABEL]]

    def labelled(self, model: str, first: Day, last: Day | None = None) -> pd.DataFrame:
        """Features joined with labels, as training reads them: rows without a label left out."""
        spec = self.spec(model)
        return _timestamps(labelled_rows(self.lake, CATALOG, spec, _days(first, last)), spec)

    def record(self, model: str, version: str) -> dict:
        """A version's record: windows, fingerprint, parameters, metrics, the gate's verdict."""
        return self.registry.record(model, version)

    def versions(self, model: str) -> list[dict]:
        """Every stored version's record, oldest cutoff first."""
        return self.registry.versions(model)

    def estimator(self, model: str, version: str) -> Any:
        """A version's estimator, loaded only when its artifact matches its recorded SHA-256."""
        return self.registry.load(model, version, self.spec(model).trusted_types)

    def champion(self, model: str, day: Day) -> str | None:
        """The version in force on `day` (None before the first)."""
        entry = promotions.champion_at(self.registry.history(model), _day(day))
        return entry["version"] if entry else None

    def score(self, model: str, estimator: Any, rows: pd.DataFrame) -> np.ndarray:
        """Scores of `rows` (their feature columns) as serving computes them: probabilities of
        a classifier, values of a regression."""
        from assets import modeling

        return modeling.score(estimator, self.spec(model), rows)

    def design_matrix(self, model: str, rows: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of `rows` with the types the estimator is fitted on."""
        from assets import modeling

        return modeling.design_matrix(self.spec(model), rows)

    def evaluate(self, model: str, labels, scores) -> dict[str, float]:
        """The model's metrics of `scores` against `labels`, and the number of rows."""
        spec = self.spec(model)
        measured = evaluate(spec.task, labels, scores)
        return {name: measured[name] for name in (*spec.metrics, "rows")}

    def gate_evidence(self, model: str, version: str) -> GateEvidence:
        """The gate of `version` replayed: its window read again (refused when its rows are not
        those it was trained on), the gate's fit refitted, the champion it was judged against
        loaded, and both scored on the held-out rows."""
        from assets import modeling

        spec, record = self.spec(model), self.record(model, version)
        window = _days(*record["training_window"])
        every = record.get("sampled_every", 1)
        max_rows = -(-record["window_rows"] // every) if every > 1 else None
        frame = labelled_rows(self.lake, CATALOG, spec, window, max_rows)
        if modeling.fingerprint(frame) != record["data_fingerprint"]:
            raise ValueError(
                f"{model} version {version}: the labelled rows of its window "
                f"{' .. '.join(record['training_window'])} are not those it was trained on "
                "(their fingerprint differs from its record's): the data was rewritten since, "
                "so its gate cannot be replayed"
            )
        fit_rows, holdout = holdout_split(spec, frame, window)
        estimator = modeling.fit(spec, fit_rows, record["params"])
        champion = record["gate"]["champion_version"]
        champion_scores = (
            None
            if champion is None
            else self.score(model, self.estimator(model, champion), holdout)
        )
        return GateEvidence(
            _timestamps(holdout.reset_index(drop=True), spec),
            estimator,
            self.score(model, estimator, holdout),
            champion,
            champion_scores,
        )


def _timestamps(frame: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """`frame` with its day column as the lake's tables read it (datetime64), so that rows of
    any call of the API join on it."""
    return frame.assign(**{spec.day_column: pd.to_datetime(frame[spec.day_column])})


def _day(day: Day) -> date:
    return day if isinstance(day, date) else date.fromisoformat(day)


def _days(first: Day, last: Day | None = None) -> list[date]:
    return days_between(_day(first), _day(last if last is not None else first))
