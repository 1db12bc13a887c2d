"""Replay of the bundled 2013 year from 2013-03-01 with only the drift and quality sensors deciding
retrains, against a model never retrained after 2013-03-01.

How (in-process, on a fresh temporary lake and Dagster instance):

1. The plane register, and the raw tables and features of the whole year, one run each (features
   never depend on a model, so they are what the daily cycle would compute day by day); then
   the first model, cutoff 2013-03-01, the one `make run` trains.
2. The replay: for each day D from 2013-03-01 to 2013-12-31, one run of what the daily cycle runs
   when D lands (`<model>/predictions`, `<model>/feature_drift`, `<model>/prediction_quality` of
   D), then one tick of each retrain sensor (`sensors.retrain.drift_tick` and `quality_tick`,
   with the settings of the environment: the defaults unless `PLATFORM_DRIFT_*` /
   `PLATFORM_QUALITY_*` / `PLATFORM_RETRAIN_*` say otherwise) against the instance. Each run
   request is executed at once, as the daemon would, before D+1 arrives (the live replay waits
   for running runs the same way); a run key is launched once.
3. The baseline: a copy of the lake of step 1 in which the 2013-03-01 model serves every day
   (predictions and quality of March to December in one run each).

The tick functions are the sensors' own code, evaluated against the same instance state the
daemon's sensors would see after each day, so the decisions are those of a daemon whose sensors
tick once per replayed day. Running the daemon itself would cost two process launches per day
(hours for the year) without changing a decision.

Figures: retrains (count, cutoffs, trigger, gate), mean daily AUC from June to December of the
replay and of the baseline (the mean of the per-day `auc` of `<model>/prediction_quality`), and
their difference. Targets (issue 4): more than one retrain, far fewer than daily (at most one
day in ten here), and an AUC gain of at least 0.03.

    .venv/bin/python -m bench.replay_retraining            # the year (about 7 minutes)
    .venv/bin/python -m bench.replay_retraining --through 2013-04-15   # a smoke run
"""

import argparse
import math
import shutil
import sys
import time
import warnings
from dataclasses import asdict
from datetime import date

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import MODELS  # noqa: E402
from assets import defs as asset_defs  # noqa: E402
from bench.harness import (  # noqa: E402
    Figure,
    Workspace,
    at_least,
    days,
    info,
    record,
    table,
    workspace,
)
from resources import platform_resources  # noqa: E402
from resources.sources import BundledFlightSource  # noqa: E402
from sensors.retrain import RetrainSettings, drift_tick, quality_tick  # noqa: E402

YEAR = ("2013-01-01", "2013-12-31")
FIRST_CUTOFF = "2013-03-01"
MEASURED = ("2013-06-01", "2013-12-31")
TARGET_GAIN = 0.03
MAX_RETRAIN_SHARE = 0.1  # "far less than daily": at most one replayed day in ten
QUIET = {
    "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}
}  # gate failures are reported below
RUN_KEY_TAG = "dagster/run_key"


