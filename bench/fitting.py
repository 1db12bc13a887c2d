"""A model's versions fitted and scored outside the model asset, exactly as the asset does.

Studies of parameters and retraining cadences (`bench/model_params.py`,
`bench/retraining_ceiling.py`) fit dozens of versions; going through the asset would store,
gate and promote each. `Year` reads the labelled rows of the bundled year once
(`assets.training.labelled_rows`), fits a cutoff's version with the asset's own rule
(`assets.training.fit_candidate`, the asset's parameters for the window's rows) and scores rows
with the model's gate metric (`assets.metrics.evaluate`).
"""

import math
from collections.abc import Mapping
from datetime import date
from typing import Any

import pandas as pd

from assets.model_spec import LABEL, ModelSpec
from resources.days import days_between
from resources.lake import Lake


class Year:
    """The labelled rows of one model over its dataset's year, fitted and scored as the model
    asset does."""

    def __init__(self, lake: Lake, spec: ModelSpec):
        from assets import CATALOG
        from assets.training import labelled_rows

        self.spec = spec
        dataset = CATALOG.dataset_of(spec)
        self.first_day = dataset.first_day
        self.rows = labelled_rows(
            lake, CATALOG, spec, days_between(dataset.first_day, dataset.last_day)
        )
        self.by_day = dict(tuple(self.rows.groupby(spec.day_column)))

    def between(self, first: date, last: date) -> pd.DataFrame:
        return self.rows[self.rows[self.spec.day_column].between(first, last)]

    def fit(
        self, cutoff: date, window_days: int | None = None, change: Mapping[str, Any] | None = None
    ) -> tuple[Any, float]:
        """The version of `cutoff` fitted on `window_days` (the spec's by default) with the
        asset's parameters replaced by `change`, and its holdout value of the gate metric (the
        gate's evidence)."""
        from assets.partitions import preceding_days
        from assets.training import TrainingConfig, fit_candidate

        window = preceding_days(cutoff, window_days or self.spec.window_days, self.first_day)
        rows = self.between(window[0], window[-1])
        params = TrainingConfig().base_params(self.spec, len(rows)) | dict(change or {})
        candidate = fit_candidate(self.spec, rows, window, params)
        return candidate.estimator, candidate.metrics[self.spec.gate_metric]

    def metric(self, estimator: Any, rows: pd.DataFrame) -> float:
        """The gate metric of `estimator` on labelled `rows`."""
        from assets import modeling
        from assets.metrics import evaluate

        scores = modeling.score(estimator, self.spec, rows)
        return evaluate(self.spec.task, rows[LABEL], scores)[self.spec.gate_metric]

    def daily(self, estimator: Any, first: date, last: date) -> list[float]:
        """Each day's gate metric over first..last, as `<model>/prediction_quality` has it
        (days where it is undefined, an AUC of one class, left out)."""
        values = [
            self.metric(estimator, rows)
            for day, rows in self.by_day.items()
            if first <= day <= last
        ]
        return [v for v in values if not math.isnan(v)]
