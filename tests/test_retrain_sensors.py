"""The drift and quality sensors request one retrain for the right day, and only when they should.

The drift story runs the real assets on a synthetic source whose delays change from DRIFT_START:
the 7-day delay statistics among the features move, so the drift share rises a few days later.
The quality rules are checked on materializations reported with chosen metadata, so that each
rule (floor, margin, champion's days, cooldown) is exercised exactly.
"""

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import pytest
from conftest import QUIET, Platform, make_lake, platform_instance, synthetic_sources
from dagster._core.test_utils import create_run_for_test

from assets import CATALOG
from assets import defs as asset_defs
from assets.quality_gate import QUALITY_GATE
from resources.days import days_between
from sensors import defs as sensor_defs
from sensors.retrain import drift_sensor_name, drift_tick, quality_sensor_name, quality_tick
from sensors.run_tags import REASON_TAG, TRIGGER_TAG

MODEL = "flight_delay"
SPEC = CATALOG.model(MODEL)
FLIGHTS = CATALOG.dataset_of(SPEC)
MODEL_KEY = dg.AssetKey([MODEL, "model"])
DRIFT_START = "2013-03-08"
CALM_LAST, DRIFTED_LAST = "2013-03-07", "2013-03-18"
RETRAIN_DAY = "2013-03-19"  # the day after the last drifted day judged
EARLIER_RETRAIN = "2013-03-12"
JUDGED = days_between(date(2013, 3, 1), date.fromisoformat(DRIFTED_LAST))
DEFAULTS = SPEC.monitoring
NO_COOLDOWN = dataclasses.replace(DEFAULTS, retrain_cooldown_days=0)


def launched(
    instance: dg.DagsterInstance, request: dg.RunRequest, status: dg.DagsterRunStatus
) -> dg.DagsterRun:
    """The run the daemon would launch for a sensor's retrain request, in `status`."""
    return create_run_for_test(
        instance,
        job_name="__ASSET_JOB",
        asset_selection=frozenset({MODEL_KEY}),
        tags={**request.tags, "dagster/partition": request.partition_key},
        status=status,
    )


def drift(instance: dg.DagsterInstance, settings=DEFAULTS):
    return drift_tick(instance, SPEC, settings, FLIGHTS)


def quality(instance: dg.DagsterInstance, settings=DEFAULTS):
    return quality_tick(instance, SPEC, settings, FLIGHTS)


@dataclass
class DriftStory:
    platform: Platform
    calm: dg.SkipReason
    drifted: dg.SensorResult
    in_flight: dg.SkipReason
    cooled: dg.SkipReason
    quality: dg.SensorResult | dg.SkipReason


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> Iterator[DriftStory]:
    """Real partitions: calm days, then drifted ones; the sensor ticked after each step."""
    source = synthetic_sources(drift_start=DRIFT_START)
    with platform_instance() as instance:
        platform = Platform(instance, source, make_lake(tmp_path_factory.mktemp("retrain")))
        platform.materialize(["raw_planes"])
        platform.materialize(
            ["raw_flights", "raw_weather", "flight_outcomes"], "2013-01-01", DRIFTED_LAST
        )
        platform.materialize([f"{MODEL}/features"], "2013-01-01", DRIFTED_LAST)
        platform.materialize([f"{MODEL}/model"], "2013-03-01")
        platform.materialize([f"{MODEL}/feature_drift"], "2013-03-01", CALM_LAST)
        calm = drift(instance)

        platform.materialize([f"{MODEL}/feature_drift"], DRIFT_START, DRIFTED_LAST)
        drifted = drift(instance)

        # The daemon launches the request; until that run ends, the same decision is not repeated.
        [request] = drifted.run_requests
        run = launched(instance, request, dg.DagsterRunStatus.STARTED)
        in_flight = drift(instance)
        instance.delete_run(run.run_id)

        # A retrain a week before the drifted days end (whether or not its gate passes, the
        # version is materialized): drift persists, but that retrain is too recent.
        dg.materialize(
            list(asset_defs.assets),
            selection=[f"{MODEL}/model"],
            instance=instance,
            resources=platform.resources,
            partition_key=EARLIER_RETRAIN,
            run_config=QUIET,
            raise_on_error=False,
        )
        assert EARLIER_RETRAIN in instance.get_materialized_partitions(MODEL_KEY)
        cooled = drift(instance)

        platform.materialize([f"{MODEL}/predictions"], "2013-03-01", DRIFTED_LAST)
        platform.materialize([f"{MODEL}/prediction_quality"], "2013-03-01", DRIFTED_LAST)
        judged = quality(instance, NO_COOLDOWN)
        yield DriftStory(platform, calm, drifted, in_flight, cooled, judged)


