"""What runs by itself: the daily cycle's automation conditions, the live replay, the weekly retrain.

Conditions are evaluated with `dg.evaluate_automation_conditions` against a real instance in which
materializations are recorded without running anything (runless events), so each test states
exactly which partitions exist and checks exactly what the daemon would launch next.
"""

import dagster as dg
import pytest

import resources
from assets import CATALOG
from assets import defs as asset_defs
from assets.keys import features_key, model_key, notebook_key, quality_key, served_keys
from assets.notebook_spec import Trigger
from resources import settings
from resources.sources import Sources
from sensors import defs as sensor_defs
from sensors.replay import build_replay_sensor, next_replay_request, replay_sensor_name
from sensors.schedules import DAILY_CYCLE_SENSOR, weekly_retrain_name

RAW = ["raw_flights", "raw_weather", "flight_outcomes"]
FEATURES, MODEL = "flight_delay/features", "flight_delay/model"
LOCATION = dg.Definitions.merge(asset_defs, resources.defs)
FLIGHTS = CATALOG.tables["raw_flights"][0]
BUNDLED = Sources(kind="bundled")
daily_partitions = FLIGHTS.partitions
SENSORS = {sensor.name: sensor for sensor in sensor_defs.sensors}
SCHEDULES = {schedule.name: schedule for schedule in sensor_defs.schedules}
daily_cycle = SENSORS[DAILY_CYCLE_SENSOR]
weekly_retrain = SCHEDULES[weekly_retrain_name(FLIGHTS)]
FLIGHT_MODELS = CATALOG.models_of(FLIGHTS)
# What the daily cycle runs for a landed day of the flights: every flights model's features (when
# it computes its own), drift, predictions and quality.
SERVED_DAILY = sorted(
    key.to_user_string()
    for spec in FLIGHT_MODELS
    for key in (*([] if spec.features_from else [features_key(spec)]), *served_keys(spec))
)


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
    for spec in FLIGHT_MODELS:
        record(instance, model_key(spec).to_user_string(), ["2013-03-01"])
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
    """A new version brings its own notebooks (its model card) of its cutoff, and nothing else."""
    record(served_through_march.instance, MODEL, ["2013-03-20"])
    spec = CATALOG.model("flight_delay")
    per_version = [n for n in spec.notebooks if n.trigger == Trigger.VERSION]
    assert per_version, "flight_delay ships its model card"
    assert served_through_march.tick() == {
        notebook_key(spec.name, n.name).to_user_string(): ["2013-03-20"] for n in per_version
    }
    assert served_through_march.tick() == {}, "a version's notebook is requested once"


def test_late_outcomes_rejudge_quality_but_leave_served_features_alone(
    served_through_march: Daemon,
):
    record(served_through_march.instance, "flight_outcomes", ["2013-03-28"])
    assert served_through_march.tick() == {
        quality_key(spec).to_user_string(): ["2013-03-28"] for spec in FLIGHT_MODELS
    }


def test_a_new_plane_register_recomputes_no_past_day(served_through_march: Daemon):
    record(served_through_march.instance, "raw_planes")
    assert served_through_march.tick() == {}, "days already served keep what they were served"


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


def test_every_model_serves_daily_and_retraining_is_left_to_sensors_and_schedules():
    graph = LOCATION.resolve_asset_graph()
    automated = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).automation_condition is not None
    }
    expected = set()
    for spec in CATALOG.models:
        expected |= {
            f"{spec.name}/{a}" for a in ("predictions", "feature_drift", "prediction_quality")
        }
        if not spec.features_from:
            expected.add(f"{spec.name}/features")
    for owner, _, _, notebook in CATALOG.notebook_owners():
        expected.add(notebook_key(owner, notebook.name).to_user_string())
    assert automated == expected
    assert not any(key.endswith("/model") for key in automated)
    assert daily_cycle.default_status == dg.DefaultSensorStatus.RUNNING


# --- the live replay ---------------------------------------------------------------------------


def replay(instance: dg.DagsterInstance, sources: Sources = BUNDLED):
    return next_replay_request(instance, FLIGHTS, sources)


