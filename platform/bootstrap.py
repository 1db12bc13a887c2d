"""Bootstrap the embedded default: a local Dagster instance and January-March 2013 materialized.

Run by `make run` before `dagster dev`. Each step is skipped when the instance already holds all
of its partitions, so a second `make run` starts the UI at once. From there on, the live replay
(`sensors/replay.py`) brings the following days one by one and the daemon does the rest.
"""

import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import defs as asset_defs  # noqa: E402
from assets.partitions import daily_partitions  # noqa: E402
from resources import platform_resources  # noqa: E402
from resources.paths import data_dir  # noqa: E402

FIRST, LAST = "2013-01-01", "2013-03-31"
FIRST_MODEL = "2013-03-01"
STEPS = [
    ("plane register", ["raw_planes"], None),
    (
        "raw flights, weather, outcomes",
        ["raw_flights", "raw_weather", "flight_outcomes"],
        (FIRST, LAST),
    ),
    ("features", ["flight_delay/features"], (FIRST, LAST)),
    ("first model", ["flight_delay/model"], (FIRST_MODEL, FIRST_MODEL)),
    (
        "predictions, drift reports, prediction quality",
        [
            "flight_delay/predictions",
            "flight_delay/feature_drift",
            "flight_delay/prediction_quality",
        ],
        (FIRST_MODEL, LAST),
    ),
]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def prepare_instance() -> dg.DagsterInstance:
    """A DAGSTER_HOME under the data folder, configured from platform/dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(data_dir() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("dagster.yaml"), home / "dagster.yaml")
    return dg.DagsterInstance.get()


def already_done(instance: dg.DagsterInstance, keys: list[str], span: tuple | None) -> bool:
    for key in keys:
        asset_key = dg.AssetKey.from_user_string(key)
        if span is None:
            if instance.get_latest_materialization_event(asset_key) is None:
                return False
            continue
        wanted = set(daily_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(*span)))
        if not wanted <= instance.get_materialized_partitions(asset_key):
            return False
    return True


def main() -> int:
    instance = prepare_instance()
    every_asset = list(asset_defs.assets)
    resources = platform_resources()
    print(f"Bootstrapping into {data_dir()} (Dagster instance: {os.environ['DAGSTER_HOME']})")
    for number, (label, keys, span) in enumerate(STEPS, start=1):
        where = f" {span[0]}..{span[1]}" if span else ""
        prefix = f"[{number}/{len(STEPS)}] {label}{where}"
        if already_done(instance, keys, span):
            print(f"{prefix}: already materialized, kept")
            continue
        print(f"{prefix}: materializing ...", flush=True)
        started = time.perf_counter()
        tags = (
            {
                "dagster/asset_partition_range_start": span[0],
                "dagster/asset_partition_range_end": span[1],
            }
            if span
            else {}
        )
        result = dg.materialize(
            every_asset,
            selection=keys,
            instance=instance,
            resources=resources,
            tags=tags | {"platform/bootstrap": "true"},
            run_config=QUIET,
            raise_on_error=False,
        )
        if not result.success:
            print(f"{prefix}: FAILED; see run {result.run_id} in the UI", file=sys.stderr)
            return 1
        print(f"{prefix}: done in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