def test_without_drift_the_drift_sensor_requests_nothing(story):
    assert isinstance(story.calm, dg.SkipReason)
    assert f"not above {DEFAULTS.drift_threshold}" in story.calm.skip_message


def test_persistent_drift_requests_one_retrain_for_the_next_day(story):
    [request] = story.drifted.run_requests
    assert request.partition_key == RETRAIN_DAY
    assert request.asset_selection == [MODEL_KEY]
    assert request.asset_check_keys == [dg.AssetCheckKey(MODEL_KEY, QUALITY_GATE)]
    assert request.run_key == f"drift:{MODEL}:{RETRAIN_DAY}"
    assert request.tags[TRIGGER_TAG] == "drift"
    last_days = [
        (date.fromisoformat(DRIFTED_LAST) - timedelta(days=i)).isoformat() for i in range(3)
    ]
    assert all(day in request.tags[REASON_TAG] for day in last_days)


def test_the_drift_shares_the_sensor_judged_are_those_of_the_drift_partitions(story):
    rows = story.platform.lake.read(f"{MODEL}/feature_drift", JUDGED)
    tested = rows[rows["method"].notna() & (rows["method"] != "")]
    shares = tested.groupby(tested["flight_date"].dt.date.astype(str))["drifted"].mean()
    assert (shares[-DEFAULTS.drift_days :] > DEFAULTS.drift_threshold).all()
    for day, share in shares[-DEFAULTS.drift_days :].items():
        assert f"{day}: {share:.2f}" in story.drifted.run_requests[0].tags[REASON_TAG]


def test_a_retrain_in_flight_is_not_requested_again(story):
    assert isinstance(story.in_flight, dg.SkipReason)
    assert f"cutoff is {RETRAIN_DAY}" in story.in_flight.skip_message


def test_within_the_cooldown_no_retrain_is_requested(story):
    assert isinstance(story.cooled, dg.SkipReason)
    message = story.cooled.skip_message
    assert f"cutoff is {EARLIER_RETRAIN}" in message
    next_allowed = date.fromisoformat(EARLIER_RETRAIN) + timedelta(
        days=DEFAULTS.retrain_cooldown_days
    )
    assert next_allowed.isoformat() in message


def test_the_quality_sensor_reads_the_rolling_auc_of_the_champions_days(story):
    quality = story.platform.lake.read(f"{MODEL}/prediction_quality", JUDGED)
    quality["day"] = quality["flight_date"].dt.date
    latest = quality["day"].max()
    champion = quality.loc[quality["day"] == latest, "model_version"].item()
    window = quality[quality["day"] > latest - timedelta(days=DEFAULTS.quality_days)]
    if (window["model_version"] == champion).all():
        expected = f"mean daily auc {window['auc'].mean():.4f}"
    else:  # the second champion has not served a whole window yet
        expected = f"champion {champion} has served"
    message = (
        story.quality.skip_message
        if isinstance(story.quality, dg.SkipReason)
        else story.quality.run_requests[0].tags[REASON_TAG]
    )
    assert expected in message


# --- The quality rules, on reported materializations ------------------------------------------

VERSION = "2013-05-01.0123456789"
NEWER = "2013-05-10.abcdef0123"


def report_model(instance: dg.DagsterInstance, version: str, holdout_auc: float) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            MODEL_KEY,
            partition=version[:10],
            metadata={"version": version, "holdout_auc": holdout_auc},
        )
    )


def report_quality(
    instance: dg.DagsterInstance, aucs: dict[str, float], version: str, whole_window: bool = True
) -> None:
    """The quality of `aucs`' days and, unless `whole_window` is False, the features and labels
    of the 60 days before the day after them: a retrain for that cutoff has its whole window."""
    if whole_window:
        report_window(instance, training_window(max(aucs)))
    for day, auc in aucs.items():
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                dg.AssetKey([MODEL, "prediction_quality"]),
                partition=day,
                metadata={"auc": auc, "model_versions": version},
            )
        )


