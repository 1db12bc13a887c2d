"""Rollout by evidence: challengers in shadow and A/B on served days, decided on real outcomes.

Three stories on a real instance with the synthetic source, each on its own copy of one lake
holding the raw tables and features, with its own Dagster instance:

- shadow, better: a one-split stump is champion, a full model passes the gate under `shadow` and
  scores every row beside it; the decision sensor promotes it after the declared days, not before.
- A/B, worse: a full model is champion, a stump passes a lenient gate under `ab` 50 %; it serves
  its half of the rows and is retired, never promoted. Its assignment is the same in a backfill
  and in reruns of single days.
- rollback: the champion a shadow challenger is judged against is rolled back; the sensor retires
  the challenger, and the days served before keep their predictions.

Each served day is one run of predictions and quality, then one tick of the sensor, as the daemon
would see them; a decision it requests is executed as the daemon would launch it.
"""

import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import Platform, make_lake, platform_instance, synthetic_sources

from assets import CATALOG
from assets.model_spec import Rollout
from assets.promotion_jobs import DECIDE_JOB, build_promotion_jobs
from assets.rollout import CONTINUE, PROMOTE, RETIRE, DayPair, bootstrap_interval, judge
from resources import experiments
from resources.days import days_between
from sensors.retrain import retrain_request
from sensors.rollout import rollout_tick
from sensors.run_tags import Trigger

MODEL = "flight_delay"
SPEC = CATALOG.model(MODEL)
FIRST, LAST = "2013-01-01", "2013-03-20"
SETTINGS = SPEC.rollout
STUMP = {"params": {"max_iter": 1, "max_leaf_nodes": 2}}
# A stump must pass the gate to become a challenger: the floor and tolerance let it.
LENIENT = {"gate_limit": 0.5, "gate_tolerance": 1.0}
CHAMPION_CUTOFF, CHALLENGER_CUTOFF = "2013-02-10", "2013-02-11"


@dataclass
class Served:
    """What happened on the days served during an experiment."""

    platform: Platform
    ticks: dict[str, dg.SensorResult | dg.SkipReason] = field(default_factory=dict)
    decided: dict = field(default_factory=dict)  # the decision run's config, once requested
    decided_after: str = ""  # the last day judged before it
    # What the retrain sensors would do after each day, were drift to ask for a retrain.
    retrains: dict[str, dg.SensorResult | dg.SkipReason] = field(default_factory=dict)


def train(platform: Platform, cutoff: str, **config) -> dg.ExecuteInProcessResult:
    return platform.train(MODEL, cutoff, **config)


def serve(served: Served, first: str, days: int, stop_at_decision: bool = True) -> Served:
    """Predictions and quality of each day from `first`, one run a day, and a sensor tick after
    each; a decision the sensor requests is executed at once, as the daemon would."""
    platform = served.platform
    for day in days_between(
        date.fromisoformat(first), date.fromisoformat(first) + timedelta(days=days - 1)
    ):
        key = day.isoformat()
        platform.materialize([f"{MODEL}/predictions", f"{MODEL}/prediction_quality"], key)
        served.retrains[key] = drift_asks_for_a_retrain(platform, day)
        result = rollout_tick(platform.instance, SPEC, SETTINGS)
        served.ticks[key] = result
        if isinstance(result, dg.SensorResult) and not served.decided:
            [request] = result.run_requests
            assert request.job_name == DECIDE_JOB
            job = {j.name: j for j in build_promotion_jobs(CATALOG)}[DECIDE_JOB]
            job.execute_in_process(
                run_config=request.run_config,
                instance=platform.instance,
                resources={"registry": platform.resources["registry"]},
            )
            served.decided = request.run_config["ops"]["record_rollout_decision"]["config"]
            served.decided_after = key
            if stop_at_decision:
                break
    return served


