"""A model's features for a range of days: its SQL over the views of its declared inputs.

One query serves training, batch prediction and any online path, so they never diverge. Each input
is a view over the lake: the input's table for the days of the range and the lookback before
them, or the whole table of a register. Views of the label's table carry the label as a `label`
column (as a number: 1.0 and 0.0 for a condition), so features built from past labels read the
declaration rather than restate it.
"""

from datetime import date, timedelta

import duckdb
import pyarrow as pa

from assets.catalog import Catalog
from assets.model_spec import Input, ModelSpec
from resources.days import days_between
from resources.lake import Lake
from resources.scratch import scratch


def features_of_days(lake: Lake, catalog: Catalog, spec: ModelSpec, days: list[date]) -> pa.Table:
    """The features of `days` in one query over their inputs."""
    con = scratch()
    first_day = catalog.dataset_of(spec).first_day
    for name, input_ in spec.inputs.items():
        expose_input(con, lake, catalog, spec, name, input_, days, first_day)
    return con.sql(spec.features_sql.format(**spec.lookback)).to_arrow_table()


def input_days(input_: Input, days: list[date], first_day: date) -> list[date]:
    """The days of an input the features of `days` read, clipped to the first partition."""
    first = max(first_day, days[0] - timedelta(days=input_.lookback_days))
    last = days[-1] if input_.same_day else days[-1] - timedelta(days=1)
    return days_between(first, last) if first <= last else []


def inputs_of_day(
    catalog: Catalog, spec: ModelSpec, day: date, first_day: date
) -> dict[str, list[date] | None]:
    """The partitions of each table the features of `day` read (None: a whole register)."""
    needs: dict[str, list[date] | None] = {}
    for input_ in spec.inputs.values():
        if not catalog.is_daily(input_):
            needs[input_.table] = None
        else:
            read = input_days(input_, [day], first_day)
            needs[input_.table] = sorted(set(needs.get(input_.table) or []) | set(read))
    return needs


def expose_input(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    catalog: Catalog,
    spec: ModelSpec,
    name: str,
    input_: Input,
    days: list[date],
    first_day: date,
) -> None:
    """The view `name` of one input; empty (with its columns) when the range has no day of it,
    as the first day has no history."""
    source = f"{name}__source"
    if not catalog.is_daily(input_):
        lake.register(con, source, input_.table)
    elif wanted := input_days(input_, days, first_day):
        lake.register(con, source, input_.table, wanted)
    else:
        con.register(source, catalog.empty_input(input_))
    con.execute(catalog.input_view(spec, name, input_, source))
