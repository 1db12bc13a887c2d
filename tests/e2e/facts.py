"""What the platform holds, read around the UI: the GraphQL API of the webserver, and the lake.

The journeys compare what the browser shows with these facts, never with hard-coded numbers.
"""

from collections import Counter
from datetime import date

import duckdb

from e2e.server import Served

ASSET_MATERIALIZATIONS = """
query Materializations($path: [String!]!, $partitions: [String!], $limit: Int) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions, limit: $limit) {
        partition
        runId
        timestamp
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on TextMetadataEntry { text }
          ... on FloatMetadataEntry { floatValue }
          ... on BoolMetadataEntry { boolValue }
        }
      }
    }
  }
}
"""

PARTITION_STATS = """
query PartitionStats($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode { partitionStats { numMaterialized numPartitions numFailed } }
  }
}
"""


def key_path(asset: str) -> list[str]:
    return asset.split("/")


def materializations(
    dev: Served, asset: str, partitions: list[str] | None = None, limit: int | None = None
) -> list[dict]:
    """Materialization events of `asset`, newest first, each with its metadata as a dict."""
    data = dev.graphql(
        ASSET_MATERIALIZATIONS,
        {"path": key_path(asset), "partitions": partitions, "limit": limit},
    )["assetOrError"]
    if data["__typename"] != "Asset":
        return []  # never materialized
    events = data["assetMaterializations"]
    for event in events:
        event["metadata"] = {
            entry["label"]: next(
                (entry[k] for k in ("intValue", "text", "floatValue", "boolValue") if k in entry),
                None,
            )
            for entry in event.pop("metadataEntries")
        }
    return events


def materialization_counts(dev: Served, asset: str, partitions: list[str]) -> Counter:
    """How many times each of `partitions` of `asset` was materialized."""
    return Counter(e["partition"] for e in materializations(dev, asset, partitions))


def materialized_partition_count(dev: Served, asset: str) -> int:
    stats = dev.graphql(PARTITION_STATS, {"path": key_path(asset)})["assetNodeOrError"]
    return stats["partitionStats"]["numMaterialized"]


def lake_days(dev: Served, table: str) -> list[str]:
    """The days of `table` present in the lake: its `date=YYYY-MM-DD` folders."""
    folder = dev.lake.root / table
    return sorted(p.name.removeprefix("date=") for p in folder.glob("date=*"))


def lake_parquet_files(dev: Served, table: str, day: str) -> list[str]:
    return sorted(
        p.name
        for p in dev.lake.partition_file(table, date.fromisoformat(day)).parent.glob("*.parquet")
    )


def lake_query(dev: Served, table: str, days: list[str], sql: str) -> list[tuple]:
    """`sql` over the partitions `days` of `table`, registered as the view `t`."""
    files = [str(dev.lake.partition_file(table, date.fromisoformat(day))) for day in days]
    con = duckdb.connect()
    con.read_parquet(files).create_view("t")
    return con.sql(sql).fetchall()


BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill {
      status
      isAssetBackfill
      partitionSetName
      runs(limit: 100) { runId status jobName tags { key value } }
    }
  }
}
"""
FINISHED_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
FINISHED_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
SENSOR_NAME_TAG = "dagster/sensor_name"  # Dagster's tag on the runs a sensor launched

ACTIVITY = """
{
  runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
    ... on Runs { count }
  }
  partitionBackfillsOrError(status: REQUESTED) { ... on PartitionBackfills { results { id } } }
}
"""

RUNS = """
query Runs($tags: [ExecutionTag!], $statuses: [RunStatus!]) {
  runsOrError(filter: {tags: $tags, statuses: $statuses}) {
    ... on Runs {
      results { runId status assetSelection { path } tags { key value } }
    }
  }
}
"""


def finished_backfill(dev: Served, backfill_id: str) -> dict | None:
    """The backfill, with its runs and their tags as dicts, once it launched all its runs and
    every one of them finished; None until then."""
    backfill = dev.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
    runs = backfill["runs"]
    if backfill["status"] not in FINISHED_BACKFILL or not runs:
        return None
    if any(run["status"] not in FINISHED_RUN for run in runs):
        return None
    for run in runs:
        run["tags"] = {tag["key"]: tag["value"] for tag in run["tags"]}
    return backfill


def busy(dev: Served) -> bool:
    """Whether any run is queued or in progress, or any backfill still has partitions to request."""
    data = dev.graphql(ACTIVITY)
    return bool(data["runsOrError"]["count"] or data["partitionBackfillsOrError"]["results"])


def runs_tagged(dev: Served, tags: dict[str, str], statuses: list[str] | None = None) -> list[dict]:
    """Runs carrying every tag of `tags` (in `statuses`, when given), newest first, with their
    tags as a dict."""
    tag_filter = [{"key": key, "value": value} for key, value in tags.items()]
    answer = dev.graphql(RUNS, {"tags": tag_filter, "statuses": statuses})
    runs = answer["runsOrError"]["results"]
    for run in runs:
        run["tags"] = {tag["key"]: tag["value"] for tag in run["tags"]}
    return runs