def drift_asks_for_a_retrain(platform: Platform, judged: date) -> dg.SensorResult | dg.SkipReason:
    """What a retrain sensor answers when drift persists on the newest judged day."""
    return retrain_request(
        platform.instance,
        SPEC,
        judged,
        Trigger.DRIFT,
        "drift persists",
        SPEC.monitoring,
        CATALOG.dataset_of(SPEC),
    )


def predictions(platform: Platform, first: str, last: str) -> pd.DataFrame:
    days = days_between(date.fromisoformat(first), date.fromisoformat(last))
    frame = platform.lake.read(f"{MODEL}/predictions", days)
    return frame.sort_values(list(SPEC.entity_key)).reset_index(drop=True)


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory) -> Path:
    """Raw tables and features of FIRST..LAST, built once and copied by each story."""
    folder = tmp_path_factory.mktemp("rollout_base")
    with platform_instance() as instance:
        platform = Platform(instance, synthetic_sources(), make_lake(folder))
        platform.materialize(["raw_planes"])
        platform.materialize(["raw_flights", "raw_weather", "flight_outcomes"], FIRST, LAST)
        platform.materialize([f"{MODEL}/features"], FIRST, LAST)
    return folder


def story_platform(base: Path, folder: Path, instance: dg.DagsterInstance) -> Platform:
    shutil.copytree(base / "lake", folder / "lake")
    return Platform(instance, synthetic_sources(), make_lake(folder))


@pytest.fixture(scope="module")
def shadow_story(base_lake, tmp_path_factory):
    with platform_instance() as instance:
        platform = story_platform(base_lake, tmp_path_factory.mktemp("shadow"), instance)
        train(platform, CHAMPION_CUTOFF, **LENIENT, **STUMP)
        started = train(platform, CHALLENGER_CUTOFF, rollout="shadow", **LENIENT)
        served = serve(Served(platform), CHALLENGER_CUTOFF, 30)
        after = served.decided["effective_from"]
        platform.materialize([f"{MODEL}/predictions", f"{MODEL}/prediction_quality"], after)
        yield served, started


@pytest.fixture(scope="module")
def ab_story(base_lake, tmp_path_factory):
    with platform_instance() as instance:
        platform = story_platform(base_lake, tmp_path_factory.mktemp("ab"), instance)
        train(platform, CHAMPION_CUTOFF)
        train(platform, CHALLENGER_CUTOFF, rollout="ab", ab_share=0.5, **LENIENT, **STUMP)
        yield serve(Served(platform), CHALLENGER_CUTOFF, 30)


def test_a_shadow_challenger_scores_every_row_beside_the_champion_and_is_never_served(
    shadow_story,
):
    served, started = shadow_story
    platform = served.platform
    history = platform.resources["registry"].history(MODEL)
    [experiment] = experiments.experiments(history)
    (event,) = started.get_asset_materialization_events()
    assert event.materialization.metadata["challenger"].value is True
    assert experiment.policy == "shadow" and experiment.started.isoformat() == CHALLENGER_CUTOFF
    last = served.decided_after
    shown = predictions(platform, CHALLENGER_CUTOFF, last)
    assert set(shown["model_version"]) == {experiment.champion}
    assert set(shown["arm"]) == {"champion"}
    days = days_between(date.fromisoformat(CHALLENGER_CUTOFF), date.fromisoformat(last))
    shadow = platform.lake.read(f"{MODEL}/shadow_predictions", days)
    assert set(shadow["model_version"]) == {experiment.challenger}
    keys = list(SPEC.entity_key)
    assert shadow[keys].sort_values(keys).reset_index(drop=True).equals(shown[keys])


