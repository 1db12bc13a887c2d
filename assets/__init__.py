"""Software-defined assets, built from the declarations: per dataset its raw tables, per model its
features, model, predictions, drift and quality, and the notebooks either declares."""

import warnings

import dagster as dg

# Single-run backfill policies and tolerant partition mappings are marked beta in Dagster 1.13;
# they are the documented way to backfill set-wise, so their warnings are noise for whoever
# imports the assets (the code location, a notebook's kernel, a script).
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets.automation import with_daily_cycle  # noqa: E402
from assets.catalog import Catalog, load_catalog  # noqa: E402
from assets.dataset_jobs import build_dataset_jobs  # noqa: E402
from assets.drift import build_drift_assets  # noqa: E402
from assets.ingestion import build_ingestion_assets  # noqa: E402
from assets.model_pipeline import build_model_pipeline  # noqa: E402
from assets.monitoring import build_monitoring_assets  # noqa: E402
from assets.notebooks import build_notebook_assets  # noqa: E402
from assets.promotion_jobs import build_promotion_jobs  # noqa: E402


def build_assets(catalog: Catalog) -> list[dg.AssetsDefinition]:
    """Every asset of the catalog's datasets and models, with the daily cycle's conditions."""
    built = [a for dataset in catalog.datasets for a in build_ingestion_assets(dataset)]
    for spec in catalog.models:
        built += build_model_pipeline(catalog, spec)
        built += build_monitoring_assets(catalog, spec)
        built += build_drift_assets(catalog, spec)
    built += build_notebook_assets(catalog)
    return with_daily_cycle(catalog, built)


def build_asset_definitions(catalog: Catalog) -> dg.Definitions:
    jobs = [*build_promotion_jobs(catalog), *build_dataset_jobs(catalog)]
    return dg.Definitions(assets=build_assets(catalog), jobs=jobs)


CATALOG = load_catalog()
defs = build_asset_definitions(CATALOG)
