"""Sensors and schedules: drift- and quality-triggered retraining, failure alerts, the daily cycle."""

import dagster as dg

from sensors.failures import run_failure_alert
from sensors.landing import landing_files
from sensors.replay import live_replay
from sensors.retrain import retrain_sensors
from sensors.schedules import daily_cycle, weekly_retrain

defs = dg.Definitions(
    sensors=[run_failure_alert, daily_cycle, live_replay, landing_files, *retrain_sensors],
    schedules=[weekly_retrain],
)
