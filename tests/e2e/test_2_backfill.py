"""Journey 2: a user backfills a week that was never ingested, and the daily graph fills in once.

The user backfills the raw tables of the week from the lineage page; the daily cycle (the
platform's automation) then computes features, drift reports, predictions and quality for those
days. Every partition of the week must then exist exactly once: one materialization per asset and
day in Dagster's event log, one file per day in the lake, one row per flight.
"""

import re

import dagster as dg
from playwright.sync_api import Page, expect

from assets.partitions import daily_partitions
from e2e.browser import filter_asset_graph, screenshot
from e2e.facts import (
    busy,
    finished_backfill,
    lake_days,
    lake_parquet_files,
    lake_query,
    materialization_counts,
)
from e2e.server import (
    BACKFILL_FIRST,
    BACKFILL_LAST,
    DAILY_GRAPH,
    MODEL,
    RAW_TABLES,
    SYNTHETIC,
    DagsterDev,
    poll_until,
)

# Tables with one row per flight, identified by (flight_date, carrier, flight, origin).
PER_FLIGHT = ["raw_flights", "flight_outcomes", f"{MODEL}/features", f"{MODEL}/predictions"]
BACKFILL_TIMEOUT_S = 300
DAILY_CYCLE_TIMEOUT_S = 420


def test_backfill_a_week_from_the_ui(page: Page, dagster_dev: DagsterDev) -> None:
    week = daily_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(BACKFILL_FIRST, BACKFILL_LAST)
    )
    for asset in DAILY_GRAPH:
        assert not materialization_counts(dagster_dev, asset, week), f"{asset} already has {week}"
        assert not set(week) & set(lake_days(dagster_dev, asset)), f"{asset} in the lake already"

    # Lineage -> filter the raw tables -> Materialize all -> a custom partition range.
    page.goto("/")
    page.get_by_role("link", name=re.compile(r"Lineage$")).click()
    filter_asset_graph(page, " or ".join(f'key:"{table}"' for table in RAW_TABLES))
    page.get_by_role("button", name="Materialize all").click()
    dialog = page.get_by_role("dialog")
    expect(
        dialog.get_by_text(f"Launch runs to materialize {len(RAW_TABLES)} assets")
    ).to_be_visible()
    dialog.get_by_placeholder(re.compile(r"^ex: ")).fill(f"[{BACKFILL_FIRST}...{BACKFILL_LAST}]")
    dialog.get_by_placeholder(re.compile(r"^ex: ")).press("Enter")
    expect(dialog.get_by_text(f"{len(week)} partitions", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch backfill").click()
    created = page.get_by_text(re.compile(r"^Created backfill \w+$"))
    backfill_id = created.inner_text().split()[-1]
    page.get_by_role("link", name="View", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/runs/b/{backfill_id}"))

    backfill = poll_until(
        lambda: finished_backfill(dagster_dev, backfill_id),
        BACKFILL_TIMEOUT_S,
        f"backfill {backfill_id} to finish",
    )
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert sorted(backfill["assets"]) == sorted(RAW_TABLES)
    for counts in backfill["assets"].values():
        assert counts["numPartitionsMaterialized"] == len(week), counts
    page.reload()
    expect(page.get_by_text("100% completed")).to_have_count(len(RAW_TABLES))
    screenshot(page, "2-backfill")

    # The daily cycle computes the rest of each day; then nothing runs twice.
    poll_until(
        lambda: (
            not busy(dagster_dev)
            and all(
                len(materialization_counts(dagster_dev, asset, week)) == len(week)
                for asset in DAILY_GRAPH
            )
        ),
        DAILY_CYCLE_TIMEOUT_S,
        f"the daily cycle to compute {', '.join(DAILY_GRAPH[3:])} for {BACKFILL_FIRST}..",
    )
    for asset in DAILY_GRAPH:
        counts = materialization_counts(dagster_dev, asset, week)
        assert counts == dict.fromkeys(week, 1), f"{asset}: materializations per day {counts}"
        for day in week:
            files = lake_parquet_files(dagster_dev, asset, day)
            assert files == ["part-0.parquet"], f"{asset} {day}: {files}"
    for table in PER_FLIGHT:
        [(rows, flights, days)] = lake_query(
            dagster_dev,
            table,
            week,
            "SELECT count(*), count(DISTINCT (flight_date, carrier, flight, origin)), "
            "count(DISTINCT flight_date) FROM t",
        )
        assert rows == flights == len(week) * SYNTHETIC["flights_per_day"], (table, rows, flights)
        assert days == len(week), table