def test_a_better_challenger_is_promoted_after_the_declared_days_and_not_before(shadow_story):
    served, _ = shadow_story
    assert served.decided["outcome"] == PROMOTE, served.ticks
    evidence = json.loads(served.decided["evidence"])
    assert evidence["paired_days"] >= SETTINGS.min_days
    assert evidence["interval"][0] > 0  # AUC: higher is better, the lower bound above zero
    before = [t for day, t in served.ticks.items() if day < served.decided_after]
    assert all(isinstance(t, dg.SkipReason) for t in before)
    assert len(before) >= SETTINGS.min_days - 1
    history = served.platform.resources["registry"].history(MODEL)
    entry = history[-1]
    assert entry["action"] == "promote" and entry["experiment"] == entry["version"]
    assert entry["effective_from"] == served.decided["effective_from"]
    assert [d["day"] for d in entry["evidence"]["days"]][0] == CHALLENGER_CUTOFF


def test_retrains_wait_while_an_experiment_is_judged_and_not_after_its_decision(shadow_story):
    served, _ = shadow_story
    judged = [served.retrains[day] for day in served.ticks]
    assert judged and all(isinstance(t, dg.SkipReason) for t in judged)
    challenger = served.decided["experiment"]
    assert all(
        f"challenger {challenger}" in t.skip_message and "is being judged" in t.skip_message
        for t in judged
    ), judged
    after = date.fromisoformat(served.decided["effective_from"])  # its quality names no experiment
    answer = drift_asks_for_a_retrain(served.platform, after)
    message = answer.skip_message if isinstance(answer, dg.SkipReason) else ""
    assert "is being judged" not in message, answer


def test_after_its_promotion_the_challenger_serves_and_past_days_keep_their_predictions(
    shadow_story,
):
    served, _ = shadow_story
    platform = served.platform
    history = platform.resources["registry"].history(MODEL)
    challenger, after = history[-1]["version"], served.decided["effective_from"]
    assert set(predictions(platform, after, after)["model_version"]) == {challenger}
    before = predictions(platform, CHALLENGER_CUTOFF, served.decided_after)
    platform.materialize([f"{MODEL}/predictions"], CHALLENGER_CUTOFF, served.decided_after)
    pd.testing.assert_frame_equal(
        predictions(platform, CHALLENGER_CUTOFF, served.decided_after), before
    )


def test_a_worse_ab_challenger_is_retired_and_never_promoted(ab_story):
    assert ab_story.decided["outcome"] == RETIRE, ab_story.ticks
    for tick in ab_story.ticks.values():
        if isinstance(tick, dg.SensorResult):
            assert all(r.run_key.endswith(":retire") for r in tick.run_requests)
    history = ab_story.platform.resources["registry"].history(MODEL)
    assert [e["action"] for e in history] == ["promote", "challenge", "retire"]
    assert json.loads(ab_story.decided["evidence"])["interval"][1] < 0
    champion = history[0]["version"]
    after = ab_story.decided["effective_from"]
    ab_story.platform.materialize([f"{MODEL}/predictions"], after)
    assert set(predictions(ab_story.platform, after, after)["model_version"]) == {champion}


def test_ab_rows_name_their_arm_and_follow_the_documented_hash(ab_story):
    platform = ab_story.platform
    [experiment] = experiments.experiments(platform.resources["registry"].history(MODEL))
    served = predictions(platform, CHALLENGER_CUTOFF, ab_story.decided_after)
    assert set(served["arm"]) == {"champion", "challenger"}
    by_arm = dict(zip(served["arm"], served["model_version"], strict=True))
    assert by_arm == {"champion": experiment.champion, "challenger": experiment.challenger}
    assert 0.4 < (served["arm"] == "challenger").mean() < 0.6

    def bucket(row) -> float:
        parts = [experiment.id, *(str(getattr(row, c)) for c in SPEC.entity_key)]
        parts[1] = row.flight_date.date().isoformat()
        return int(hashlib.md5("|".join(parts).encode()).hexdigest()[:8], 16) / 2**32

    sample = served.sample(50, random_state=1)
    expected = ["challenger" if bucket(r) < 0.5 else "champion" for r in sample.itertuples()]
    assert sample["arm"].tolist() == expected