class Platform:
    """In-process runs of the code location's assets on a workspace, with the bundled source."""

    def __init__(self, space: Workspace):
        self.space = space
        self.lake = space.lake()
        self.resources = platform_resources(source=BundledFlightSource(), lake=self.lake)

    def materialize(
        self,
        keys: list[str] | list[dg.AssetKey],
        first: str | None = None,
        last: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> dg.ExecuteInProcessResult:
        """One run of `keys` over first..last (one day when `last` is omitted)."""
        span = {}
        if first is not None:
            span = {
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last or first,
            }
        return dg.materialize(
            list(asset_defs.assets),
            selection=keys,
            instance=self.space.instance,
            resources=self.resources,
            tags=span | (tags or {}),
            run_config=QUIET,
            raise_on_error=False,
        )

    def must(self, label: str, result: dg.ExecuteInProcessResult) -> None:
        if not result.success:
            errors = [
                event.event_specific_data.error.to_string()
                for event in result.all_events
                if event.is_step_failure
            ]
            raise RuntimeError(f"{label}: run {result.run_id} failed:\n" + "\n".join(errors))


def ingest_and_featurize(platform: Platform, model: str, last: str) -> None:
    """The plane register, and the raw tables and features of 2013-01-01..`last`: what every
    day needs before any model, one run each."""
    platform.must("raw_planes", platform.materialize(["raw_planes"]))
    raw = ["raw_flights", "raw_weather", "flight_outcomes"]
    platform.must("raw tables", platform.materialize(raw, YEAR[0], last))
    platform.must("features", platform.materialize([f"{model}/features"], YEAR[0], last))


def bootstrap(platform: Platform, model: str, last: str) -> None:
    """Step 1: what every day needs before any model, and the first model."""
    ingest_and_featurize(platform, model, last)
    platform.must("first model", platform.materialize([f"{model}/model"], FIRST_CUTOFF))


def replay(
    platform: Platform, model: str, last: str, settings: RetrainSettings
) -> tuple[list[dict], float]:
    """Step 2: day by day, the daily cycle then the sensors; returns the retrains and seconds."""
    cycle = [f"{model}/predictions", f"{model}/feature_drift", f"{model}/prediction_quality"]
    instance, launched, retrains = platform.space.instance, set(), []
    started = time.perf_counter()
    for number, day in enumerate(days(FIRST_CUTOFF, last), start=1):
        platform.must(f"daily cycle {day}", platform.materialize(cycle, day))
        for tick in (drift_tick, quality_tick):
            result = tick(instance, model, settings)
            for request in getattr(result, "run_requests", None) or []:
                if request.run_key in launched:
                    continue
                launched.add(request.run_key)
                outcome = platform.materialize(
                    request.asset_selection,
                    request.partition_key,
                    tags=dict(request.tags) | {RUN_KEY_TAG: request.run_key},
                )
                retrains.append(describe_retrain(platform, model, day, request, outcome))
                print(
                    f"  {day}: {request.tags['platform/trigger']} retrain, cutoff "
                    f"{request.partition_key}: "
                    f"{'promoted' if retrains[-1]['promoted'] else 'not promoted'}",
                    flush=True,
                )
        if number % 30 == 0:
            print(f"  replayed {number} days ({time.perf_counter() - started:.0f}s)", flush=True)
    return retrains, time.perf_counter() - started


def describe_retrain(
    platform: Platform,
    model: str,
    judged: str,
    request: dg.RunRequest,
    outcome: dg.ExecuteInProcessResult,
) -> dict:
    """What a retrain was asked for and what became of it, from the registry."""
    registry = platform.resources["registry"]
    cutoff = request.partition_key
    versions = [r for r in registry.versions(model) if r["partition"] == cutoff]
    version = versions[-1] if versions else None
    promoted = any(
        e["action"] == "promote" and e["version"] == (version or {}).get("version")
        for e in registry.history(model)
    )
    return {
        "judged_day": judged,
        "cutoff": cutoff,
        "trigger": request.tags.get("platform/trigger", ""),
        "reason": request.tags.get("platform/trigger_reason", ""),
        "run_succeeded": outcome.success,
        "version": (version or {}).get("version"),
        "holdout_auc": (version or {}).get("metrics", {}).get("auc"),
        "gate": (version or {}).get("gate", {}).get("reason"),
        "promoted": promoted,
    }


def baseline(fixed: Workspace, bootstrapped: Workspace, model: str, last: str) -> float:
    """Step 3: the first model serving every day, on a copy of the bootstrapped lake."""
    shutil.copytree(bootstrapped.lake_root, fixed.lake_root)
    platform = Platform(fixed)
    started = time.perf_counter()
    for key in (f"{model}/predictions", f"{model}/prediction_quality"):
        platform.must(f"baseline {key}", platform.materialize([key], FIRST_CUTOFF, last))
    return time.perf_counter() - started


def mean_daily_auc(space: Workspace, model: str, first: str, last: str) -> tuple[float, int]:
    """The mean over days of each day's AUC (one model version serves each day here)."""
    quality = space.lake().read(
        f"{model}/prediction_quality", [date.fromisoformat(d) for d in days(first, last)]
    )
    by_day = quality.groupby("flight_date")["auc"].mean().dropna()
    return float(by_day.mean()) if len(by_day) else math.nan, len(by_day)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--through", default=YEAR[1], help="last replayed day (default 2013-12-31)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspaces")
    args = parser.parse_args(argv)
    last = args.through
    model = MODELS[0].name
    settings = RetrainSettings.from_env()
    started = time.perf_counter()
    print(f"Replay {FIRST_CUTOFF}..{last} of the bundled data; sensor settings: {settings}")
    with workspace("replay", keep=args.keep) as live, workspace("fixed", keep=args.keep) as fixed:
        platform = Platform(live)
        bootstrap(platform, model, last)
        print(f"bootstrapped in {time.perf_counter() - started:.0f}s; replaying ...", flush=True)
        baseline_seconds = baseline(fixed, live, model, last)
        retrains, replay_seconds = replay(platform, model, last, settings)
        # A smoke run ending before June measures what it replayed.
        measured = (MEASURED[0], last) if last >= MEASURED[0] else (FIRST_CUTOFF, last)
        retrained_auc, measured_days = mean_daily_auc(live, model, *measured)
        fixed_auc, _ = mean_daily_auc(fixed, model, *measured)

    replayed = len(days(FIRST_CUTOFF, last))
    promoted = [r for r in retrains if r["promoted"]]
    gain = retrained_auc - fixed_auc
    figures: list[Figure] = [
        info("days replayed", replayed, note=f"{FIRST_CUTOFF}..{last}"),
        Figure(
            "retrains requested",
            len(retrains),
            target=f"> 1 and <= {MAX_RETRAIN_SHARE:.0%} of days",
            within=1 < len(retrains) <= MAX_RETRAIN_SHARE * replayed,
            note=", ".join(f"{r['cutoff']} ({r['trigger']})" for r in retrains),
        ),
        info("retrains promoted", len(promoted), note=", ".join(r["cutoff"] for r in promoted)),
        info(
            "mean daily AUC, retrained by sensors",
            retrained_auc,
            note=f"{measured[0]}..{measured[1]}, {measured_days} days",
        ),
        info("mean daily AUC, never retrained after 2013-03-01", fixed_auc),
        at_least("AUC gain", gain, TARGET_GAIN, ""),
        info("replay seconds per day", replay_seconds / replayed, "s", note="cycle run + ticks"),
    ]
    print()
    print(
        table("Retraining replay: drift and quality sensors vs. a never-retrained model", figures)
    )
    details = {
        "settings": asdict(settings),
        "retrains": retrains,
        "replay_seconds": round(replay_seconds, 1),
        "baseline_seconds": round(baseline_seconds, 1),
        "measured_days": list(measured),
    }
    print(f"\nwritten to {record('replay_retraining', figures, details, started)}")
    return 0 if all(f.within is not False for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
