"""Landing sensors: per dataset, each file of the landing zone ingested when it lands, and again
when redelivered.

Each tick lists the landing zone once and keeps the files of its dataset's tables. Every file has a version (size and modification time
locally, the ETag on S3), and every version one run of the raw table the file feeds, for its day:
the run key is `landing:<file>@<version>`. A redelivered file is a new version, so it is ingested
again; the same version never twice, because a run key is used once (the sensor checks the
instance for it, and Dagster refuses a repeated key). Ingestion is idempotent: a redelivery
replaces the day exactly.

The cursor stays small (Dagster stores it with every tick): a digest of the listing, so a tick with
nothing new ends at once, and the time of the first evaluation. Files older than that whose
partition is already materialized count as ingested, so turning the sensor on beside a backfilled
lake does not ingest the whole history again.

It does nothing unless the dataset's source is the landing zone (`PLATFORM_SOURCE=landing`); it
is on by default, so that files dropped in `PLATFORM_LANDING_URI` are picked up without a visit
to the UI.
"""

import hashlib
import json
import time

import dagster as dg

from resources.dataset import Dataset
from resources.landing import DAILY_FILE, REGISTER_FILE, LandedFile, LandingZone
from resources.sources import Sources
from sensors.run_tags import RUN_KEY_TAG, TRIGGER_TAG, Trigger


def landing_sensor_name(dataset: Dataset) -> str:
    return f"{dataset.name}_landing"


def run_key(key: str, landed: LandedFile) -> str:
    return f"landing:{key}@{landed.version}"


def landing_requests(
    context: dg.SensorEvaluationContext, dataset: Dataset, zone: LandingZone
) -> dg.SensorResult:
    """One run per file version of the dataset's tables not ingested yet."""
    daily = {t.landing_name: dg.AssetKey(t.name) for t in dataset.daily_tables}
    registers = {t.landing_name: dg.AssetKey(t.name) for t in dataset.registers}
    # file -> (its version, the asset it feeds, its day)
    ours: dict[str, tuple[LandedFile, dg.AssetKey, str | None]] = {}
    for key, landed in zone.files().items():
        if (day_file := DAILY_FILE.fullmatch(key)) and day_file["name"] in daily:
            ours[key] = (landed, daily[day_file["name"]], day_file["day"])
        elif (register := REGISTER_FILE.fullmatch(key)) and register["name"] in registers:
            ours[key] = (landed, registers[register["name"]], None)
    state = json.loads(context.cursor) if context.cursor else {"since": time.time()}
    digest = hashlib.sha256(
        json.dumps(sorted((k, landed.version) for k, (landed, _, _) in ours.items())).encode()
    ).hexdigest()[:16]
    cursor = json.dumps({"since": state["since"], "listing": digest})
    if state.get("listing") == digest:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"no new or redelivered {dataset.name} files in {zone.uri}"),
            cursor=cursor,
        )
    wanted, outside = {}, []
    ingested = IngestedPartitions(context.instance)
    for key, (landed, asset, day) in sorted(ours.items()):
        if day is not None and not dataset.partitions.has_partition_key(day):
            outside.append(key)
            continue
        if landed.modified < state["since"] and ingested.contains(asset, day):
            continue  # landed before the sensor started, and ingested by a backfill
        wanted[run_key(key, landed)] = (asset, day)
    if outside:
        context.log.warning(f"ignored files for days outside the partitions: {outside[:10]}")
    used = (
        {
            run.tags[RUN_KEY_TAG]
            for run in context.instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: list(wanted)}))
        }
        if wanted
        else set()
    )
    requests = [
        dg.RunRequest(
            run_key=key,
            asset_selection=[asset],
            partition_key=day,
            tags={TRIGGER_TAG: Trigger.LANDING},
        )
        for key, (asset, day) in wanted.items()
        if key not in used
    ]
    skip = (
        None if requests else dg.SkipReason(f"every {dataset.name} file in {zone.uri} is ingested")
    )
    return dg.SensorResult(run_requests=requests, skip_reason=skip, cursor=cursor)


class IngestedPartitions:
    """Which partitions of the raw tables are materialized, asked once per table and tick."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.known: dict[dg.AssetKey, set[str | None]] = {}

    def contains(self, asset: dg.AssetKey, day: str | None) -> bool:
        if asset not in self.known:
            if day is None:
                done = self.instance.get_latest_materialization_event(asset) is not None
                self.known[asset] = {None} if done else set()
            else:
                self.known[asset] = set(self.instance.get_materialized_partitions(asset))
        return day in self.known[asset]


def build_landing_sensor(dataset: Dataset) -> dg.SensorDefinition:
    @dg.sensor(
        name=landing_sensor_name(dataset),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        target=dg.AssetSelection.assets(*(t.name for t in dataset.tables)),
        description=(
            f"Ingests each file of {dataset.name} in the landing zone (PLATFORM_LANDING_URI) "
            "when it lands, and again when it is redelivered: one run of its raw table for its "
            "day. Idle unless the dataset's source is the landing zone."
        ),
    )
    def landing(
        context: dg.SensorEvaluationContext, sources: Sources
    ) -> dg.SensorResult | dg.SkipReason:
        if sources.kind_of(dataset) != "landing":
            return dg.SkipReason(
                f"{dataset.name} does not come from the landing zone: there is nothing to watch"
            )
        return landing_requests(context, dataset, sources.landing())

    return landing
