"""Journey 4: from an asset's page, a person opens a day's drift report and the plots of drift
share and daily quality by day.

Every link goes to the report server `make run` started beside Dagster: evidently's page of the
day (drawn by evidently's own script, which the page loads from the lake), and the history pages
of the monitoring assets, one point per day.
"""

import re

from playwright.sync_api import Page, expect

from e2e.browser import metadata_value, screenshot
from e2e.facts import materializations
from e2e.server import MODEL, Served

DRIFT = f"{MODEL}/feature_drift"
QUALITY = f"{MODEL}/prediction_quality"


def open_link(page: Page, name: str) -> Page:
    """Click the link shown for the metadata entry `name`; the page it opens in a new tab."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=name, exact=True))
    with page.context.expect_page() as opened:
        row.first.get_by_role("link").first.click()
    report = opened.value
    report.wait_for_load_state()
    return report


def points_by_day(chart) -> dict[str, str]:
    """The points of a history chart: day -> value as shown, from their tooltips."""
    titles = chart.locator("circle title").all_text_contents()
    return dict(re.match(r"(\S+): (\S+) ", title).groups() for title in titles)


def test_a_drift_report_and_the_plots_by_day_open_from_the_ui(page: Page, served: Served) -> None:
    latest = materializations(served, DRIFT, limit=1)[0]
    day = latest["partition"]

    # The asset's Partitions tab -> the day -> its `report` link: evidently's page of that day.
    page.goto(f"/assets/{DRIFT}?view=partitions")
    page.get_by_placeholder("Filter by name").fill(day)
    page.get_by_text(day, exact=True).filter(visible=True).click()
    expect(page.get_by_role("cell", name="report", exact=True)).to_be_visible()
    assert metadata_value(page, "report").startswith(served.reports_url)
    report = open_link(page, "report")
    expect(report.get_by_text(f"{MODEL} feature drift on {day}")).to_be_visible()
    expect(report.get_by_text("Share of drifted columns")).to_be_visible()  # drawn by evidently
    shown = report.get_by_text(re.compile(r"^Drift is detected for [\d.]+% of columns"))
    expect(shown).to_be_visible()
    share = latest["metadata"]["drift_share"]
    assert f"{share * 100:.1f}%" in shown.inner_text()
    screenshot(report, "4-drift-report")
    report.close()

    # Its `plot` link: the share of drifted columns, a point per day computed so far.
    plot = open_link(page, "plot")
    expect(plot.get_by_role("heading", name="drift_share")).to_be_visible()
    plotted = points_by_day(plot.locator("svg").first)
    assert {e["partition"] for e in materializations(served, DRIFT)} <= set(plotted)
    assert plotted[day] == f"{share:.4g}"
    screenshot(plot, "4-drift-share-by-day")
    plot.close()

    # The quality's plot: each metric of the model, a point per judged day.
    judged = materializations(served, QUALITY, limit=1)[0]
    page.goto(f"/assets/{QUALITY}?view=partitions")
    page.get_by_placeholder("Filter by name").fill(judged["partition"])
    page.get_by_text(judged["partition"], exact=True).filter(visible=True).click()
    plot = open_link(page, "plot")
    expect(plot.get_by_role("heading", name="auc")).to_be_visible()
    plotted = points_by_day(plot.locator("svg").first)
    assert {e["partition"] for e in materializations(served, QUALITY)} <= set(plotted)
    assert plotted[judged["partition"]] == f"{judged['metadata']['auc']:.4g}"
    screenshot(plot, "4-quality-by-day")
    plot.close()
