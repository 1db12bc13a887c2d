"""What retraining can gain at most on the bundled year: the reference for the replay's gain.

The replay (`bench/replay_retraining.py`) measures what the drift and quality sensors gain over a
model never retrained after 2013-03-01. This script measures what any retraining policy could
gain with the same model: a version for every cutoff on a fixed cadence from 2013-03-01, each
fitted as the model asset fits it (`assets.training.fit_candidate`) and promoted
unconditionally (no sensor, no gate), serving until the next cutoff. The figure is the mean daily
AUC from June to December against the never-retrained model, as in the replay, for the spec's
window and cadences, and for longer windows. It also counts the holdouts the gate's floor would
refuse. On a fresh temporary lake (raw tables and features of 2013, in-process runs as in the
replay); not part of `make bench`.

    .venv/bin/python -m bench.retraining_ceiling        # about five minutes
"""

import argparse
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import pandas as pd

from assets.quality_gate import DEFAULT_AUC_FLOOR
from bench.harness import Figure, info, record, table, workspace
from bench.replay_retraining import FIRST_CUTOFF, MEASURED, YEAR, Platform, ingest_and_featurize


@dataclass(frozen=True)
class Policy:
    """Retrain every `every_days` days from the first cutoff, on windows of `window_days`."""

    every_days: int
    window_days: int | None = None  # None: the spec's own

    def label(self, spec_window: int) -> str:
        window = self.window_days or spec_window
        own = " (the spec's)" if self.window_days is None else ""
        return f"every {self.every_days} days, {window}-day window{own}"


POLICIES = [Policy(14), Policy(7), Policy(14, 90), Policy(14, 120)]


def cutoffs(every_days: int) -> list[date]:
    first, last = date.fromisoformat(FIRST_CUTOFF), date.fromisoformat(YEAR[1])
    return [first + timedelta(days=d) for d in range(0, (last - first).days + 1, every_days)]


class Year:
    """The labelled rows of the bundled year, fitted and scored as the model asset does."""

    def __init__(self, platform: Platform, spec):
        from assets.model_pipeline import labelled_rows
        from assets.partitions import days_between

        self.spec = spec
        every_day = days_between(date.fromisoformat(YEAR[0]), date.fromisoformat(YEAR[1]))
        self.rows = labelled_rows(platform.lake, spec, every_day)
        self.by_day = dict(tuple(self.rows.groupby("flight_date")))

    def fit(self, cutoff: date, window_days: int):
        """The version of `cutoff` as the model asset fits it, with its holdout AUC (the gate's
        evidence)."""
        from assets.partitions import preceding_days
        from assets.training import fit_candidate

        window = preceding_days(cutoff, window_days)
        rows = self.rows[self.rows["flight_date"].between(window[0], window[-1])]
        candidate = fit_candidate(self.spec, rows, window, self.spec.params)
        return candidate.estimator, candidate.metrics["auc"]

    def auc(self, estimator, rows: pd.DataFrame) -> float:
        from assets import modeling

        scores = modeling.score(estimator, self.spec, rows)
        return modeling.classification_metrics(rows["label"], scores)["auc"]

    def daily_aucs(self, estimator, first: date, last: date) -> list[float]:
        """Each day's AUC of `estimator` over first..last, as `prediction_quality` has it."""
        return [
            self.auc(estimator, rows)
            for day, rows in self.by_day.items()
            if first <= day <= last and rows["label"].nunique() == 2
        ]


def served(year: Year, policy: Policy) -> tuple[list[float], list[float]]:
    """The daily AUCs of the measured days under `policy`, and its candidates' holdout AUCs."""
    measured_first, measured_last = (date.fromisoformat(d) for d in MEASURED)
    window = policy.window_days or year.spec.window_days
    days_auc, holdouts = [], []
    plan = cutoffs(policy.every_days)
    for cutoff, following in zip(plan, [*plan[1:], measured_last + timedelta(days=1)], strict=True):
        fitted, holdout_auc = year.fit(cutoff, window)
        holdouts.append(holdout_auc)
        first, last = max(cutoff, measured_first), following - timedelta(days=1)
        if first <= last:
            days_auc += year.daily_aucs(fitted, first, last)
    return days_auc, holdouts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    from assets import MODELS

    spec = MODELS[0]
    started = time.perf_counter()
    with workspace("retraining-ceiling") as space:
        platform = Platform(space)
        ingest_and_featurize(platform, spec.name, YEAR[1])
        year = Year(platform, spec)
        first_model, _ = year.fit(date.fromisoformat(FIRST_CUTOFF), spec.window_days)
        never = statistics.mean(year.daily_aucs(first_model, *map(date.fromisoformat, MEASURED)))
        figures: list[Figure] = [
            info(
                f"mean daily AUC, never retrained after {FIRST_CUTOFF}",
                never,
                note=f"{MEASURED[0]}..{MEASURED[1]}",
            )
        ]
        details: dict[str, dict] = {}
        for policy in POLICIES:
            daily, holdouts = served(year, policy)
            name = policy.label(spec.window_days)
            mean = statistics.mean(daily)
            below = sum(auc < DEFAULT_AUC_FLOOR for auc in holdouts)
            figures += [
                info(f"{name}: mean daily AUC", mean),
                info(f"{name}: gain", mean - never),
                info(
                    f"{name}: holdouts below {DEFAULT_AUC_FLOOR}",
                    below,
                    note=f"of {len(holdouts)} candidates",
                ),
            ]
            details[name] = {"policy": asdict(policy), "holdout_aucs": holdouts}
            print(f"  {name}: {mean:.4f} (gain {mean - never:.4f})", flush=True)

    print()
    print(table("Retraining ceiling: every candidate promoted on a fixed cadence", figures))
    path = record(
        "retraining_ceiling", figures, {"spec_window_days": spec.window_days} | details, started
    )
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
