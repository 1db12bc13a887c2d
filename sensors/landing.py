"""Landing sensor: ingests each file of the landing zone when it lands, and again when redelivered.

Each tick lists the landing zone once. Every file has a version (size and modification time
locally, the ETag on S3), and every version one run of the raw table the file feeds, for its day:
the run key is `landing:<file>@<version>`. A redelivered file is a new version, so it is ingested
again; the same version never twice, because a run key is used once (the sensor checks the
instance for it, and Dagster refuses a repeated key). Ingestion is idempotent: a redelivery
replaces the day exactly.

The cursor stays small (Dagster stores it with every tick): a digest of the listing, so a tick with
nothing new ends at once, and the time of the first evaluation. Files older than that whose
partition is already materialized count as ingested, so turning the sensor on beside a backfilled
lake does not ingest the whole history again.

It does nothing unless `PLATFORM_SOURCE=landing`; it is on by default, so that files dropped in
`PLATFORM_LANDING_URI` are picked up without a visit to the UI.
"""

import hashlib
import json
import time

import dagster as dg

from assets.partitions import daily_partitions
from resources.landing import DAILY_FILE, FOLDERS, LandedFile, LandingFlightSource
from resources.source_choice import SOURCE_ENV, source_from_environment
from sensors.replay import TRIGGER_TAG

LANDING_SENSOR = "landing_files"
RUN_KEY_TAG = "dagster/run_key"
TABLE_OF_FOLDER = {folder: dg.AssetKey(table) for table, folder in FOLDERS.items()}
PLANES = dg.AssetKey("raw_planes")


def run_key(key: str, landed: LandedFile) -> str:
    return f"landing:{key}@{landed.version}"


def landing_requests(
    context: dg.SensorEvaluationContext, source: LandingFlightSource
) -> dg.SensorResult:
    """One run per file version not ingested yet."""
    files = source.files()
    state = json.loads(context.cursor) if context.cursor else {"since": time.time()}
    digest = hashlib.sha256(
        json.dumps(sorted((k, f.version) for k, f in files.items())).encode()
    ).hexdigest()[:16]
    cursor = json.dumps({"since": state["since"], "listing": digest})
    if state.get("listing") == digest:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"no new or redelivered files in {source.uri}"),
            cursor=cursor,
        )
    wanted, outside = {}, []
    ingested = IngestedPartitions(context.instance)
    for key, landed in sorted(files.items()):
        daily = DAILY_FILE.fullmatch(key)
        if daily and not daily_partitions.has_partition_key(daily["day"]):
            outside.append(key)
            continue
        target = (TABLE_OF_FOLDER[daily["folder"]], daily["day"]) if daily else (PLANES, None)
        if landed.modified < state["since"] and ingested.contains(*target):
            continue  # landed before the sensor started, and ingested by a backfill
        wanted[run_key(key, landed)] = target
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
            tags={TRIGGER_TAG: "landing"},
        )
        for key, (asset, day) in wanted.items()
        if key not in used
    ]
    skip = None if requests else dg.SkipReason(f"every file in {source.uri} is ingested")
    return dg.SensorResult(run_requests=requests, skip_reason=skip, cursor=cursor)


class IngestedPartitions:
    """Which partitions of the raw tables are materialized, asked once per table and tick."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.known: dict[dg.AssetKey, set[str | None]] = {}

    def contains(self, asset: dg.AssetKey, day: str | None) -> bool:
        if asset not in self.known:
            if asset == PLANES:
                done = self.instance.get_latest_materialization_event(asset) is not None
                self.known[asset] = {None} if done else set()
            else:
                self.known[asset] = set(self.instance.get_materialized_partitions(asset))
        return day in self.known[asset]


@dg.sensor(
    name=LANDING_SENSOR,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    target=dg.AssetSelection.assets(*TABLE_OF_FOLDER.values(), PLANES),
    description=(
        "Ingests each file of the landing zone (PLATFORM_LANDING_URI) when it lands, and again "
        "when it is redelivered: one run of its raw table for its day. Idle unless "
        "PLATFORM_SOURCE=landing."
    ),
)
def landing_files(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    source = source_from_environment()
    if not isinstance(source, LandingFlightSource):
        return dg.SkipReason(f"{SOURCE_ENV} is not 'landing': there is no landing zone to watch")
    return landing_requests(context, source)
