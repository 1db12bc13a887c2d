"""A page of each monitoring asset's history by day, opened from the UI like a report.

Dagster's own partition plots (an asset's Metadata, Plots, Partitions) draw the 120 partitions
that end at today's date, whatever the calendar's end (Dagster 1.13 ignores the end when it lists
partitions newest first), so for a dataset whose days lie in the past, like the flights' 2013,
they stay empty however the metadata is written. So each run of a model's `feature_drift`,
`prediction_quality` and `model` also writes its history as one page beside its table: the share
of drifted columns per day, the daily metrics per day, each version's holdout metric per cutoff.
Every materialization links it (`plot`) through the report server (`resources.reports`).

The charts are SVG written here, without a script: a point per day placed by its date, its value
and what it belongs to (the champion that served the day, the version trained) in its tooltip.
"""

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import dagster as dg

from resources.lake import Lake
from resources.reports import report_url

# The metadata entry linking the page, and where the page lives under the asset's table.
PLOT = "plot"
PAGE = "_plots/history.html"
WIDTH, HEIGHT, MARGIN = 960, 240, 48
COLOURS = ("#4f43dd", "#d9822b", "#2b9e5f", "#c23b3b")


@dataclass(frozen=True)
class Point:
    day: str  # the partition: a day, or a model's cutoff
    value: float
    label: str  # what the point belongs to, shown in its tooltip
    series: str = ""  # points of one series are joined by lines; each series has its colour


def plot_link(table: str) -> dict[str, dg.MetadataValue]:
    """The metadata entry linking the history page of `table`."""
    return {PLOT: dg.MetadataValue.url(report_url(f"{table}/{PAGE}"))}


def write_history(
    lake: Lake, table: str, title: str, charts: Mapping[str, Sequence[Point]]
) -> None:
    """Replace the history page of `table` with `charts`, one per name."""
    lake.write_object(f"{table}/{PAGE}", history_page(title, charts))


def history_page(title: str, charts: Mapping[str, Sequence[Point]]) -> bytes:
    body = "".join(
        f"<h2>{html.escape(name)}</h2>{svg_chart(points)}" for name, points in charts.items()
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:24px}h2{font-size:15px;margin:18px 0 4px}"
        "text{font-size:11px;fill:#555}polyline{fill:none}"
        f"</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


def svg_chart(points: Sequence[Point]) -> str:
    """The points placed by their day, joined where days of one series follow each other; a day
    without a value (NaN) or missing from the lake leaves a gap. Several series get a legend."""
    shown = sorted((p for p in points if not math.isnan(p.value)), key=lambda p: p.day)
    if not shown:
        return "<p>No values yet.</p>"
    first, last = date.fromisoformat(shown[0].day), date.fromisoformat(shown[-1].day)
    low, high = min(p.value for p in shown), max(p.value for p in shown)
    span_days, span = max(1, (last - first).days), (high - low) or 1.0

    def x(point: Point) -> float:
        offset = (date.fromisoformat(point.day) - first).days
        return MARGIN + offset / span_days * (WIDTH - 2 * MARGIN)

    def y(value: float) -> float:
        return HEIGHT - MARGIN - (value - low) / span * (HEIGHT - 2 * MARGIN)

    names = list(dict.fromkeys(p.series for p in shown))
    colour = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)}
    runs: list[list[Point]] = []
    for name in names:
        for point in (p for p in shown if p.series == name):
            previous = runs[-1][-1] if runs and runs[-1][-1].series == name else None
            follows = (
                previous
                and (date.fromisoformat(point.day) - date.fromisoformat(previous.day)).days <= 1
            )
            if follows:
                runs[-1].append(point)
            else:
                runs.append([point])
    lines = "".join(
        f"<polyline stroke='{colour[run[0].series]}' points='"
        + " ".join(f"{x(p):.1f},{y(p.value):.1f}" for p in run)
        + "'/>"
        for run in runs
    )
    dots = "".join(
        f"<circle fill='{colour[p.series]}' cx='{x(p):.1f}' cy='{y(p.value):.1f}' r='3'><title>"
        f"{html.escape(f'{p.day}: {p.value:.4g} ({p.label})')}</title></circle>"
        for p in shown
    )
    legend = (
        "".join(
            f"<text x='{MARGIN + 160 * i}' y='14' fill='{colour[name]}' style='fill:{colour[name]}'>"
            f"{html.escape(name)}</text>"
            for i, name in enumerate(names)
        )
        if len(names) > 1
        else ""
    )
    axis = (
        f"<text x='{MARGIN}' y='{HEIGHT - 16}'>{first}</text>"
        f"<text x='{WIDTH - MARGIN}' y='{HEIGHT - 16}' text-anchor='end'>{last}</text>"
        f"<text x='4' y='{y(high) + 4:.1f}'>{high:.4g}</text>"
        f"<text x='4' y='{y(low) + 4:.1f}'>{low:.4g}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"role='img'>{lines}{dots}{axis}{legend}</svg>"
    )