def training_window(last_judged: str) -> list[date]:
    cutoff = date.fromisoformat(last_judged) + timedelta(days=1)
    return days_between(cutoff - timedelta(days=SPEC.window_days), cutoff - timedelta(days=1))


def report_window(instance: dg.DagsterInstance, days: list[date]) -> None:
    for table in (SPEC.features_table, SPEC.label.table):
        for day in days:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    dg.AssetKey.from_user_string(table), partition=day.isoformat()
                )
            )


def days_from(first: str, count: int) -> list[str]:
    start = date.fromisoformat(first)
    return [(start + timedelta(days=i)).isoformat() for i in range(count)]


def test_healthy_quality_requests_nothing(instance):
    report_model(instance, VERSION, 0.74)
    report_quality(instance, dict.fromkeys(days_from("2013-05-01", 20), 0.73), VERSION)

    result = quality(instance)
    assert isinstance(result, dg.SkipReason)
    assert "healthy" in result.skip_message


def test_rolling_auc_below_the_floor_requests_a_retrain(instance):
    report_model(instance, VERSION, 0.74)
    days = days_from("2013-05-01", 20)
    aucs = {day: 0.72 for day in days[:13]} | {day: 0.55 for day in days[13:]}
    report_quality(instance, aucs, VERSION)

    [request] = quality(instance).run_requests
    assert request.partition_key == "2013-05-21"
    assert request.tags[TRIGGER_TAG] == "quality"
    assert request.asset_check_keys == [dg.AssetCheckKey(MODEL_KEY, QUALITY_GATE)]
    assert f"worse than the limit {DEFAULTS.quality_limit}" in request.tags[REASON_TAG]


def test_rolling_auc_far_below_the_champions_holdout_auc_requests_a_retrain(instance):
    report_model(instance, VERSION, 0.80)
    report_quality(instance, dict.fromkeys(days_from("2013-05-01", 20), 0.70), VERSION)

    [request] = quality(instance).run_requests
    assert "more than 0.05 lower than the holdout value" in request.tags[REASON_TAG]
    assert "holdout 0.8000" in request.tags[REASON_TAG]

    report_model(instance, VERSION, 0.74)  # a newer record of the same version: within margin
    assert isinstance(quality(instance), dg.SkipReason)


def test_quality_waits_for_a_whole_window_served_by_the_current_champion(instance):
    report_model(instance, VERSION, 0.74)
    report_model(instance, NEWER, 0.74)
    report_quality(instance, dict.fromkeys(days_from("2013-05-01", 10), 0.72), VERSION)
    report_quality(instance, dict.fromkeys(days_from("2013-05-11", 3), 0.50), NEWER)

    result = quality(instance, NO_COOLDOWN)
    assert isinstance(result, dg.SkipReason)
    assert f"champion {NEWER} has served 3 of the last 7" in result.skip_message


def test_days_backfilled_ahead_do_not_hide_the_replayed_days_from_the_sensor(instance):
    report_model(instance, VERSION, 0.74)
    report_quality(instance, dict.fromkeys(days_from("2013-12-01", 20), 0.73), VERSION)
    report_quality(instance, dict.fromkeys(days_from("2013-05-01", 20), 0.50), VERSION)

    [request] = quality(instance).run_requests
    assert request.partition_key == "2013-05-21", "the days judged are those last computed"


def test_no_retrain_is_requested_while_its_training_window_is_incomplete(instance):
    report_model(instance, VERSION, 0.74)
    aucs = dict.fromkeys(days_from("2013-05-01", 20), 0.50)
    gap = [date(2013, 4, 7), date(2013, 4, 8)]
    report_window(instance, [day for day in training_window(max(aucs)) if day not in gap])
    report_quality(instance, aucs, VERSION, whole_window=False)

    result = quality(instance)
    assert isinstance(result, dg.SkipReason)
    assert "worse than the limit" in result.skip_message
    assert "training window of cutoff 2013-05-21 lacks" in result.skip_message
    assert f"{SPEC.features_table} 2013-04-07, 2013-04-08" in result.skip_message


