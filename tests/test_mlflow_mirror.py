"""The MLflow mirror against a real tracking server: trainings, promotions and rollbacks of the
platform appear in MLflow, and an MLflow that was down is caught up from the platform's history.
Then the comparison of versions that needs no MLflow, on the same versions.

One story per module on a synthetic lake: a first version trained with a search (promoted), a
second one (promoted), a rollback, then, with the server stopped, a third version and a manual
promotion, both of which must succeed, and the catch-up sensor's run once the server is back
(after which `models_cli mlflow-sync` finds nothing left to mirror); finally the days
since the first cutoff are predicted and their quality measured, so versions have served.
"""

import contextlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from conftest import Platform, make_lake, platform_instance, synthetic_sources

from assets import CATALOG
from resources import mlflow_mirror, models_cli, settings
from sensors import build_sensor_definitions
from sensors.mlflow_catch_up import CATCH_UP_SENSOR, catch_up_tick, mlflow_catch_up

MODEL = "flight_delay"
FIRST, LAST = "2013-01-01", "2013-03-08"
SERVED_FROM = "2013-02-20"
LENIENT = {"gate_limit": 0.5, "gate_tolerance": 1.0}


def _train(platform: Platform, cutoff: str, **config) -> dg.ExecuteInProcessResult:
    return platform.train(MODEL, cutoff, **LENIENT, **config)


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = result.get_asset_materialization_events()
    return event.materialization.metadata


@dataclass
class Story:
    platform: Platform
    client: object
    uri: str
    searched: dict  # metadata of the first training
    second: dict
    alias_after_promotion: str
    alias_after_rollback: str
    offline: dict  # metadata of the training while MLflow was down
    offline_promoted: dict
    runs_while_down: int
    behind: str | None  # when the mirror noted itself behind
    request: dg.RunRequest  # the catch-up sensor's tick once MLflow is back
    caught_up: dg.ExecuteInProcessResult
    after_catch_up: dg.SkipReason
    alerts: list[Path]
    synced: str  # what `models_cli mlflow-sync` printed
    compared: str  # what `models_cli compare flight_delay` printed


@pytest.fixture(scope="module")
def story(mlflow_server, tmp_path_factory: pytest.TempPathFactory):
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow_story")
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    with pytest.MonkeyPatch.context() as env, platform_instance() as instance:
        env.setenv(settings.MLFLOW_TRACKING_URI_ENV, mlflow_server.uri)
        env.setenv(settings.DATA_DIR_ENV, str(folder))
        lake = make_lake(folder)
        env.setenv(settings.LAKE_URI_ENV, lake.uri)
        platform = Platform(instance, synthetic_sources(), lake)
        registry = platform.resources["registry"]
        platform.materialize(["raw_planes"])
        platform.materialize(["raw_flights", "raw_weather", "flight_outcomes"], FIRST, LAST)
        platform.materialize([f"{MODEL}/features"], FIRST, LAST)

        searched = _metadata(_train(platform, "2013-02-20", search_trials=3))
        second = _metadata(_train(platform, "2013-03-01"))
        after_promotion = client.get_model_version_by_alias(MODEL, "champion")
        registry.rollback(MODEL, reason="test")
        after_rollback = client.get_model_version_by_alias(MODEL, "champion")

        mlflow_server.stop()
        offline = _metadata(_train(platform, "2013-03-05", params={"max_iter": 60}))
        version = offline["version"].value
        offline_promoted = registry.promote(MODEL, version, reason="while MLflow is down")
        behind = mlflow_mirror.behind_since(registry, MODEL)
        mlflow_server.start()
        runs_while_down = len(
            client.search_runs(
                [client.get_experiment_by_name(MODEL).experiment_id],
                f"tags.`{mlflow_mirror.VERSION_TAG}` = '{version}'",
            )
        )
        request = catch_up_tick(registry, [MODEL], time.time())
        caught_up = mlflow_catch_up.execute_in_process(
            run_config=request.run_config, instance=instance, resources={"registry": registry}
        )
        after_catch_up = catch_up_tick(registry, [MODEL], time.time())
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert models_cli.main(["--model", MODEL, "mlflow-sync"]) == 0
        platform.materialize([f"{MODEL}/predictions"], SERVED_FROM, LAST)
        platform.materialize([f"{MODEL}/prediction_quality"], SERVED_FROM, LAST)
        compared = io.StringIO()
        with contextlib.redirect_stdout(compared):
            assert models_cli.main(["compare", MODEL]) == 0
        yield Story(
            platform,
            client,
            mlflow_server.uri,
            searched,
            second,
            after_promotion.tags[mlflow_mirror.VERSION_TAG],
            after_rollback.tags[mlflow_mirror.VERSION_TAG],
            offline,
            offline_promoted,
            runs_while_down,
            behind,
            request,
            caught_up,
            after_catch_up,
            sorted((folder / "alerts").glob("*mlflow_mirror*.json")),
            printed.getvalue(),
            compared.getvalue(),
        )


def _version(metadata: dict) -> str:
    return metadata["version"].value


def _run(story: Story, version: str):
    experiment = story.client.get_experiment_by_name(MODEL).experiment_id
    (run,) = story.client.search_runs(
        [experiment],
        f"tags.`{mlflow_mirror.VERSION_TAG}` = '{version}' and "
        f"tags.`{mlflow_mirror.ROLE_TAG}` = 'version'",
    )
    return run


