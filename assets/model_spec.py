"""What distinguishes one model from another; the pipeline factory builds the assets from it."""

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_PARAMS: dict[str, float | int] = {
    "learning_rate": 0.08,
    "max_iter": 250,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "random_state": 2013,
}


@dataclass(frozen=True)
class ModelSpec:
    """A model of the platform.

    `features_sql` is one DuckDB query over the views `flights` (the days to featurize), `weather`,
    `planes` and `history` (outcomes of the `history_days` before each day). It returns one row
    per flight with `flight_date`, the key columns, `dest` and the features. Training and batch
    prediction both read its output, so they never diverge. `label_sql` is an expression over
    `flight_outcomes` columns; rows where it is NULL carry no label and are not trained on.
    """

    name: str
    description: str
    features_sql: str
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    label_sql: str
    history_days: int = 7
    window_days: int = 60
    min_window_days: int = 28
    holdout_days: int = 7
    params: Mapping[str, float | int] = field(default_factory=lambda: dict(DEFAULT_PARAMS))

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]
