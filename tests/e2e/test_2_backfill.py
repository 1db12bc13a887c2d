"""Journey 2: from the lineage page, a person backfills the flights of the last two weeks of the
year, far ahead of the live replay.

The backfill runs through the `Flights` job (assets/dataset_jobs.py): one run of exactly the
selected tables and days. The daily cycle then computes features, drift reports, predictions and
quality for the days whose inputs the backfill brought (the last eight: features read the
outcomes of the seven days before theirs) and leaves the first seven waiting for their history,
without failing them; the replay goes on day by day from where it stood, and no run fails.
"""

import re
from datetime import date, timedelta

import dagster as dg
from playwright.sync_api import Page, expect

from assets import CATALOG
from assets.dataset_jobs import dataset_job_name
from e2e.browser import filter_asset_graph, screenshot
from e2e.facts import (
    SENSOR_NAME_TAG,
    busy,
    finished_backfill,
    lake_days,
    lake_parquet_files,
    materialization_counts,
    materializations,
    runs_tagged,
)
from e2e.server import (
    BACKFILL_FIRST,
    BACKFILL_LAST,
    RAW_TABLES,
    REPLAY_FROM,
    Served,
    poll_until,
)
from sensors.replay import replay_sensor_name
from sensors.run_tags import RANGE_END_TAG, RANGE_START_TAG, TRIGGER_TAG, Trigger

FLIGHTS = CATALOG.tables["raw_flights"][0]
SERVED = [
    *(f"{m.name}/features" for m in CATALOG.models_of(FLIGHTS) if not m.features_from),
    *(
        f"{m.name}/{asset}"
        for m in CATALOG.models_of(FLIGHTS)
        for asset in ("predictions", "feature_drift", "prediction_quality")
    ),
]
LOOKBACK_DAYS = 7  # flight_delay's features read the outcomes of the week before
BACKFILL_TIMEOUT_S = 600
DAILY_CYCLE_TIMEOUT_S = 900
REPLAY_TIMEOUT_S = 600


def days(first: str, last: str) -> list[str]:
    return FLIGHTS.partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))


def replayed(served: Served) -> list[str]:
    """The days the flights' replay brought, in order (electricity's has a calendar of its own)."""
    tags = {TRIGGER_TAG: Trigger.REPLAY, SENSOR_NAME_TAG: replay_sensor_name(FLIGHTS)}
    runs = runs_tagged(served, tags, ["SUCCESS"])
    return sorted(run["tags"]["dagster/partition"] for run in runs)


def test_backfill_two_weeks_ahead_of_the_replay_from_the_ui(page: Page, served: Served) -> None:
    weeks = days(BACKFILL_FIRST, BACKFILL_LAST)
    for asset in [*RAW_TABLES, *SERVED]:
        assert not materialization_counts(served, asset, weeks), f"{asset} has days of {weeks}"
    replayed_before = replayed(served)

    # Lineage -> the flights group -> Materialize all -> a custom partition range.
    page.goto("/")
    page.get_by_role("link", name=re.compile(r"Lineage$")).click()
    filter_asset_graph(page, f'group:"{FLIGHTS.name}"')
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    tables = len(FLIGHTS.tables)
    expect(dialog.get_by_text(f"Launch runs to materialize {tables} assets")).to_be_visible()
    dialog.get_by_placeholder(re.compile(r"^ex: ")).fill(f"[{BACKFILL_FIRST}...{BACKFILL_LAST}]")
    dialog.get_by_placeholder(re.compile(r"^ex: ")).press("Enter")
    expect(dialog.get_by_text(f"{len(weeks)} partitions", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch backfill").click()
    created = page.get_by_text(re.compile(r"^Created backfill \w+$"))
    backfill_id = created.inner_text().split()[-1]
    page.get_by_role("link", name="View", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/runs/b/{backfill_id}"))

    # One run of the flights job over exactly the days selected, and it succeeded.
    backfill = poll_until(
        lambda: finished_backfill(served, backfill_id),
        BACKFILL_TIMEOUT_S,
        f"backfill {backfill_id} to finish",
    )
    assert not backfill["isAssetBackfill"], "a job backfill: it never extends the selection"
    [run] = backfill["runs"]
    assert run["status"] == "SUCCESS", run
    assert run["jobName"] == dataset_job_name(FLIGHTS)
    assert (run["tags"][RANGE_START_TAG], run["tags"][RANGE_END_TAG]) == (
        BACKFILL_FIRST,
        BACKFILL_LAST,
    )
    for table in RAW_TABLES:
        assert materialization_counts(served, table, weeks) == dict.fromkeys(weeks, 1), table
    page.reload()
    expect(page.get_by_text("Succeeded").first).to_be_visible()
    screenshot(page, "2-backfill")

    # The daily cycle computes the days whose history came with the backfill, once each.
    computable = weeks[LOOKBACK_DAYS:]
    poll_until(
        lambda: (
            not busy(served)
            and all(
                len(materialization_counts(served, asset, computable)) == len(computable)
                for asset in SERVED
            )
        ),
        DAILY_CYCLE_TIMEOUT_S,
        f"the daily cycle to compute {', '.join(SERVED)} for {computable[0]}..",
    )
    for asset in SERVED:
        counts = materialization_counts(served, asset, weeks)
        assert counts == dict.fromkeys(computable, 1), f"{asset}: {counts}"
        for day in computable:
            assert lake_parquet_files(served, asset, day) == ["part-0.parquet"], (asset, day)

    # Nothing spilled: every day materialized is the bootstrap's, the replay's (it may not have
    # brought a day yet on a busy machine), or one of the backfill's.
    before_first = date.fromisoformat(REPLAY_FROM) - timedelta(days=1)
    frontier = max(replayed(served), default=before_first.isoformat())
    for asset in [*RAW_TABLES, *SERVED]:
        beyond = {e["partition"] for e in materializations(served, asset)} - set(weeks)
        assert max(beyond) <= frontier, f"{asset} has days nobody asked for: {sorted(beyond)}"
        assert set(lake_days(served, asset)) - set(weeks) == beyond, asset

    # The replay goes on day by day from where it stood (before its first day, if it had not
    # brought one yet).
    start = date.fromisoformat(max(replayed_before, default=before_first.isoformat()))
    next_days = [(start + timedelta(days=i)).isoformat() for i in (1, 2)]
    poll_until(
        lambda: set(next_days) <= set(replayed(served)),
        REPLAY_TIMEOUT_S,
        f"the replay to bring {next_days}",
    )
    ingested = {e["partition"] for e in materializations(served, RAW_TABLES[0])}
    assert set(days(REPLAY_FROM, max(replayed(served)))) <= ingested, "no day was skipped"
    failed = runs_tagged(served, {}, ["FAILURE"])
    assert not failed, f"failed runs: {[(r['runId'], r['tags']) for r in failed]}"