def test_an_ab_assignment_is_identical_across_a_backfill_and_reruns(ab_story):
    platform, last = ab_story.platform, ab_story.decided_after
    daily = predictions(platform, CHALLENGER_CUTOFF, last)
    platform.materialize([f"{MODEL}/predictions"], CHALLENGER_CUTOFF, last)
    backfilled = predictions(platform, CHALLENGER_CUTOFF, last)
    platform.materialize([f"{MODEL}/predictions"], CHALLENGER_CUTOFF)
    rerun = predictions(platform, CHALLENGER_CUTOFF, last)
    pd.testing.assert_frame_equal(backfilled, daily)
    pd.testing.assert_frame_equal(rerun, daily)


def test_quality_scores_each_version_on_its_own_arm(ab_story):
    platform = ab_story.platform
    day = date.fromisoformat(CHALLENGER_CUTOFF)
    quality = platform.lake.read(f"{MODEL}/prediction_quality", [day])
    assert sorted(quality["arm"]) == ["challenger", "champion"]
    served = predictions(platform, CHALLENGER_CUTOFF, CHALLENGER_CUTOFF)
    assert quality["rows"].sum() + quality["unlabelled_rows"].sum() == len(served)


def test_a_rollback_during_an_experiment_retires_it_and_keeps_past_predictions(
    base_lake, tmp_path_factory
):
    with platform_instance() as instance:
        platform = story_platform(base_lake, tmp_path_factory.mktemp("rollback"), instance)
        registry = platform.resources["registry"]
        train(platform, "2013-02-05", **LENIENT, **STUMP)
        train(platform, CHAMPION_CUTOFF)
        train(platform, CHALLENGER_CUTOFF, rollout="shadow", **LENIENT, **STUMP)
        served = serve(Served(platform), CHALLENGER_CUTOFF, 4)
        assert not served.decided  # fewer days than a decision needs
        before = predictions(platform, CHALLENGER_CUTOFF, "2013-02-14")
        registry.rollback(MODEL, date(2013, 2, 15), "bad labels")
        serve(served, "2013-02-15", 1)

        assert served.decided["outcome"] == RETIRE
        assert "no longer in force" in served.decided["reason"]
        history = registry.history(MODEL)
        assert [e["action"] for e in history] == [
            "promote",
            "promote",
            "challenge",
            "rollback",
            "retire",
        ]
        assert [e["seq"] for e in history] == [1, 2, 3, 4, 5]
        assert history[-1]["effective_from"] == "2013-02-16"
        platform.materialize([f"{MODEL}/predictions"], CHALLENGER_CUTOFF, "2013-02-16")
        pd.testing.assert_frame_equal(
            predictions(platform, CHALLENGER_CUTOFF, "2013-02-14"), before
        )
        restored = predictions(platform, "2013-02-15", "2013-02-16")
        assert set(restored["model_version"]) == {history[0]["version"]}
        assert experiments.live_at(history, date(2013, 2, 15)) is not None
        assert experiments.live_at(history, date(2013, 2, 16)) is None


# --- The decision rule, without Dagster --------------------------------------------------------


def pairs(champion: list[float], challenger: list[float]) -> list[DayPair]:
    start = date(2013, 5, 1)
    return [
        DayPair((start + timedelta(days=i)).isoformat(), a, b)
        for i, (a, b) in enumerate(zip(champion, challenger, strict=True))
    ]


NOISE = np.random.default_rng(5).normal(0, 0.01, 40)


def test_a_clearly_better_challenger_waits_for_the_declared_days():
    better = pairs([0.70] * 40, list(0.74 + NOISE))
    settings = Rollout(min_days=7)
    assert judge("auc", True, better[:6], settings).decision == CONTINUE
    evidence = judge("auc", True, better[:7], settings)
    assert evidence.decision == PROMOTE
    assert evidence.paired_days == 7 and evidence.interval[0] > 0


