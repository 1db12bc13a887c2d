"""The drift factory for one model: `<model>/feature_drift`, how far day D's features moved away from
the rows the champion in force on D was fitted on.

Every feature column of day D (pooled with the days before it when the model declares
`drift_pool_days`) is compared with the champion's reference sample (stored with each version,
see `ModelRegistry.reference_sample`) by evidently's distance tests: the normed Wasserstein
distance for numbers with more than 5 values, the Jensen-Shannon distance otherwise, as
evidently's `DataDriftPreset` chooses them for samples of more than 1,000 rows. Smaller samples
keep the distances too: evidently would switch to p-value tests, whose thresholds mean the
opposite, and a model of a few rows a day would see every column drift. The threshold per column
type is the model's (`Monitoring.numeric_drift`, `categorical_drift`), overridable per run
(`DriftConfig`). Each day gets a lake partition of per-column rows, per-partition metadata that
the UI plots and the retrain sensors read, and an evidently HTML report beside its partition,
linked from that metadata through the report server (`resources.reports`).

evidently's `Report` draws a plotly figure per column while it computes (about 5 s for one day of
`flight_delay`), which a year's backfill cannot afford, and its test functions take pandas
Series and redo the reference's share of the work (its standard deviation, its value counts) for
every column of every day. So the asset computes the same two distances (evidently's formulas,
its scores to twelve digits: `tests/test_drift.py` checks them against evidently's report) on
arrays, with the reference prepared once per champion, and renders the results with
evidently's own widgets and page template; the per-column charts are plotly data written directly
rather than built through plotly's object model. The page loads evidently's script from one copy
per table (`_evidently/`, as evidently's own folder save mode does) instead of embedding 3.5 MB
into every day's file.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from assets.catalog import Catalog
from assets.evidently_pages import renderer
from assets.keys import drift_key, features_key
from assets.model_pipeline import champion_dep
from assets.model_spec import ModelSpec
from assets.partitions import daily_backfill_policy, run_days, window_mapping
from assets.per_day import consecutive, lacking_inputs, merged, report_days
from assets.plots import Point, plot_link, write_history
from assets.scoring import champions_in_force
from assets.tags import asset_tags
from resources.days import days_between, row_chunks
from resources.lake import Lake
from resources.registry import ModelRegistry
from resources.reports import report_url
from resources.scratch import scratch

# Metadata names of each partition; the drift sensor reads DRIFT_SHARE and CHAMPION_VERSION.
DRIFT_SHARE = "drift_share"
DRIFTED_COLUMNS = "drifted_columns"
COLUMNS_TESTED = "columns_tested"
CHAMPION_VERSION = "champion_version"
REPORT = "report"
REPORT_FILE = "report.html"
# evidently's script and icon font, shared by every report of a table, beside the date= folders.
REPORT_ASSETS = "_evidently"
REPORT_FONT = "material-ui-icons.woff2"
HISTOGRAM_BINS = 10
NUMERIC, CATEGORICAL = "num", "cat"
# evidently tests numeric columns with more distinct values than this as continuous.
MANY_VALUES = 5
# evidently's names of its two distance tests, and the least spread it norms the distance by.
WASSERSTEIN, JENSEN_SHANNON = "Wasserstein distance (normed)", "Jensen-Shannon distance"
LEAST_SPREAD = 0.001
ONE_DAY = timedelta(days=1)
MONITORING = "monitoring"
DRIFT_COLUMNS = [
    "column",
    "column_type",
    "method",
    "threshold",
    "score",
    "drifted",
    "current_rows",
    "reference_rows",
    "champion_version",
]


class DriftConfig(dg.Config):
    """Run config of `<model>/feature_drift`: when a column counts as drifted, replacing the
    model's `Monitoring.numeric_drift` and `categorical_drift` for one run."""

    numeric_threshold: float | None = Field(
        default=None,
        description="Drifted when the numeric test's score is at least this (Wasserstein: in "
        "reference standard deviations). Empty: the model's.",
    )
    categorical_threshold: float | None = Field(
        default=None,
        description="Drifted when the categorical test's score (Jensen-Shannon distance) is at "
        "least this. Empty: the model's.",
    )

    def thresholds(self, spec: ModelSpec) -> dict[str, float]:
        """The threshold of each column type for this run."""
        numeric, categorical = self.numeric_threshold, self.categorical_threshold
        return {
            NUMERIC: spec.monitoring.numeric_drift if numeric is None else numeric,
            CATEGORICAL: spec.monitoring.categorical_drift if categorical is None else categorical,
        }