def test_after_a_failed_retrain_the_sensors_back_off_for_the_cooldown(instance):
    report_model(instance, VERSION, 0.74)
    report_quality(instance, dict.fromkeys(days_from("2013-05-01", 20), 0.50), VERSION)
    [request] = quality(instance).run_requests
    failed = launched(instance, request, dg.DagsterRunStatus.FAILURE)
    later = days_from("2013-05-21", 5)
    report_quality(instance, dict.fromkeys(later, 0.50), VERSION)  # days pass, still decayed

    result = quality(instance)
    assert isinstance(result, dg.SkipReason), "no retry every tick after a failed retrain"
    assert f"retrain for cutoff 2013-05-21 failed (run {failed.run_id}" in result.skip_message
    next_allowed = date(2013, 5, 21) + timedelta(days=DEFAULTS.retrain_cooldown_days)
    assert f"next retrain can be for {next_allowed}" in result.skip_message

    report_quality(instance, dict.fromkeys(days_from("2013-05-26", 14), 0.50), VERSION)
    [retry] = quality(instance).run_requests
    assert retry.partition_key == "2013-06-09", "after the cooldown the sensor tries again"


def test_decayed_quality_within_the_cooldown_requests_nothing(instance):
    report_model(instance, VERSION, 0.74)
    report_quality(instance, dict.fromkeys(days_from("2013-05-01", 9), 0.50), VERSION)

    result = quality(instance)  # next cutoff 05-10, 9 days after 05-01
    assert isinstance(result, dg.SkipReason)
    assert "worse than the limit" in result.skip_message and "cooldown" in result.skip_message


# --- Definitions and settings -----------------------------------------------------------------


def test_both_sensors_are_on_by_default_and_target_the_model_with_its_gate():
    sensors = {sensor.name: sensor for sensor in sensor_defs.sensors}
    for name in (drift_sensor_name(MODEL), quality_sensor_name(MODEL)):
        sensor = sensors[name]
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.minimum_interval_seconds == DEFAULTS.retrain_sensor_seconds
        assert sensor.job.selection.resolve(list(asset_defs.assets)) == {MODEL_KEY}


def test_a_sensor_evaluated_by_dagster_gives_the_ticks_decision(instance):
    report_model(instance, VERSION, 0.74)
    report_quality(instance, dict.fromkeys(days_from("2013-05-01", 20), 0.50), VERSION)
    sensor = next(s for s in sensor_defs.sensors if s.name == quality_sensor_name(MODEL))

    result = sensor(dg.build_sensor_context(instance=instance))
    assert [r.partition_key for r in result.run_requests] == ["2013-05-21"]


def test_settings_come_from_the_environment_and_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("PLATFORM_DRIFT_THRESHOLD", "0.4")
    monkeypatch.setenv("PLATFORM_DRIFT_DAYS", "5")
    monkeypatch.setenv("PLATFORM_FLIGHT_DELAY_DRIFT_DAYS", "4")  # one model's wins
    monkeypatch.setenv("PLATFORM_QUALITY_LIMIT", "0.9")  # a metric's limit is per model only
    settings = DEFAULTS.with_environment(MODEL)
    assert (settings.drift_threshold, settings.drift_days) == (0.4, 4)
    assert settings.quality_limit == DEFAULTS.quality_limit
    monkeypatch.setenv("PLATFORM_FLIGHT_DELAY_QUALITY_LIMIT", "0.7")
    assert DEFAULTS.with_environment(MODEL).quality_limit == 0.7
    monkeypatch.setenv("PLATFORM_RETRAIN_COOLDOWN_DAYS", "-1")
    with pytest.raises(ValueError, match="PLATFORM_RETRAIN_COOLDOWN_DAYS"):
        DEFAULTS.with_environment(MODEL)
    monkeypatch.setenv("PLATFORM_RETRAIN_COOLDOWN_DAYS", "3")
    monkeypatch.setenv("PLATFORM_DRIFT_THRESHOLD", "lots")
    with pytest.raises(ValueError, match="PLATFORM_DRIFT_THRESHOLD='lots'"):
        DEFAULTS.with_environment(MODEL)
