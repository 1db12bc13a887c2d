"""What notebooks cost: the model card of a version, and a day's notebook per day, on the bundled
flights, on a fresh temporary lake and instance.

The flights are materialized from January to `--through` (raw tables, features, each flights
model's version of 2013-03-01, predictions and quality from that cutoff); then each model's card
runs for that version, and a day's notebook (the read API, the day's predictions and labels
summarized) runs over `--days` days in one range run, one kernel a day. The figures say what a
year's backfill would add if it selected the notebooks: a card per trained version, a day's
notebook per served day. Nothing asserts a time.

    .venv/bin/python -m bench.notebooks [--through 2013-03-10] [--days 5]
"""

import argparse
import dataclasses
import tempfile
import time
import warnings
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import CATALOG, build_assets  # noqa: E402
from assets.catalog import Catalog  # noqa: E402
from assets.keys import features_key, model_key, notebook_key, predictions_key, quality_key  # noqa: E402
from assets.notebook_spec import Notebook, Trigger  # noqa: E402
from resources import platform_resources  # noqa: E402
from resources.lake import Lake  # noqa: E402
from resources.sources import Sources  # noqa: E402

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CUTOFF = "2013-03-01"
SERVED_DAYS_OF_THE_YEAR = 306  # 2013-03-01..12-31, the days a year's backfill serves
DAY_NOTEBOOK = """{
 "cells": [
  {"cell_type": "code", "execution_count": null, "id": "p", "metadata": {"tags": ["parameters"]},
   "outputs": [], "source": ["model = \\"flight_delay\\"\\nday = \\"\\"\\nlake_root = \\"\\"\\ninputs = {}"]},
  {"cell_type": "code", "execution_count": null, "id": "r", "metadata": {}, "outputs": [],
   "source": ["from assets.notebook_api import Reader\\n",
              "platform = Reader(lake_root, inputs)\\n",
              "scored = platform.predictions(model, day).merge(platform.labels(model, day))\\n",
              "scored.groupby('carrier')[['score', 'label']].mean()"]}
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
 "nbformat": 4, "nbformat_minor": 5
}"""


def with_day_notebook(folder: Path) -> Catalog:
    path = folder / "day_summary.ipynb"
    path.write_text(DAY_NOTEBOOK)
    summary = Notebook(name="day_summary", path=path, trigger=Trigger.DAY)
    models = [
        dataclasses.replace(m, notebooks=(*m.notebooks, summary)) if m.name == "flight_delay" else m
        for m in CATALOG.models
    ]
    return Catalog(CATALOG.datasets, tuple(models))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--through", default="2013-03-10", help="last day materialized")
    parser.add_argument("--days", type=int, default=5, help="days of the day's notebook run")
    args = parser.parse_args()
    flights = CATALOG.tables["raw_flights"][0]
    models = CATALOG.models_of(flights)
    with (
        tempfile.TemporaryDirectory(prefix="bench-notebooks-") as folder,
        dg.instance_for_test() as instance,
    ):
        catalog = with_day_notebook(Path(folder))
        every_asset = build_assets(catalog)
        lake = Lake(uri=f"{folder}/lake", warehouse_path=f"{folder}/warehouse.duckdb")
        resources = platform_resources(sources=Sources(kind="bundled"), lake=lake)

        def run(keys: list[dg.AssetKey], first: str, last: str) -> float:
            started = time.perf_counter()
            result = dg.materialize(
                every_asset,
                selection=keys,
                instance=instance,
                resources=resources,
                run_config=QUIET,
                tags={
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                },
            )
            if not result.success:
                raise SystemExit(f"run {result.run_id} of {keys} failed")
            return time.perf_counter() - started

        dg.materialize(
            every_asset,
            selection=[dg.AssetKey(t.name) for t in flights.registers],
            instance=instance,
            resources=resources,
            run_config=QUIET,
        )
        run([dg.AssetKey(t.name) for t in flights.daily_tables], "2013-01-01", args.through)
        run([features_key(m) for m in models if not m.features_from], "2013-01-01", args.through)
        run([model_key(m) for m in models], CUTOFF, CUTOFF)
        run([k for m in models for k in (predictions_key(m), quality_key(m))], CUTOFF, args.through)
        cards = {m.name: run([notebook_key(m.name, "model_card")], CUTOFF, CUTOFF) for m in models}
        last = (date.fromisoformat(CUTOFF) + timedelta(days=args.days - 1)).isoformat()
        day_run = run([notebook_key("flight_delay", "day_summary")], CUTOFF, last)
    per_day = day_run / args.days
    print(f"Notebook costs on the bundled flights (cutoff {CUTOFF}, {args.days} days)")
    for name, seconds in cards.items():
        print(f"  {name}/model_card, one version (one run)      {seconds:6.1f} s")
    print(f"  a day's notebook, {args.days} days in one run            {day_run:6.1f} s")
    print(f"    per day                                        {per_day:6.1f} s")
    print(
        f"  a year's backfill selecting them: +{sum(cards.values()):.0f} s for the cards of its "
        f"first versions, +{per_day * SERVED_DAYS_OF_THE_YEAR / 60:.0f} min for a day's "
        f"notebook over the {SERVED_DAYS_OF_THE_YEAR} served days"
    )


if __name__ == "__main__":
    main()