def test_a_worse_challenger_is_retired_and_direction_follows_the_metric():
    settings = Rollout(min_days=7)
    assert (
        judge("auc", True, pairs([0.70] * 10, list(0.66 + NOISE[:10])), settings).decision == RETIRE
    )
    # MAE: lower is better, so a higher challenger is worse and a lower one better.
    assert (
        judge("mae", False, pairs([20.0] * 10, list(22 + NOISE[:10])), settings).decision == RETIRE
    )
    assert (
        judge("mae", False, pairs([20.0] * 10, list(18 + NOISE[:10])), settings).decision == PROMOTE
    )


def test_no_difference_continues_until_the_maximum_duration_retires_it():
    same = pairs(list(0.70 + NOISE[:28]), list(0.70 + NOISE[::-1][:28]))
    settings = Rollout(min_days=7, max_days=28)
    assert judge("auc", True, same[:20], settings).decision == CONTINUE
    evidence = judge("auc", True, same, settings)
    assert evidence.decision == RETIRE and "28 days" in evidence.reason


def test_days_without_both_values_are_not_paired_and_the_bootstrap_is_seeded():
    days = pairs([0.7, math.nan, 0.7, 0.7], [0.8, 0.8, math.nan, 0.75])
    evidence = judge("auc", True, days, SETTINGS)
    assert evidence.paired_days == 2 and evidence.difference == pytest.approx(0.075)
    assert json.loads(json.dumps(evidence.as_json()))["days"][1]["champion"] is None
    first = bootstrap_interval(list(NOISE), 0.9, 500, seed=1)
    assert first == bootstrap_interval(list(NOISE), 0.9, 500, seed=1)
    assert first != bootstrap_interval(list(NOISE), 0.9, 500, seed=2)


def test_the_cli_lists_experiments_with_their_evidence(ab_story, monkeypatch, capsys):
    from resources.models_cli import main

    monkeypatch.setenv("PLATFORM_LAKE_URI", ab_story.platform.lake.uri)
    assert main(["--model", MODEL, "experiments", "--days"]) == 0
    shown = capsys.readouterr().out
    [experiment] = experiments.experiments(ab_story.platform.resources["registry"].history(MODEL))
    evidence = experiment.end["evidence"]
    assert f"{experiment.id}  ab 50%" in shown and "retired" in shown
    assert f"{evidence['paired_days']} days: auc" in shown
    assert f"{evidence['days'][0]['day']}  champion" in shown


def test_the_rollout_sensor_is_on_by_default_and_dagster_gets_the_ticks_decision(instance):
    from sensors import defs as sensor_defs
    from sensors.rollout import rollout_sensor_name

    sensor = next(s for s in sensor_defs.sensors if s.name == rollout_sensor_name(MODEL))
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == DECIDE_JOB
    first = date(2013, 5, 1)
    days = days_between(first, first + timedelta(days=SETTINGS.min_days - 1))  # the declared days
    for day, noise in zip(days, NOISE, strict=False):
        metadata = {
            "experiment": "2013-05-01.0123456789",
            "experiment_policy": "shadow",
            "experiment_started": "2013-05-01",
            "experiment_champion": "2013-04-01.abcdef0123",
            "champion_in_force": "2013-04-01.abcdef0123",
            "challenger_version": "2013-05-01.0123456789",
            "champion_auc": 0.70,
            "challenger_auc": float(0.75 + noise),
            "model_versions": "2013-04-01.abcdef0123",
        }
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                dg.AssetKey([MODEL, "prediction_quality"]),
                partition=day.isoformat(),
                metadata=metadata,
            )
        )
    result = sensor(dg.build_sensor_context(instance=instance))
    [request] = result.run_requests
    config = request.run_config["ops"]["record_rollout_decision"]["config"]
    after = (days[-1] + timedelta(days=1)).isoformat()
    assert (config["outcome"], config["effective_from"]) == (PROMOTE, after)
    assert request.run_key == f"rollout:{MODEL}:2013-05-01.0123456789:promote"