@dataclass(frozen=True)
class ColumnDrift:
    """One column of one day against the reference: evidently's test, its score and verdict, and
    both distributions for the report.

    A column with no value on either side (all missing) cannot be tested: its method is empty,
    its score NaN, and it counts neither as drifted nor in the share.
    """

    column: str
    column_type: str
    method: str
    threshold: float
    score: float
    drifted: bool
    current_rows: int
    reference_rows: int
    distributions: tuple[dict[str, list], dict[str, list]] = field(repr=False)

    @property
    def tested(self) -> bool:
        return bool(self.method)

    def row(self) -> dict:
        """The column's lake row, without the distributions."""
        return {name: getattr(self, name) for name in DRIFT_COLUMNS if hasattr(self, name)}


class Reference:
    """A champion's reference sample, prepared once for every day compared with it: present
    values (numbers sorted: the order of a sample changes no test's score, and the Wasserstein
    distance then needs no sort of its own), the distinct values with their counts, for
    evidently's choice of test, the Jensen-Shannon distance and the report's histograms, and the
    spread each numeric column's distance is normed by."""

    def __init__(self, spec: ModelSpec, sample: pd.DataFrame):
        self.types = column_types(spec)
        self.values = {
            c: present_values(sample[c].to_numpy(), self.types[c]) for c in spec.features
        }
        self.counts = {c: np.unique(v, return_counts=True) for c, v in self.values.items()}
        self.spread = {
            c: max(float(np.std(v)), LEAST_SPREAD)
            for c, v in self.values.items()
            if self.types[c] == NUMERIC and v.size
        }


def build_drift_assets(catalog: Catalog, spec: ModelSpec) -> list[dg.AssetsDefinition]:
    """The drift asset of one model."""
    dataset = catalog.dataset_of(spec)
    key = drift_key(spec)
    table = key.to_user_string()
    pool = spec.monitoring.drift_pool_days
    pooled = f" and the {pool - 1} days before it" if pool > 1 else ""

    @dg.asset(
        key=key,
        description=(
            f"How far each day's {spec.name} features{pooled} drifted from the reference sample "
            "of the champion in force that day: evidently's per-column drift tests, the share of "
            "drifted columns, and an HTML report per day beside the partition."
        ),
        group_name=spec.name,
        tags=asset_tags(MONITORING, dataset=dataset.name, model=spec.name),
        partitions_def=dataset.partitions,
        backfill_policy=daily_backfill_policy(),
        kinds={"evidently", "parquet"},
        deps=[
            dg.AssetDep(features_key(spec), partition_mapping=window_mapping(pool - 1, True)),
            champion_dep(spec),
        ],
    )
    def feature_drift(
        context: dg.AssetExecutionContext, config: DriftConfig, lake: Lake, registry: ModelRegistry
    ) -> dg.MaterializeResult:
        days = run_days(context)
        champions, unserved = champions_in_force(registry, spec, days)
        needs = {
            day: {spec.features_table: pooled_days(day, pool, dataset.first_day)} for day in days
        }
        lacking = merged(unserved, lacking_inputs(lake, needs))
        ready = [d for d in days if d not in lacking]
        references = {
            version: Reference(spec, registry.reference_sample(spec.name, version))
            for version in sorted({champions[d] for d in ready})
        }
        thresholds = config.thresholds(spec)
        metadata = {}
        for segment in consecutive(ready):
            for chunk in row_chunks(segment, lake.row_count(spec.features_table, segment)):
                read = days_between(pooled_days(chunk[0], pool, dataset.first_day)[0], chunk[-1])
                current = features_of(lake, spec, read)
                by_day = split_by_day(current, spec.day_column, column_types(spec), read)
                rows, reports = [], {}
                for day in chunk:
                    rows_seen, today = pool_days(by_day, day, pool, column_types(spec))
                    version = champions[day]
                    columns = compare(references[version], today, thresholds)
                    rows += [
                        {spec.day_column: day, **c.row(), "champion_version": version}
                        for c in columns
                    ]
                    report_key = f"{table}/date={day.isoformat()}/{REPORT_FILE}"
                    reports[report_key] = render_report(spec, day, version, rows_seen, columns)
                    metadata[day] = day_metadata(
                        columns, version, rows_seen, report_url(report_key)
                    )
                lake.write_partitions(table, drift_table(spec, rows), spec.day_column, chunk)
                write_reports(lake, table, reports)
        write_history(lake, table, f"{spec.name}: feature drift by day", drift_history(lake, spec))
        lake.refresh_warehouse([table])
        link = plot_link(table)
        return report_days(
            context, {day: values | link for day, values in metadata.items()}, lacking
        )

    return [feature_drift]


