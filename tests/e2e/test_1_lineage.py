"""Journey 1: a new user browses the lineage and opens the predictions of the first model."""

import re
from collections import defaultdict
from datetime import date

from conftest import asset_graph
from playwright.sync_api import Page, expect

from assets import CATALOG
from e2e.browser import expand_all_groups, filter_asset_graph, metadata_value, screenshot
from e2e.facts import lake_days, lake_query, materializations, materialized_partition_count
from e2e.server import MODEL, Served
from resources.registry import ModelRegistry

PREDICTIONS = f"{MODEL}/predictions"
CHAIN = ["raw_flights", "features", "model", "predictions"]


def nodes_by_group() -> dict[str, set[str]]:
    """The node labels of each group of the code location (a node shows the last part of its
    key)."""
    graph = asset_graph()
    groups: dict[str, set[str]] = defaultdict(set)
    for key in graph.get_all_asset_keys():
        groups[graph.get(key).group_name].add(key.path[-1])
    return groups


def test_lineage_graph_and_latest_predictions(page: Page, served: Served) -> None:
    page.goto("/")
    page.get_by_role("link", name=re.compile(r"Lineage$")).click()
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    expand_all_groups(page)
    graph = page.locator("svg foreignObject")
    groups = nodes_by_group()
    # A group per dataset and per model, each in the graph.
    assert set(groups) == {*(d.name for d in CATALOG.datasets), *(m.name for m in CATALOG.models)}
    for group in groups:
        expect(graph.get_by_text(group, exact=True).first).to_be_visible()
    screenshot(page, "1-lineage-graph")
    # The graph draws only what is in view, and the whole is larger than the window: each
    # group's nodes, one group at a time.
    for group, labels in groups.items():
        filter_asset_graph(page, f'group:"{group}"')
        for label in labels:
            expect(graph.get_by_text(label, exact=True).first).to_be_visible()

    # Every path from raw_flights to the predictions: exactly the chain through features and the
    # model, so each of its edges exists and nothing else lies between them.
    filter_asset_graph(page, f'key:"raw_flights"+ and +key:"{PREDICTIONS}"')
    for label in ["raw_weather", "flight_outcomes", "prediction_quality", "feature_drift"]:
        expect(graph.get_by_text(label, exact=True)).to_have_count(0)
    for label in CHAIN:
        expect(graph.get_by_text(label, exact=True).first).to_be_visible()

    # The predictions node leads to the asset's page, and its partitions.
    graph.get_by_text("predictions", exact=True).click()
    expect(page.get_by_text(f"{MODEL} / predictions", exact=True)).to_be_visible()
    page.get_by_role("link", name="View in Asset Catalog").click()
    expect(page).to_have_url(re.compile(rf"/assets/{PREDICTIONS}"))
    page.get_by_role("tab", name="Partitions").click()
    scored_days = lake_days(served, PREDICTIONS)
    assert materialized_partition_count(served, PREDICTIONS) == len(scored_days)
    expect(page.get_by_text(f"Materialized ({len(scored_days)})")).to_be_visible()

    # Its latest materialization: the row count and model version shown are that day's in the lake.
    latest = materializations(served, PREDICTIONS, limit=1)[0]
    page.get_by_placeholder("Filter by name").fill(latest["partition"])
    page.get_by_text(latest["partition"], exact=True).filter(visible=True).click()
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    [(rows, versions)] = lake_query(
        served,
        PREDICTIONS,
        [latest["partition"]],
        "SELECT count(*), string_agg(DISTINCT model_version, ', ' ORDER BY model_version) FROM t",
    )
    assert metadata_value(page, "dagster/row_count") == str(rows)
    assert metadata_value(page, "model_versions") == versions
    champion = ModelRegistry(lake=served.lake).champion_at(
        MODEL, date.fromisoformat(latest["partition"])
    )
    assert versions == champion["version"], "the day is scored by the champion in force on it"
    screenshot(page, "1-lineage-predictions")
