"""Landing-zone test support shared by the quarantine, landing and security tests: the corpus
under tests/data/landing, a zone copied from it, and readers of a run's failures and checks."""

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
from conftest import QUIET, REPO_ROOT, Platform, make_lake

from assets import CATALOG
from assets import defs as asset_defs
from assets.ingestion import REJECT_RATIO
from resources import contract
from resources.sources import Sources
from sensors.failures import root_cause

CORPUS = REPO_ROOT / "tests" / "data" / "landing"
FIRST, DAY = "2013-01-01", "2013-01-03"
DAYS = [date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)]
RAW = ["raw_flights", "raw_weather", "flight_outcomes"]
FOLDER = {"raw_flights": "flights", "raw_weather": "weather", "flight_outcomes": "outcomes"}


@dataclass
class Landing:
    """A landing zone copied from the corpus, and a lake that has ingested all of it."""

    zone: Path
    platform: Platform

    def deliver(self, corpus_file: str, table: str = "raw_flights") -> Path:
        """Put a file of the corpus in the zone as `table`'s delivery for DAY."""
        target = self.zone / FOLDER[table] / f"{DAY}.csv"
        shutil.copyfile(CORPUS / "bad" / corpus_file, target)
        return target

    def ingest(
        self, tables: list[str], first: str | None = FIRST, last: str | None = DAY, **config
    ) -> dg.ExecuteInProcessResult:
        """One run over `tables` (days first..last), never raising; `config` is run config of
        every table, e.g. max_reject_ratio."""
        tags = {}
        if first is not None:
            tags = {
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last or first,
            }
        ops = {table: {"config": config} for table in tables if config and table in CATALOG.tables}
        return dg.materialize(
            list(asset_defs.assets),
            selection=tables,
            instance=self.platform.instance,
            resources=self.platform.resources,
            tags=tags,
            run_config=QUIET | ({"ops": ops} if ops else {}),
            raise_on_error=False,
        )

    def read(self, table: str, days: list[date] | None = DAYS) -> pd.DataFrame:
        return self.platform.lake.read(table, days)

    def stored(self) -> dict[str, pd.DataFrame]:
        """Every table in the lake, raw and quarantine: all the partitions it has."""
        lake = self.platform.lake
        tables = {}
        for table in lake.tables():
            if table.startswith("raw_planes"):
                tables[table] = lake.read(table)
            else:
                missing = lake.missing_partitions(table, DAYS)
                tables[table] = lake.read(table, [d for d in DAYS if d not in missing])
        return tables


def valid_rows(
    sources: Sources, table: str, first: date | None = None, last: date | None = None
) -> pd.DataFrame:
    """The rows of `table` that `sources` delivers for first..last and that meet the contract,
    with the table's types."""
    dataset, rules = CATALOG.tables[table]
    landed = sources.deliver(dataset, rules, first, last)
    return rules.conform(contract.validate(landed.rows, rules).good.to_pandas())


def failure_messages(result: dg.ExecuteInProcessResult) -> str:
    """The innermost error of every failed step."""
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return "\n".join(root_cause(e.event_specific_data.error) for e in failures)


def check_evaluation(result: dg.ExecuteInProcessResult, table: str) -> dg.AssetCheckEvaluation:
    (evaluation,) = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.asset_key == dg.AssetKey(table)
        and e.event_specific_data.check_name == REJECT_RATIO
    ]
    return evaluation


def landing_platform(folder: Path, instance: dg.DagsterInstance) -> Landing:
    """The corpus zone copied under `folder`, and an empty lake beside it."""
    zone = folder / "zone"
    shutil.copytree(CORPUS / "zone", zone)
    sources = Sources(kind="landing", landing_uri=str(zone))
    return Landing(zone, Platform(instance, sources, make_lake(folder)))