def test_replay_brings_the_oldest_day_not_ingested_once(instance: dg.DagsterInstance):
    for key in RAW:
        record(instance, key, days("2013-01-01", "2013-03-31"))
    record(instance, "raw_flights", ["2013-04-01"])  # April 1 came only partly
    sensor = build_replay_sensor(FLIGHTS)
    request = sensor(dg.build_sensor_context(instance=instance, resources={"sources": BUNDLED}))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2013-04-01"
    assert request.run_key == "replay:flights:2013-04-01"
    assert set(request.asset_selection) == {dg.AssetKey(key) for key in RAW}


def test_a_backfill_ahead_of_the_replay_never_makes_it_skip_a_day(instance: dg.DagsterInstance):
    for key in RAW:
        record(instance, key, days("2013-01-01", "2013-04-06"))
        record(instance, key, days("2013-04-22", "2013-04-28"))  # backfilled from the UI
    assert replay(instance).partition_key == "2013-04-07"
    for key in RAW:
        record(instance, key, days("2013-04-07", "2013-04-21"))
    assert replay(instance).partition_key == "2013-04-29", "the backfilled week is passed over"


def test_replay_waits_while_runs_are_in_progress(instance: dg.DagsterInstance):
    for key in RAW:
        record(instance, key, days("2013-01-01", "2013-04-01"))
    instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED))
    skipped = replay(instance)
    assert isinstance(skipped, dg.SkipReason)
    assert "2013-04-02" in skipped.skip_message


def test_replay_stops_after_the_last_day(instance: dg.DagsterInstance):
    for key in RAW:
        record(instance, key, days("2013-01-01", "2013-12-31"))
    skipped = replay(instance)
    assert isinstance(skipped, dg.SkipReason)
    assert "finished" in skipped.skip_message


def test_replay_leaves_a_landing_zone_to_its_own_sensor(instance: dg.DagsterInstance):
    for key in RAW:
        record(instance, key, ["2013-04-01"])
    skipped = replay(instance, Sources(kind="landing", landing_uri="/nowhere"))
    assert isinstance(skipped, dg.SkipReason) and "landing" in skipped.skip_message


def test_every_dataset_has_its_replay_off_unless_switched_on(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(settings.REPLAY_ENV, raising=False)
    for dataset in CATALOG.datasets:
        assert replay_sensor_name(dataset) in SENSORS
        assert build_replay_sensor(dataset).default_status == dg.DefaultSensorStatus.STOPPED
    monkeypatch.setenv(settings.REPLAY_ENV, "on")
    assert build_replay_sensor(FLIGHTS).default_status == dg.DefaultSensorStatus.RUNNING
    monkeypatch.setenv(settings.REPLAY_ENV, "yes please")
    with pytest.raises(ValueError, match=settings.REPLAY_ENV):
        build_replay_sensor(FLIGHTS)


# --- the weekly retrain ------------------------------------------------------------------------


def test_weekly_retrain_is_off_and_trains_for_the_next_day_once(instance: dg.DagsterInstance):
    assert weekly_retrain.default_status == dg.DefaultScheduleStatus.STOPPED
    for key in RAW:
        record(instance, key, days("2013-05-04", "2013-05-05"))
    skipped = weekly_retrain(dg.build_schedule_context(instance=instance))
    assert isinstance(skipped, dg.SkipReason), "no retrain whose training window is incomplete"
    assert f"training window of cutoff 2013-05-06 lacks {FEATURES}" in skipped.skip_message
    for key in [*RAW, FEATURES]:
        record(instance, key, days("2013-03-01", "2013-05-05"))
    requests = weekly_retrain(dg.build_schedule_context(instance=instance))
    flight_models = {m.name for m in CATALOG.models_of(FLIGHTS)}
    assert {r.asset_selection[0].path[0] for r in requests} == flight_models
    [request] = [r for r in requests if r.asset_selection[0].path[0] == "flight_delay"]
    assert request.partition_key == "2013-05-06"
    assert request.asset_selection == [dg.AssetKey.from_user_string(MODEL)]

    # The runs were launched; a week without new data must not retrain the same cutoff again.
    for launched in requests:
        tags = launched.tags | {"dagster/run_key": launched.run_key}
        instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", tags=tags))
    skipped = weekly_retrain(dg.build_schedule_context(instance=instance))
    assert isinstance(skipped, dg.SkipReason)
