"""Sensors and schedules built from the declarations: per dataset its replay and landing sensors,
per model its drift and quality retrains and its rollout decision, per dataset with models its
weekly retrain; the daily cycle, failure alerts, the end of runs whose process is gone, and the
MLflow mirror's catch-up when a tracking URI is set."""

import dagster as dg

from assets import CATALOG
from assets.catalog import Catalog
from resources import settings
from sensors.dead_runs import dead_runs
from sensors.failures import run_failure_alert
from sensors.landing import build_landing_sensor
from sensors.mlflow_catch_up import build_catch_up_sensor
from sensors.replay import build_replay_sensor
from sensors.retrain import build_retrain_sensors
from sensors.rollout import build_rollout_sensor
from sensors.schedules import build_daily_cycle, build_weekly_retrain


def build_sensor_definitions(catalog: Catalog) -> dg.Definitions:
    sensors = [run_failure_alert, dead_runs, build_daily_cycle()]
    for dataset in catalog.datasets:
        sensors += [build_replay_sensor(dataset), build_landing_sensor(dataset)]
    for spec in catalog.models:
        sensors += [*build_retrain_sensors(catalog, spec), build_rollout_sensor(spec)]
    if settings.mlflow_tracking_uri():
        sensors.append(build_catch_up_sensor(catalog))
    schedules = [
        build_weekly_retrain(catalog, dataset)
        for dataset in catalog.datasets
        if catalog.models_of(dataset)
    ]
    return dg.Definitions(sensors=sensors, schedules=schedules)


defs = build_sensor_definitions(CATALOG)