def drift_history(lake: Lake, spec: ModelSpec) -> dict[str, list[Point]]:
    """The share of drifted columns of every day in the lake, and the champion it was against."""
    table = f"{spec.name}/feature_drift"
    days = lake.partition_days(table)
    if not days:
        return {}
    con = scratch()
    lake.register(con, "drift", table, days)
    rows = con.sql(
        f"""
        SELECT strftime("{spec.day_column}", '%Y-%m-%d'),
               avg(CASE WHEN drifted THEN 1.0 ELSE 0.0 END) FILTER (WHERE method <> ''),
               any_value(champion_version)
        FROM drift GROUP BY ALL ORDER BY 1
        """
    ).fetchall()
    shares = [
        Point(day, math.nan if share is None else share, f"against {champion}")
        for day, share, champion in rows
    ]
    return {DRIFT_SHARE: shares}


def pooled_days(day: date, pool: int, first_day: date) -> list[date]:
    """The days whose features the drift of `day` reads: it and the `pool - 1` before it."""
    return days_between(max(first_day, day - (pool - 1) * ONE_DAY), day)


def pool_days(
    by_day: Mapping[date, tuple[int, dict[str, np.ndarray]]],
    day: date,
    pool: int,
    types: Mapping[str, str],
) -> tuple[int, dict[str, np.ndarray]]:
    """The rows of `day` and the `pool - 1` days before it that were read, as one sample
    (numbers sorted, as `Reference` keeps them)."""
    if pool == 1:
        return by_day[day]
    days = [d for d in (day - i * ONE_DAY for i in range(pool)) if d in by_day]
    columns = {}
    for column, kind in types.items():
        values = np.concatenate([by_day[d][1][column] for d in days])
        columns[column] = np.sort(values) if kind == NUMERIC else values
    return sum(by_day[d][0] for d in days), columns


def features_of(lake: Lake, spec: ModelSpec, days: list[date]) -> pa.Table:
    """The feature columns of `days` with their date, by date (numbers as DOUBLE), in one query.
    No test depends on the order of a day's rows, so only the days are ordered."""
    con = scratch()
    lake.register(con, "features", spec.features_table, days)
    columns = ", ".join(
        f'CAST("{c}" AS DOUBLE) AS "{c}"' if kind == NUMERIC else f'"{c}"'
        for c, kind in column_types(spec).items()
    )
    day = spec.day_column
    return con.sql(f'SELECT "{day}", {columns} FROM features ORDER BY "{day}"').to_arrow_table()