def test_each_training_is_a_run_with_its_record(story):
    registry = story.platform.resources["registry"]
    version = _version(story.searched)
    record = registry.record(MODEL, version)
    run = _run(story, version)
    assert run.info.status == "FINISHED"
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    assert metrics["holdout_auc"] == pytest.approx(record["metrics"]["auc"])
    assert metrics["training_auc"] == pytest.approx(record["fit_metrics"]["auc"])
    assert metrics["gate_passed"] == 1.0
    assert params["learning_rate"] == str(record["params"]["learning_rate"])
    assert tags["platform.cutoff"] == "2013-02-20"
    assert tags["platform.data_fingerprint"] == record["data_fingerprint"]
    assert tags["platform.code_version"] == record["code_version"]
    assert tags["platform.dagster_run_id"] == record["dagster_run_id"] != ""
    assert tags["platform.dagster_run_url"].endswith(f"/runs/{record['dagster_run_id']}")
    assert story.searched["mlflow_run"].value.endswith(f"/runs/{run.info.run_id}")
    artifacts = {a.path for a in story.client.list_artifacts(run.info.run_id, "model")}
    assert artifacts == {"model/model.skops", "model/record.json"}
    local = story.client.download_artifacts(run.info.run_id, "model/model.skops")
    assert Path(local).read_bytes() == registry.artifact(MODEL, version)


def test_the_search_trials_are_child_runs(story):
    version = _version(story.searched)
    parent = _run(story, version)
    record = story.platform.resources["registry"].record(MODEL, version)
    children = story.client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert len(children) == len(record["search_trials"]) == 3
    by_trial = {int(c.data.tags["platform.trial"]): c for c in children}
    for trial in record["search_trials"]:
        child = by_trial[trial["number"]]
        assert child.data.metrics["validation_auc"] == pytest.approx(trial["validation_auc"])
        assert child.data.params["max_leaf_nodes"] == str(trial["params"]["max_leaf_nodes"])


def test_every_version_is_registered_and_the_alias_follows_promotions_and_rollbacks(story):
    first, second = _version(story.searched), _version(story.second)
    registered = {
        mv.tags[mlflow_mirror.VERSION_TAG]: mv
        for mv in story.client.search_model_versions(f"name='{MODEL}'")
    }
    assert {first, second, _version(story.offline)} <= set(registered)
    assert registered[first].run_id == _run(story, first).info.run_id
    assert story.alias_after_promotion == second
    assert story.alias_after_rollback == first


def test_with_mlflow_down_training_and_promotion_succeed_and_the_mirror_catches_up(story):
    version = _version(story.offline)
    assert story.offline_promoted["version"] == version
    assert "mlflow_run" not in story.offline, "no link while MLflow is down"
    assert story.runs_while_down == 0
    assert story.alerts, "a mirror that falls behind is alerted"
    alert = json.loads(story.alerts[0].read_text())
    assert "MLflow mirror of flight_delay is behind" in alert["summary"]
    assert story.behind is not None, "the mirror notes that it is behind"
    assert isinstance(story.request, dg.RunRequest), "the catch-up sensor retries"
    assert story.request.run_config["ops"]["sync_mlflow_mirror"]["config"]["models"] == [MODEL]
    assert story.caught_up.success
    assert isinstance(story.after_catch_up, dg.SkipReason), "caught up, the sensor rests"
    assert "0 versions mirrored" in story.synced and f"champion alias: {version}" in story.synced
    champion = story.client.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags[mlflow_mirror.VERSION_TAG] == version
    assert _run(story, version).data.metrics["holdout_auc"] > 0


def test_a_second_sync_changes_nothing(story):
    registry = story.platform.resources["registry"]
    before = story.client.search_runs([_run(story, _version(story.second)).info.experiment_id])
    again = mlflow_mirror.sync(registry, MODEL, uri=story.uri)
    after = story.client.search_runs([_run(story, _version(story.second)).info.experiment_id])
    assert again.mirrored == []
    assert {r.info.run_id for r in after} == {r.info.run_id for r in before}


def test_compare_prints_the_versions_side_by_side(story):
    lines = {line.split("  ")[0]: line for line in story.compared.splitlines()}
    first, second, third = (_version(m) for m in (story.searched, story.second, story.offline))
    assert lines["field"].split() == ["field", first, second, third]
    assert lines["cutoff"].split()[1:] == ["2013-02-20", "2013-03-01", "2013-03-05"]
    assert "param max_iter" in lines, "parameters that differ are shown"
    assert "param random_state" not in lines, "parameters that are the same are not"
    assert lines["param max_iter"].split()[-1] == "60"
    assert "holdout auc" in lines and "holdout brier" in lines
    # first served 2013-02-20..03-04 (the second was rolled back), the third from 03-05 to 03-08
    assert lines["served days"].split()[2:] == ["13", "0", "4"]
    assert lines["served auc"].split()[3] == "-"
    assert "rolled back" in lines["champion from"]


def test_the_model_materialization_carries_the_comparison_and_the_study(story):
    compared = story.offline["versions_compared"].value
    assert _version(story.searched) in compared and _version(story.offline) in compared
    study = story.searched["search_study"].value
    assert study.count("(chosen)") == 1
    assert story.searched["search_trials"].value == 3


def test_the_catch_up_sensor_exists_only_with_a_tracking_uri(monkeypatch):
    monkeypatch.delenv(settings.MLFLOW_TRACKING_URI_ENV, raising=False)
    assert CATCH_UP_SENSOR not in {s.name for s in build_sensor_definitions(CATALOG).sensors}
    monkeypatch.setenv(settings.MLFLOW_TRACKING_URI_ENV, "http://127.0.0.1:5000")
    assert CATCH_UP_SENSOR in {s.name for s in build_sensor_definitions(CATALOG).sensors}
