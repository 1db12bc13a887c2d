"""The run-failure sensor, evaluated on a really failed run, leaves an alert naming asset and day."""

import json

import dagster as dg
import pytest

from resources.notifier import Notifier
from resources.settings import SLACK_BOT_TOKEN_ENV, SLACK_WEBHOOK_URL_ENV
from sensors import defs as sensor_defs
from sensors.failures import RUN_FAILURE_ALERT, run_failure_alert


@pytest.fixture
def without_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (SLACK_WEBHOOK_URL_ENV, SLACK_BOT_TOKEN_ENV):
        monkeypatch.delenv(variable, raising=False)


def failed_run(instance: dg.DagsterInstance) -> tuple[dg.DagsterRun, dg.DagsterEvent]:
    """The newest run of `instance` and its run-failure event."""
    run = instance.get_runs(limit=1)[0]
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    return run, records[0].event_log_entry.dagster_event


def test_failed_predictions_run_produces_an_alert_file(platform, data_dir, without_slack):
    # No model exists yet, so predicting these days fails with dg.Failure naming them.
    with pytest.raises(dg.Failure):
        platform.materialize(["flight_delay/predictions"], "2013-01-10", "2013-01-11")
    run, failure = failed_run(platform.instance)
    assert run.status == dg.DagsterRunStatus.FAILURE

    context = dg.build_run_status_sensor_context(
        sensor_name=RUN_FAILURE_ALERT,
        dagster_event=failure,
        dagster_instance=platform.instance,
        dagster_run=run,
        resources={"notifier": Notifier()},
    )
    run_failure_alert(context)

    [alert_file] = (data_dir / "alerts").glob("*.json")
    alert = json.loads(alert_file.read_text())
    assert alert["kind"] == "run_failure"
    assert alert["details"]["run_id"] == run.run_id
    assert alert["details"]["assets"] == "flight_delay/predictions"
    assert alert["details"]["partition"] == "2013-01-10..2013-01-11"
    assert "2013-01-10" in alert["details"]["error"]
    assert "Failure" in alert["details"]["error"]
    assert "flight_delay/predictions" in alert["summary"]


def test_failure_alerts_are_on_by_default():
    [sensor] = [s for s in sensor_defs.sensors if s.name == RUN_FAILURE_ALERT]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