def split_by_day(
    table: pa.Table, day_column: str, types: Mapping[str, str], days: Sequence[date]
) -> dict[date, tuple[int, dict[str, np.ndarray]]]:
    """Each day's row count and present values per column (numbers sorted, as `Reference`
    keeps them), from `table` ordered by date."""
    columns = {c: table.column(c).to_numpy(zero_copy_only=False) for c in types}
    dates = table.column(day_column).to_numpy(zero_copy_only=False)
    bounds = np.searchsorted(dates, np.array([*days, days[-1] + ONE_DAY], dtype=dates.dtype))
    return {
        day: (
            int(end - start),
            {c: present_values(v[start:end], types[c]) for c, v in columns.items()},
        )
        for day, start, end in zip(days, bounds[:-1], bounds[1:], strict=True)
    }


def compare(
    reference: Reference, current: Mapping[str, np.ndarray], thresholds: Mapping[str, float]
) -> list[ColumnDrift]:
    """evidently's drift test of every feature column of `current` against `reference`."""
    return [
        column_drift(column, reference, current[column], thresholds[kind])
        for column, kind in reference.types.items()
    ]


def column_drift(
    column: str, reference: Reference, current: np.ndarray, threshold: float
) -> ColumnDrift:
    """The test evidently's `DataDriftPreset` runs on one column, on the values both sides have
    (missing and infinite values dropped, as evidently drops them)."""
    column_type, values = reference.types[column], reference.values[column]
    counted = None if column_type == NUMERIC else value_counts(current)
    distributions = histograms(column, reference, current, counted)
    if not values.size or not current.size:
        return ColumnDrift(
            column, column_type, "", math.nan, math.nan, False, len(current), len(values),
            distributions,
        )  # fmt: skip
    distinct = len(reference.counts[column][0])
    if distinct <= MANY_VALUES:  # only then can the current values change evidently's choice
        if counted is None:  # a number of few values: counted for the Jensen-Shannon distance
            counted = np.unique(current, return_counts=True)
        distinct = len(np.union1d(reference.counts[column][0], counted[0]))
    if column_type == NUMERIC and distinct > MANY_VALUES:
        method = WASSERSTEIN
        score = wasserstein_normed(values, current, reference.spread[column])
    else:  # categories are counted above; a number gets here only when it was counted too
        method = JENSEN_SHANNON
        _, ref_counts, cur_counts = aligned(reference.counts[column], counted)
        score = jensen_shannon(ref_counts, cur_counts)
    return ColumnDrift(
        column,
        column_type,
        method,
        threshold,
        reproducible(score),
        score >= threshold,
        len(current),
        len(values),
        distributions,
    )


def wasserstein_normed(reference: np.ndarray, current: np.ndarray, spread: float) -> float:
    """evidently's normed Wasserstein distance: the area between the two samples' empirical
    distribution functions (scipy's `wasserstein_distance`, on samples already sorted), divided
    by the reference's standard deviation (`spread`). The functions step only at the samples'
    distinct values, so the area is summed over those: scipy sums over every value of both,
    and a day of a hundred thousand flights has a few thousand distinct values a column."""
    values = np.union1d(distinct(reference), distinct(current))
    steps = values[:-1]
    below_ref = reference.searchsorted(steps, "right") / reference.size
    below_cur = current.searchsorted(steps, "right") / current.size
    return float(np.dot(np.abs(below_ref - below_cur), np.diff(values))) / spread


