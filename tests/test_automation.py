"""What runs by itself: the daily cycle's automation conditions, the live replay, the weekly retrain.

Conditions are evaluated with `dg.evaluate_automation_conditions` against a real instance in which
materializations are recorded without running anything (runless events), so each test states
exactly which partitions exist and checks exactly what the daemon would launch next.
"""

import dagster as dg
import pytest
from resources.source_choice import SOURCE_ENV

import resources
from assets import defs as asset_defs
from assets.partitions import daily_partitions
from sensors import defs as sensor_defs
from sensors.replay import (
    REPLAY_ENV,
    live_replay,
    next_replay_request,
    replay_default_status,
)
from sensors.schedules import daily_cycle, weekly_retrain

RAW = ["raw_flights", "raw_weather", "flight_outcomes"]
FEATURES, MODEL = "flight_delay/features", "flight_delay/model"
PREDICTIONS, QUALITY = "flight_delay/predictions", "flight_delay/prediction_quality"
DRIFT = "flight_delay/feature_drift"
LOCATION = dg.Definitions.merge(asset_defs, resources.defs)
ASSET_KEYS = {key.to_user_string() for key in LOCATION.resolve_asset_graph().get_all_asset_keys()}
# The drift report joins the daily cycle of each model when its asset is defined.
SERVED_DAILY = [key for key in (FEATURES, DRIFT, PREDICTIONS, QUALITY) if key in ASSET_KEYS]


def days(first: str, last: str) -> list[str]:
    return daily_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first, last))


def record(instance: dg.DagsterInstance, key: str, partitions: list[str] | None = None) -> None:
    """Record materializations of `key` as if runs had produced them."""
    for partition in partitions or [None]:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=dg.AssetKey.from_user_string(key), partition=partition
            )
        )


class Daemon:
    """Successive evaluations of the code location's automation conditions, sharing a cursor."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.cursor = None

    def tick(self) -> dict[str, list[str]]:
        """The partitions requested on this tick, by asset key."""
        result = dg.evaluate_automation_conditions(LOCATION, self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return {
            r.key.to_user_string(): sorted(r.true_subset.expensively_compute_partition_keys())
            for r in result.results
            if not r.true_subset.is_empty
        }


@pytest.fixture
def served_through_march(instance: dg.DagsterInstance) -> Daemon:
    """The last week of March ingested, featurized, served by a champion from March 1 and judged
    (enough history for April 1); the daemon has made its first evaluation."""
    record(instance, "raw_planes")
    for key in [*RAW, *SERVED_DAILY]:
        record(instance, key, days("2013-03-24", "2013-03-31"))
    record(instance, MODEL, ["2013-03-01"])
    daemon = Daemon(instance)
    assert daemon.tick() == {}, "a fresh daemon must not backfill what it finds"
    return daemon


def test_a_landed_day_runs_features_drift_predictions_and_quality_of_that_day(
    served_through_march: Daemon,
):
    for key in RAW:
        record(served_through_march.instance, key, ["2013-04-01"])
    # Months before the last partition: eager() would only ever look at 2013-12-31.
    assert served_through_march.tick() == dict.fromkeys(SERVED_DAILY, ["2013-04-01"])
    assert served_through_march.tick() == {}, "a handled day is not requested twice"


def test_a_new_champion_does_not_rewrite_past_predictions_or_drift(served_through_march: Daemon):
    record(served_through_march.instance, MODEL, ["2013-03-20"])
    assert served_through_march.tick() == {}


def test_late_outcomes_rejudge_quality_but_leave_served_features_alone(
    served_through_march: Daemon,
):
    record(served_through_march.instance, "flight_outcomes", ["2013-03-28"])
    assert served_through_march.tick() == {QUALITY: ["2013-03-28"]}


def test_features_wait_until_the_previous_days_outcomes_exist(instance: dg.DagsterInstance):
    record(instance, "raw_planes")
    record(instance, "flight_outcomes", days("2013-03-24", "2013-03-30"))
    daemon = Daemon(instance)
    daemon.tick()
    record(instance, "raw_flights", ["2013-04-01"])
    record(instance, "raw_weather", ["2013-04-01"])
    assert FEATURES not in daemon.tick(), "features of April 1 need the outcomes of March 31"
    record(instance, "flight_outcomes", ["2013-03-31"])
    assert daemon.tick()[FEATURES] == ["2013-04-01"]


def test_retraining_is_left_to_sensors_and_schedules():
    graph = LOCATION.resolve_asset_graph()
    automated = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).automation_condition is not None
    }
    assert automated == set(SERVED_DAILY)
    assert daily_cycle in sensor_defs.sensors
    assert daily_cycle.default_status == dg.DefaultSensorStatus.RUNNING


# --- the live replay ---------------------------------------------------------------------------


def test_replay_brings_the_day_after_the_newest_complete_one_once(instance: dg.DagsterInstance):
    for key in RAW:
        record(instance, key, days("2013-03-30", "2013-03-31"))
    record(instance, "raw_flights", ["2013-04-01"])  # April 1 came only partly
    request = live_replay(dg.build_sensor_context(instance=instance))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2013-04-01"
    assert request.run_key == "replay:2013-04-01"
    assert set(request.asset_selection) == {dg.AssetKey(key) for key in RAW}


def test_replay_waits_while_runs_are_in_progress(instance: dg.DagsterInstance):
    for key in RAW:
        record(instance, key, ["2013-04-01"])
    instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED))
    skipped = next_replay_request(instance)
    assert isinstance(skipped, dg.SkipReason)
    assert "2013-04-02" in skipped.skip_message


def test_replay_stops_after_the_last_day(instance: dg.DagsterInstance):
    for key in RAW:
        record(instance, key, ["2013-12-31"])
    skipped = next_replay_request(instance)
    assert isinstance(skipped, dg.SkipReason)
    assert "finished" in skipped.skip_message


def test_replay_leaves_a_landing_zone_to_its_own_sensor(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
):
    for key in RAW:
        record(instance, key, ["2013-04-01"])
    monkeypatch.setenv(SOURCE_ENV, "landing")
    assert isinstance(next_replay_request(instance), dg.SkipReason)


def test_replay_is_off_unless_switched_on(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(REPLAY_ENV, raising=False)
    assert replay_default_status() == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv(REPLAY_ENV, "on")
    assert replay_default_status() == dg.DefaultSensorStatus.RUNNING
    monkeypatch.setenv(REPLAY_ENV, "yes please")
    with pytest.raises(ValueError, match=REPLAY_ENV):
        replay_default_status()


# --- the weekly retrain ------------------------------------------------------------------------


def test_weekly_retrain_is_off_and_trains_for_the_next_day_once(instance: dg.DagsterInstance):
    assert weekly_retrain in sensor_defs.schedules
    assert weekly_retrain.default_status == dg.DefaultScheduleStatus.STOPPED
    for key in RAW:
        record(instance, key, days("2013-05-04", "2013-05-05"))
    [request] = weekly_retrain(dg.build_schedule_context(instance=instance))
    assert request.partition_key == "2013-05-06"
    assert request.asset_selection == [dg.AssetKey.from_user_string(MODEL)]

    # The run was launched; a week without new data must not retrain the same cutoff again.
    launched = request.tags | {"dagster/run_key": request.run_key}
    instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", tags=launched))
    skipped = weekly_retrain(dg.build_schedule_context(instance=instance))
    assert isinstance(skipped, dg.SkipReason)
