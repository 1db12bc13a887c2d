"""Software-defined assets, built from the declarations: per dataset its raw tables, per model its
features, model, predictions, drift and quality."""

import dagster as dg

from assets.automation import with_daily_cycle
from assets.catalog import Catalog, load_catalog
from assets.dataset_jobs import build_dataset_jobs
from assets.drift import build_drift_assets
from assets.ingestion import build_ingestion_assets
from assets.model_pipeline import build_model_pipeline
from assets.monitoring import build_monitoring_assets
from assets.promotion_jobs import build_promotion_jobs


def build_assets(catalog: Catalog) -> list[dg.AssetsDefinition]:
    """Every asset of the catalog's datasets and models, with the daily cycle's conditions."""
    built = [a for dataset in catalog.datasets for a in build_ingestion_assets(dataset)]
    for spec in catalog.models:
        built += build_model_pipeline(catalog, spec)
        built += build_monitoring_assets(catalog, spec)
        built += build_drift_assets(catalog, spec)
    return with_daily_cycle(catalog, built)


def build_asset_definitions(catalog: Catalog) -> dg.Definitions:
    jobs = [*build_promotion_jobs(catalog), *build_dataset_jobs(catalog)]
    return dg.Definitions(assets=build_assets(catalog), jobs=jobs)


CATALOG = load_catalog()
defs = build_asset_definitions(CATALOG)
