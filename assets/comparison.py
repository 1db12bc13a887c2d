"""A model's versions side by side: what a person compares between two experiments.

One column per version, one row per thing that tells them apart: the window and its rows, the
parameters that differ, the holdout metrics, the gate's decision, the search, where the history
made it champion, and what it was worth once serving (the days `<model>/prediction_quality`
measured it on and its mean daily gate metric there). `models_cli compare` prints it and every
training's materialization of `<model>/model` carries it for the model's recent versions.
"""

import math
from collections.abc import Sequence

import pandas as pd

from assets.keys import quality_key
from assets.model_spec import ModelSpec
from assets.scoring import MODEL_VERSION
from resources.lake import Lake
from resources.registry import ModelRegistry

# Versions compared when none are named: the latest cutoffs.
RECENT_VERSIONS = 5
FIELD = "field"


def compare(
    registry: ModelRegistry,
    lake: Lake,
    spec: ModelSpec,
    versions: Sequence[str] = (),
    recent: int = RECENT_VERSIONS,
) -> pd.DataFrame:
    """The comparison of `versions` (default: the `recent` latest), a column each, in the order
    named (default: by cutoff); its first column, `field`, names the rows."""
    records = (
        [registry.record(spec.name, version) for version in versions]
        if versions
        else registry.versions(spec.name)[-recent:]
    )
    if not records:
        raise LookupError(f"{spec.name}: no version stored yet; materialize {spec.name}/model")
    history = registry.history(spec.name)
    served = served_quality(lake, spec)
    rows: dict[str, list] = {
        "cutoff": [r["partition"] for r in records],
        "training window": [" .. ".join(r["training_window"]) for r in records],
        "fit rows": [r["fit_rows"] for r in records],
    }
    params = [r["params"] for r in records]
    names = sorted({name for p in params for name in p})
    differing = [n for n in names if len({repr(p.get(n)) for p in params}) > 1]
    for name in differing:
        rows[f"param {name}"] = [_shown(p.get(name)) for p in params]
    if not differing:
        rows["params"] = ["same" if len(records) > 1 else _shown(params[0])] * len(records)
    for metric in spec.metrics:
        rows[f"holdout {metric}"] = [_shown(r["metrics"].get(metric)) for r in records]
    rows["gate"] = [_gate(r["gate"]) for r in records]
    rows["search trials"] = [len(r.get("search_trials") or []) or "-" for r in records]
    rows["champion from"] = [_champion_from(history, r["version"]) for r in records]
    days = served.get("days", {})
    metric = served.get("metric", {})
    rows["served days"] = [days.get(r["version"], 0) for r in records]
    rows[f"served {spec.gate_metric}"] = [_shown(metric.get(r["version"])) for r in records]
    frame = pd.DataFrame(rows, index=[r["version"] for r in records]).T
    return frame.rename_axis(FIELD).reset_index()


def served_quality(lake: Lake, spec: ModelSpec) -> dict[str, dict[str, float]]:
    """Per version that served: `days` measured by `<model>/prediction_quality` and `metric`,
    the mean of its daily gate metric over them; empty before any quality was measured."""
    table = quality_key(spec).to_user_string()
    days = lake.partition_days(table)
    if not days:
        return {}
    quality = lake.read(table, days)
    by_version = quality.groupby(MODEL_VERSION)
    return {
        "days": by_version[spec.day_column].nunique().to_dict(),
        "metric": by_version[spec.gate_metric].mean().to_dict(),
    }


def as_text(frame: pd.DataFrame) -> str:
    """The comparison as aligned columns for a terminal."""
    cells = [list(frame.columns)] + [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(frame.columns))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _shown(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _gate(gate: dict) -> str:
    verdict = "pass" if gate["passed"] else "FAIL"
    if gate.get("champion_value") is None:
        return verdict
    return f"{verdict} (champion {gate['champion_value']:.4g})"


def _champion_from(history: list[dict], version: str) -> str:
    dates = [
        e["effective_from"] + (" (rollback)" if e["action"] == "rollback" else "")
        for e in history
        if e["version"] == version
    ]
    withdrawn = any(e.get("replaces") == version for e in history)
    shown = ", ".join(dates) or "-"
    return f"{shown}; rolled back" if withdrawn else shown
