"""The asset keys of a model, named once: `<model>/features`, `/model`, `/predictions`,
`/feature_drift`, `/prediction_quality`; and those of the notebooks a model or a dataset
declares, `<model or dataset>/<notebook>`."""

import dagster as dg

from assets.model_spec import ModelSpec


def features_key(spec: ModelSpec) -> dg.AssetKey:
    """The features the model reads: its own, or those of the model it names."""
    return dg.AssetKey.from_user_string(spec.features_table)


def model_key(spec: ModelSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "model"])


def predictions_key(spec: ModelSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "predictions"])


def drift_key(spec: ModelSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "feature_drift"])


def quality_key(spec: ModelSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "prediction_quality"])


def served_keys(spec: ModelSpec) -> list[dg.AssetKey]:
    """What the model's champion serves each day: predictions, drift and quality."""
    return [predictions_key(spec), drift_key(spec), quality_key(spec)]


def model_keys(spec: ModelSpec) -> list[dg.AssetKey]:
    """Every asset key of the model's own pipeline (its features only when it computes them)."""
    own = [] if spec.features_from else [features_key(spec)]
    return [*own, model_key(spec), *served_keys(spec)]


def notebook_key(owner: str, notebook: str) -> dg.AssetKey:
    """The asset of a notebook declared by the model or dataset named `owner`."""
    return dg.AssetKey([owner, notebook])
