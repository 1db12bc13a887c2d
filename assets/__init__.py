"""Software-defined assets: ingestion, and per model its features, training, predictions and monitoring."""

import dagster as dg

from assets.automation import with_daily_cycle
from assets.drift import build_drift_assets
from assets.flight_delay import FLIGHT_DELAY
from assets.ingestion import ingestion_assets
from assets.model_pipeline import build_model_pipeline
from assets.monitoring import build_monitoring_assets
from assets.promotion_jobs import promotion_jobs

MODELS = [FLIGHT_DELAY]

defs = dg.Definitions(
    assets=with_daily_cycle(
        MODELS,
        *ingestion_assets,
        *(a for spec in MODELS for a in build_model_pipeline(spec)),
        *(a for spec in MODELS for a in build_monitoring_assets(spec)),
        *(a for spec in MODELS for a in build_drift_assets(spec)),
    ),
    jobs=promotion_jobs,
)
