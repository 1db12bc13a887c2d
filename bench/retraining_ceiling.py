"""What retraining can gain at most on the bundled year: the reference for the replay's gain.

The replay (`bench/replay_retraining.py`) measures what the drift and quality sensors gain over a
model never retrained after its first cutoff. This script measures what any retraining policy
could gain with the same model: a version for every cutoff on a fixed cadence from the first
cutoff, each fitted as the model asset fits it (`bench/fitting.py`) and promoted unconditionally
(no sensor, no gate), serving until the next cutoff. The figure is the mean daily gate metric
from June to December against the never-retrained model, as in the replay, for the spec's window
and cadences, and for longer windows. It also counts the holdouts the gate's limit would refuse.
On a fresh temporary lake (raw tables and features of the year, in-process runs as in the
replay); not part of `make bench`.

    .venv/bin/python -m bench.retraining_ceiling                 # flight_delay, about five minutes
    .venv/bin/python -m bench.retraining_ceiling --model arrival_delay
"""

import argparse
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta

from bench.fitting import Year
from bench.harness import DailyGraph, Figure, info, report, stop_cleanly_on_sigterm, workspace
from bench.inprocess import InProcess, ingest_and_featurize
from bench.replay_retraining import MEASURED_FROM_MONTH_DAY


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


def cutoffs(first: date, last: date, every_days: int) -> list[date]:
    return [first + timedelta(days=d) for d in range(0, (last - first).days + 1, every_days)]


def served(
    year: Year, policy: Policy, first: date, measured: tuple[date, date]
) -> tuple[list[float], list[float]]:
    """The daily values of the measured days under `policy`, and its candidates' holdout values."""
    days_values, holdouts = [], []
    plan = cutoffs(first, measured[1], policy.every_days)
    for cutoff, following in zip(plan, [*plan[1:], measured[1] + timedelta(days=1)], strict=True):
        fitted, holdout = year.fit(cutoff, policy.window_days)
        holdouts.append(holdout)
        start, end = max(cutoff, measured[0]), following - timedelta(days=1)
        if start <= end:
            days_values += year.daily(fitted, start, end)
    return days_values, holdouts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="flight_delay", help="the model (flight_delay)")
    args = parser.parse_args(argv)
    stop_cleanly_on_sigterm()
    from assets import CATALOG
    from assets.metrics import METRICS

    spec = CATALOG.model(args.model)
    graph = DailyGraph.from_definitions(CATALOG.dataset_of(spec).name, [spec.name])
    first = CATALOG.first_cutoff(spec)
    measured = (
        date.fromisoformat(graph.first_day[:4] + MEASURED_FROM_MONTH_DAY),
        date.fromisoformat(graph.last_day),
    )
    metric = spec.gate_metric
    refused = METRICS[metric].worse
    started = time.perf_counter()
    with workspace("retraining-ceiling") as space:
        runner = InProcess(space)
        ingest_and_featurize(runner, graph, graph.last_day)
        year = Year(runner.lake, spec)
        first_model, _ = year.fit(first)
        never = statistics.mean(year.daily(first_model, *measured))
        figures: list[Figure] = [
            info(
                f"mean daily {metric}, never retrained after {first}",
                never,
                note=f"{measured[0]}..{measured[1]}",
            )
        ]
        details: dict[str, dict] = {}
        for policy in POLICIES:
            daily, holdouts = served(year, policy, first, measured)
            name = policy.label(spec.window_days)
            mean = statistics.mean(daily)
            gain = (mean - never) * (1 if spec.higher_is_better else -1)
            below = sum(refused(value, spec.gate_limit) for value in holdouts)
            figures += [
                info(f"{name}: mean daily {metric}", mean),
                info(f"{name}: gain", gain, note="positive: better than never retrained"),
                info(
                    f"{name}: holdouts the gate's limit {spec.gate_limit} refuses",
                    below,
                    note=f"of {len(holdouts)} candidates",
                ),
            ]
            details[name] = {"policy": asdict(policy), f"holdout_{metric}": holdouts}
            print(f"  {name}: {mean:.4f} (gain {gain:.4f})", flush=True)

    report(
        f"retraining_ceiling-{spec.name}",
        f"Retraining ceiling of {spec.name}: every candidate promoted on a fixed cadence",
        figures,
        {"spec_window_days": spec.window_days} | details,
        started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
