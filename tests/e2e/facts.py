"""What the platform holds, read around the UI: the GraphQL API of the webserver, and the lake.

The journeys compare what the browser shows with these facts, never with hard-coded numbers.
"""

from collections import Counter
from datetime import date

import duckdb

from e2e.server import DagsterDev

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
    dev: DagsterDev, asset: str, partitions: list[str] | None = None, limit: int | None = None
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


def materialization_counts(dev: DagsterDev, asset: str, partitions: list[str]) -> Counter:
    """How many times each of `partitions` of `asset` was materialized."""
    return Counter(e["partition"] for e in materializations(dev, asset, partitions))


def materialized_partition_count(dev: DagsterDev, asset: str) -> int:
    stats = dev.graphql(PARTITION_STATS, {"path": key_path(asset)})["assetNodeOrError"]
    return stats["partitionStats"]["numMaterialized"]


def lake_days(dev: DagsterDev, table: str) -> list[str]:
    """The days of `table` present in the lake: its `date=YYYY-MM-DD` folders."""
    folder = dev.lake.root / table
    return sorted(p.name.removeprefix("date=") for p in folder.glob("date=*"))


def lake_parquet_files(dev: DagsterDev, table: str, day: str) -> list[str]:
    return sorted(
        p.name
        for p in dev.lake.partition_file(table, date.fromisoformat(day)).parent.glob("*.parquet")
    )


def lake_query(dev: DagsterDev, table: str, days: list[str], sql: str) -> list[tuple]:
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
      assetBackfillData {
        assetBackfillStatuses {
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted
            numPartitionsInProgress
            numPartitionsMaterialized
            numPartitionsFailed
          }
        }
      }
    }
  }
}
"""
FINISHED_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

ACTIVITY = """
{
  runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
    ... on Runs { count }
  }
  partitionBackfillsOrError(status: REQUESTED) { ... on PartitionBackfills { results { id } } }
}
"""

RUNS = """
query Runs($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) {
    ... on Runs {
      results { runId status assetSelection { path } tags { key value } }
    }
  }
}
"""


def finished_backfill(dev: DagsterDev, backfill_id: str) -> dict | None:
    """The backfill's status and per-asset partition counts once it finished, else None."""
    backfill = dev.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
    if backfill["status"] not in FINISHED_BACKFILL:
        return None
    return {
        "status": backfill["status"],
        "assets": {
            "/".join(counts["assetKey"]["path"]): counts
            for counts in backfill["assetBackfillData"]["assetBackfillStatuses"]
        },
    }


def busy(dev: DagsterDev) -> bool:
    """Whether any run is queued or in progress, or any backfill still has partitions to request."""
    data = dev.graphql(ACTIVITY)
    return bool(data["runsOrError"]["count"] or data["partitionBackfillsOrError"]["results"])


def runs_tagged(dev: DagsterDev, tags: dict[str, str]) -> list[dict]:
    """Runs carrying every tag of `tags`, newest first, with their tags as a dict."""
    tag_filter = [{"key": key, "value": value} for key, value in tags.items()]
    runs = dev.graphql(RUNS, {"tags": tag_filter})["runsOrError"]["results"]
    for run in runs:
        run["tags"] = {tag["key"]: tag["value"] for tag in run["tags"]}
    return runs
