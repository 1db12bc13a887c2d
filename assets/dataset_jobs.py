"""One job per dataset holding every asset of it and of its models, so that a backfill launched
from the asset graph materializes exactly the assets and days a person selected.

"Materialize" of a selection over a range of days in the UI launches a backfill of the job the
selected assets have in common. Of Dagster's hidden job of every asset, that is an asset
backfill, which extends the selection downstream through the partition mappings: features read
the outcomes of the seven days before theirs, so a backfill of the outcomes and the features of
04-22..04-28 also took in the features of 04-29..05-05, which nobody asked for and whose raw data
did not exist. Of a job of ours, it is a job backfill: one run (every daily asset backfills a
range in one run) of exactly the selected assets over exactly the selected days, in which the
days whose inputs are missing fail by name and the others are materialized (`assets.per_day`).
The CLI's `dagster asset materialize --partition-range` runs exactly its range already.

The UI takes the first common job in name order, where Dagster's `__ASSET_JOB` comes before any
lowercase name: the job is named after its dataset with a capital initial (`Flights`), which
sorts first. A selection spanning two datasets has no common job of ours and is an asset backfill.
"""

from typing import TYPE_CHECKING

import dagster as dg

from assets.catalog import Catalog
from assets.tags import DATASET_TAG
from resources.dataset import Dataset

if TYPE_CHECKING:  # Dagster does not export the type `define_asset_job` returns
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def dataset_job_name(dataset: Dataset) -> str:
    return dataset.name.capitalize()


def build_dataset_jobs(catalog: Catalog) -> list["UnresolvedAssetJobDefinition"]:
    """A job of every asset tagged with each dataset: its raw tables and its models' assets."""
    return [
        dg.define_asset_job(
            dataset_job_name(dataset),
            selection=dg.AssetSelection.tag(DATASET_TAG, dataset.name),
            partitions_def=dataset.partitions,
            description=(
                f"Every asset of {dataset.name} and of its models. A backfill launched from the "
                "asset graph runs through this job, over exactly the assets and days selected."
            ),
        )
        for dataset in catalog.datasets
    ]