def distinct(ordered: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array, in order, in one pass."""
    if not ordered.size:
        return ordered
    first = np.empty(ordered.size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def jensen_shannon(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """evidently's Jensen-Shannon distance of two samples' counts of the same values (scipy's
    `jensenshannon`, natural logarithm, no zero filled in)."""
    p = reference_counts / reference_counts.sum()
    q = current_counts / current_counts.sum()
    mean = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero share adds nothing
        entropy = np.where(p > 0, p * np.log(p / mean), 0.0).sum()
        entropy += np.where(q > 0, q * np.log(q / mean), 0.0).sum()
    return math.sqrt(entropy / 2)


def value_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a categorical sample and their counts, by hashing: a day of
    flights is too many strings to sort."""
    counted = pd.Series(values, copy=False).value_counts(sort=False)
    return counted.index.to_numpy(), counted.to_numpy()


def aligned(
    reference: tuple[np.ndarray, np.ndarray], current: tuple[np.ndarray, np.ndarray]
) -> tuple[list, np.ndarray, np.ndarray]:
    """Both samples' counts (distinct values, counts) over every value either has, in the order
    of the values' text."""
    ref_by = dict(zip(reference[0].tolist(), reference[1].tolist(), strict=True))
    cur_by = dict(zip(current[0].tolist(), current[1].tolist(), strict=True))
    values = sorted(ref_by.keys() | cur_by.keys(), key=str)
    return (
        values,
        np.array([ref_by.get(v, 0) for v in values]),
        np.array([cur_by.get(v, 0) for v in values]),
    )


def reproducible(score: float) -> float:
    """`score` to 12 significant digits. numpy's vectorized sums round their last bit
    differently with the memory alignment of their input, so the same day scored in a year's
    backfill and in a run of its own could differ by 1e-16; a day's report must not depend on
    how a run was cut."""
    return float(f"{score:.12g}")


def column_types(spec: ModelSpec) -> dict[str, str]:
    """Every feature column, in the spec's order, with its kind."""
    return {c: NUMERIC if c in spec.numeric_features else CATEGORICAL for c in spec.features}


def present_values(values: np.ndarray, column_type: str) -> np.ndarray:
    """The values a drift test reads, as evidently cleans them: no missing values, and numbers as
    floats without infinities, sorted (the order of a sample changes no test's score, and sorted
    input halves the cost of the Wasserstein distance and bins by binary search)."""
    if column_type == NUMERIC:
        numbers = pd.to_numeric(values, errors="raise").astype(float)
        return np.sort(numbers[np.isfinite(numbers)])
    return values[pd.notna(values)]


def drift_share(columns: Sequence[ColumnDrift]) -> float:
    """Share of the tested columns that drifted; NaN when no column could be tested."""
    tested = [c for c in columns if c.tested]
    return sum(c.drifted for c in tested) / len(tested) if tested else math.nan


def drift_table(spec: ModelSpec, rows: list[dict]) -> pd.DataFrame:
    """The lake rows of a run: one per day and feature column."""
    table = pd.DataFrame(rows, columns=[spec.day_column, *DRIFT_COLUMNS])
    return table.astype(
        {
            spec.day_column: "date32[pyarrow]",
            "column": "string",
            "column_type": "string",
            "method": "string",
            "threshold": "float64",
            "score": "float64",
            "drifted": "bool",
            "current_rows": "int64",
            "reference_rows": "int64",
            "champion_version": "string",
        }
    )


def day_metadata(
    columns: Sequence[ColumnDrift], version: str, rows: int, report: str
) -> dict[str, dg.MetadataValue]:
    """One day's drift as plottable numbers, the per-column table, and the link to its report."""
    drifted = [c.column for c in columns if c.drifted]
    lines = [
        "| column | type | method | score | threshold | drifted |",
        "|:--|:--|:--|--:|--:|:--|",
        *(
            f"| {c.column} | {c.column_type} | {c.method or 'not tested: no values'} | "
            f"{c.score:.4f} | {c.threshold:g} | {'yes' if c.drifted else 'no'} |"
            for c in sorted(columns, key=lambda c: not c.drifted)  # drifted first, stable order
        ),
    ]
    return {
        DRIFT_SHARE: dg.MetadataValue.float(drift_share(columns)),
        DRIFTED_COLUMNS: dg.MetadataValue.int(len(drifted)),
        COLUMNS_TESTED: dg.MetadataValue.int(sum(c.tested for c in columns)),
        "drifted": dg.MetadataValue.text(", ".join(drifted) or "none"),
        CHAMPION_VERSION: dg.MetadataValue.text(version),
        "current_rows": dg.MetadataValue.int(rows),
        "reference_rows": dg.MetadataValue.int(max((c.reference_rows for c in columns), default=0)),
        "dagster/row_count": dg.MetadataValue.int(len(columns)),
        "by_column": dg.MetadataValue.md("\n".join(lines)),
        REPORT: dg.MetadataValue.url(report),
    }


# --- The HTML report --------------------------------------------------------------------------


def render_report(
    spec: ModelSpec, day: date, version: str, rows: int, columns: Sequence[ColumnDrift]
) -> bytes:
    """evidently's data-drift summary of one day as a page: counters, then the per-column table
    with both distributions and, per row, the two histograms side by side."""
    evidently = renderer()
    w = evidently.widgets
    colors = evidently.colors.ColorOptions()  # evidently's palette: reference grey, current red
    share = drift_share(columns)
    drifted = sum(c.drifted for c in columns)
    tested = sum(c.tested for c in columns)
    table_rows = []
    for c in sorted(columns, key=lambda c: (not c.drifted, -_sortable(c.score))):
        ref_hist, cur_hist = c.distributions
        bars = _bars(ref_hist, cur_hist, colors)
        details = w.plotly_data(title="", data=bars, layout=_bar_layout(c))
        details.id = f"distribution-{c.column}"  # stable ids: the same day renders the same page
        table_rows.append(
            w.RichTableDataRow(
                fields={
                    "column_name": c.column,
                    "column_type": c.column_type,
                    "reference_distribution": ref_hist,
                    "current_distribution": cur_hist,
                    "data_drift": "Detected" if c.drifted else "Not Detected",
                    "stattest_name": c.method or "not tested: no values",
                    "drift_score": None if math.isnan(c.score) else round(c.score, 6),
                },
                details=w.RowDetails().with_part("DATA DISTRIBUTION", info=details),
            )
        )
    histogram, sparkline = (
        w.ColumnType.HISTOGRAM,
        {"xField": "x", "yField": "y", "color": colors.primary_color},
    )
    table = w.rich_table_data(
        title=f"Drift is detected for {_percent(share)} of columns ({drifted} out of {tested}).",
        rows_per_page=len(table_rows),
        columns=[
            w.ColumnDefinition("Column", "column_name"),
            w.ColumnDefinition("Type", "column_type"),
            w.ColumnDefinition(
                "Reference Distribution", "reference_distribution", histogram, options=sparkline
            ),
            w.ColumnDefinition(
                "Current Distribution", "current_distribution", histogram, options=sparkline
            ),
            w.ColumnDefinition("Data Drift", "data_drift"),
            w.ColumnDefinition("Stat Test", "stattest_name"),
            w.ColumnDefinition("Drift Score", "drift_score"),
        ],
        data=table_rows,
    )
    widgets = [
        w.header_text(label=f"{spec.name} feature drift on {day.isoformat()}"),
        w.counter(
            counters=[
                w.CounterData("Share of drifted columns", _percent(share)),
                w.CounterData("Drifted columns", f"{drifted} of {tested}"),
                w.CounterData("Current rows (the day's)", str(rows)),
                w.CounterData(
                    "Reference rows (sample of the fitting days)",
                    str(max((c.reference_rows for c in columns), default=0)),
                ),
                w.CounterData("Champion compared against", version),
            ]
        ),
        table,
    ]
    for i, widget in enumerate(widgets):
        widget.id = f"widget-{i}"
    graphs = {g.id: _plain(g) for g in table.get_additional_graphs()}
    table.additionalGraphs = []  # passed once, as `graphs`, rather than serialized twice
    scripts = f"../{REPORT_ASSETS}"
    page = evidently.template.file_html_template(
        evidently.template.TemplateParams(
            dashboard_id=f"drift_{day.strftime('%Y%m%d')}",
            dashboard_info=_plain_dashboard()(name=f"{spec.name} feature drift", widgets=widgets),
            additional_graphs=graphs,
            embed_font=False,
            embed_lib=False,
            font_file=f"{scripts}/{REPORT_FONT}",
            include_js_files=[f"{scripts}/{_report_script()}"],
        )
    )
    return page.encode()


def histograms(
    column: str,
    reference: Reference,
    current: np.ndarray,
    counted: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[dict[str, list], dict[str, list]]:
    """Percent of the present values per bin (numeric, sorted: the same bins for both) or
    category (`counted`: the current sample's `value_counts`)."""
    if counted is None:
        ref = reference.values[column]
        ends = [a[i] for a in (ref, current) if len(a) for i in (0, -1)]
        edges = np.histogram_bin_edges(ends or [0.0], bins=HISTOGRAM_BINS)
        x = np.round(edges[:-1], 4).tolist()
        ref_bins, cur_bins = (_bin_percents(sample, edges) for sample in (ref, current))
        return {"x": x, "y": ref_bins}, {"x": x, "y": cur_bins}
    categories, ref_counts, cur_counts = aligned(reference.counts[column], counted)
    x = [str(c) for c in categories]
    return {"x": x, "y": _percents(ref_counts)}, {"x": x, "y": _percents(cur_counts)}


def _bin_percents(ordered: np.ndarray, edges: np.ndarray) -> list[float]:
    """np.histogram's counts (the last bin closed) of sorted values, by binary search."""
    cuts = np.searchsorted(ordered, edges, side="left")
    cuts[-1] = len(ordered)
    return _percents(np.diff(cuts))


def _percents(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return np.round(counts / total * 100, 3).tolist() if total else [0.0] * len(counts)


def _plain(widget) -> dict:
    """`widget.dict()` without pydantic walking, copying and checking every number of its
    `params`: they are plain lists and dicts built here, and walking them was most of a report's
    rendering time."""
    return {**widget.dict(exclude={"params"}), "params": widget.params}


@cache
def _plain_dashboard() -> type:
    """evidently's `DashboardInfo`, whose widgets become data as `_plain` makes them."""

    class PlainDashboard(renderer().dashboard.DashboardInfo):
        def dict(self, **_) -> dict:
            return {"name": self.name, "widgets": [_plain(widget) for widget in self.widgets]}

    return PlainDashboard


def _bars(reference: dict, current: dict, colors) -> list[dict]:
    """Plotly traces as plain data: the page draws them, no figure object is built here."""
    return [
        {
            "type": "bar",
            "name": name,
            "x": values["x"],
            "y": values["y"],
            "marker": {"color": color},
        }
        for name, values, color in (
            ("reference", reference, colors.get_reference_data_color()),
            ("current", current, colors.get_current_data_color()),
        )
    ]


def _bar_layout(column: ColumnDrift) -> dict:
    return {
        "barmode": "group",
        "xaxis": {"title": {"text": column.column}},
        "yaxis": {"title": {"text": "Percent"}},
        "legend": {"orientation": "h", "y": 1.1},
    }


def _sortable(score: float) -> float:
    return -1.0 if math.isnan(score) else score


def _percent(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{share * 100:.1f}%"


def _report_script() -> str:
    """Named by evidently's version, so an upgrade writes its script beside the old one and older
    reports keep the script they were made with."""
    return f"evidently-{renderer().version.__version__}.js"


@cache
def _report_assets() -> dict[str, bytes]:
    """evidently's page script and icon font, as shipped with evidently."""
    from pathlib import Path

    static = Path(renderer().template.STATIC_PATH)
    return {
        _report_script(): (static / "index.js").read_bytes(),
        REPORT_FONT: (static / REPORT_FONT).read_bytes(),
    }


def write_reports(lake: Lake, table: str, reports: dict[str, bytes]) -> None:
    """The day reports, and evidently's script and font once per table."""
    store = lake.store
    assets = {f"{table}/{REPORT_ASSETS}/{name}": data for name, data in _report_assets().items()}
    missing = {key: content for key, content in assets.items() if not store.exists(key)}
    store.put_many(missing | reports)
