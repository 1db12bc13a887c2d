"""The quality gate and the champion timeline, end to end on a synthetic lake.

One story, built once per module: a weak first model, a better one, a worse one that the gate
stops, a rollback, then a two-day range trained in one run with a hyperparameter search.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date

import dagster as dg
import pandas as pd
import pytest
from conftest import QUIET, REPO_ROOT, Platform, make_lake, platform_instance, synthetic_sources

from assets import CATALOG, modeling
from assets import defs as asset_defs
from assets.metrics import evaluate
from assets.promotion_jobs import build_promotion_jobs
from assets.quality_gate import QUALITY_GATE, decide
from assets.training import labelled_rows
from resources import days
from resources.days import CHUNK_ROWS, days_between

MODEL = "flight_delay"
FLIGHT_DELAY = CATALOG.model(MODEL)
FIRST, LAST = "2013-01-01", "2013-03-12"
SERVED = ("2013-02-10", LAST)
# A one-split stump: an honestly worse model. The floor is lowered for the whole story because
# 120 synthetic flights a day make AUCs noisy; the floor itself is tested on `decide` below.
LENIENT = {"gate_limit": 0.5}
STUMP = {**LENIENT, "params": {"max_iter": 1, "max_leaf_nodes": 2}}


@dataclass
class Story:
    platform: Platform
    weak: dg.ExecuteInProcessResult
    better: dg.ExecuteInProcessResult
    worse: dg.ExecuteInProcessResult
    ranged: dg.ExecuteInProcessResult
    before: pd.DataFrame  # predictions with only the weak model promoted
    after_promotion: pd.DataFrame
    after_rollback: pd.DataFrame
    history_after_worse: list[dict]
    rollback_entry: dict


def _train(platform: Platform, first: str, last: str | None = None, **config):
    return dg.materialize(
        list(asset_defs.assets),
        selection=[f"{MODEL}/model"],
        instance=platform.instance,
        resources=platform.resources,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last or first,
        },
        run_config={**QUIET, "ops": {f"{MODEL}__model": {"config": config}}},
        raise_on_error=False,
    )


def _predict(platform: Platform) -> pd.DataFrame:
    platform.materialize([f"{MODEL}/predictions"], *SERVED)
    days = pd.date_range(*SERVED).date.tolist()
    return platform.lake.read(f"{MODEL}/predictions", days)


def _version(result: dg.ExecuteInProcessResult) -> str:
    (event,) = result.get_asset_materialization_events()
    return event.materialization.metadata["version"].value


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("champion_story")
    with platform_instance() as instance:
        platform = Platform(instance, synthetic_sources(), make_lake(folder))
        platform.materialize(["raw_planes"])
        platform.materialize(["raw_flights", "raw_weather", "flight_outcomes"], FIRST, LAST)
        platform.materialize([f"{MODEL}/features"], FIRST, LAST)
        registry = platform.resources["registry"]
        weak = _train(platform, "2013-02-10", **STUMP)
        before = _predict(platform)
        better = _train(platform, "2013-02-20", **LENIENT)
        worse = _train(platform, "2013-03-01", **STUMP)
        history_after_worse = registry.history(MODEL)
        after_promotion = _predict(platform)
        rollback = {"model": MODEL, "reason": "test"}
        jobs = {job.name: job for job in build_promotion_jobs(CATALOG)}
        jobs["rollback_model"].execute_in_process(
            run_config={"ops": {"rollback_champion": {"config": rollback}}},
            resources={"registry": registry},
            instance=instance,
        )
        rollback_entry = registry.history(MODEL)[-1]
        after_rollback = _predict(platform)
        ranged = _train(platform, "2013-03-05", "2013-03-06", search_trials=2, **LENIENT)
        yield Story(
            platform,
            weak,
            better,
            worse,
            ranged,
            before,
            after_promotion,
            after_rollback,
            history_after_worse,
            rollback_entry,
        )


def _gate(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == QUALITY_GATE
    return evaluation


def test_the_first_model_is_promoted_when_it_clears_the_floor(story):
    assert story.weak.success and _gate(story.weak).passed
    assert set(story.before["model_version"]) == {_version(story.weak)}


def test_a_better_candidate_is_promoted_from_its_cutoff(story):
    assert story.better.success and _gate(story.better).passed
    metadata = story.better.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["gate_passed"].value and metadata["promoted"].value
    assert metadata["holdout_auc"].value > metadata["champion_holdout_auc"].value
    served = story.after_promotion.groupby("flight_date")["model_version"].first()
    assert set(served[served.index < pd.Timestamp("2013-02-20")]) == {_version(story.weak)}
    assert set(served[served.index >= pd.Timestamp("2013-02-20")]) == {_version(story.better)}


def test_a_worse_candidate_is_rejected_with_a_warning_while_the_champion_keeps_serving(story):
    gate = _gate(story.worse)
    assert not gate.passed and gate.blocking
    assert gate.severity == dg.AssetCheckSeverity.WARN
    champion = _version(story.better)
    assert "worse than the champion" in gate.description
    assert f"{champion} keeps serving" in gate.description
    assert story.worse.success, "a rejected candidate is not a failed run: the champion serves"
    (event,) = story.worse.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert not metadata["gate_passed"].value and not metadata["promoted"].value
    assert metadata["serving_version"].value == champion
    worse = _version(story.worse)
    record = story.platform.resources["registry"].record(MODEL, worse)
    assert record["gate"]["passed"] is False
    assert record["gate"]["champion_version"] == _version(story.better)
    assert worse not in {e["version"] for e in story.history_after_worse}
    march = story.after_promotion[
        story.after_promotion["flight_date"] >= pd.Timestamp("2013-03-01")
    ]
    assert set(march["model_version"]) == {_version(story.better)}


def test_backfilled_predictions_are_identical_after_later_promotions(story):
    early = story.before["flight_date"] < pd.Timestamp("2013-02-20")
    pd.testing.assert_frame_equal(
        story.after_promotion[early].reset_index(drop=True),
        story.before[early].reset_index(drop=True),
    )


def test_small_scoring_batches_across_days_and_champions_give_the_rows_of_day_runs(
    story, monkeypatch
):
    """A range is scored a batch of rows at a time; batches that cut through days and through a
    change of champion must give the rows that one run per day gives."""
    from assets import scoring

    first, last = "2013-03-02", "2013-03-08"
    days = pd.date_range(first, last).date.tolist()
    platform, predictions = story.platform, f"{MODEL}/predictions"
    monkeypatch.setattr(scoring, "SCORING_BATCH_ROWS", 50)
    platform.materialize([predictions], first, last)
    batched = platform.lake.read(predictions, days)
    monkeypatch.undo()
    for day in days:
        platform.materialize([predictions], day.isoformat())
    by_day = platform.lake.read(predictions, days)

    assert batched["model_version"].nunique() >= 2, "the range must span a change of champion"
    assert len(batched) > 50 * len(days), "more than a batch a day: batches cut through days"
    pd.testing.assert_frame_equal(batched, by_day, check_exact=True)


def test_rollback_restores_the_previous_champion_from_its_effective_date(story):
    entry = story.rollback_entry
    assert entry["action"] == "rollback"
    assert (entry["version"], entry["replaces"]) == (_version(story.weak), _version(story.better))
    assert entry["effective_from"] == "2013-02-20"
    pd.testing.assert_frame_equal(story.after_rollback, story.before)


def test_a_range_run_gates_each_cutoff_against_the_champion_the_previous_left(story):
    registry = story.platform.resources["registry"]
    first_record, second_record = (
        next(r for r in registry.versions(MODEL) if r["partition"] == day)
        for day in ("2013-03-05", "2013-03-06")
    )
    recorded = {
        e.partition: e.materialization.metadata["version"].value
        for e in story.ranged.get_asset_materialization_events()
    }
    assert recorded == {
        "2013-03-05": first_record["version"],
        "2013-03-06": second_record["version"],
    }, "each cutoff's materialization names its own version"
    first = first_record["version"]
    assert first_record["gate"]["champion_version"] == _version(story.weak)
    assert registry.champion_at(MODEL, date(2013, 3, 5))["version"] == first
    assert second_record["gate"]["champion_version"] == first
    assert len(first_record["search_trials"]) == 2
    assert first_record["params"] in [t["params"] for t in first_record["search_trials"]]


def test_the_registry_record_carries_the_lineage(story):
    registry = story.platform.resources["registry"]
    record = registry.record(MODEL, _version(story.better))
    assert record["partition"] == "2013-02-20"
    assert record["training_window"] == ["2013-01-01", "2013-02-19"]
    assert record["holdout_window"] == ["2013-02-13", "2013-02-19"]
    assert len(record["data_fingerprint"]) == 64 and len(record["artifact_sha256"]) == 64
    assert record["features"] and record["params"] and record["code_version"]
    assert record["training_seconds"] > 0 and record["created_at"]
    trained_on = [r["version"] for r in registry.versions_trained_on(MODEL, date(2013, 2, 15))]
    assert _version(story.weak) not in trained_on
    assert {_version(story.better), _version(story.worse)} <= set(trained_on)


def test_the_version_served_is_fitted_on_the_whole_window_and_gated_on_a_fit_without_its_holdout(
    story,
):
    registry, lake = story.platform.resources["registry"], story.platform.lake
    version = _version(story.better)
    record = registry.record(MODEL, version)
    assert record["fit_window"] == record["training_window"] == ["2013-01-01", "2013-02-19"]
    assert record["gate_fit_window"] == ["2013-01-01", "2013-02-12"]
    window = days_between(date(2013, 1, 1), date(2013, 2, 19))
    rows = labelled_rows(lake, CATALOG, FLIGHT_DELAY, window)
    held_out = rows["flight_date"] >= date(2013, 2, 13)
    assert record["fit_rows"] == len(rows) and record["gate_fit_rows"] == (~held_out).sum()

    served = modeling.score(registry.load(MODEL, version), FLIGHT_DELAY, rows)
    whole = modeling.fit(FLIGHT_DELAY, rows, record["params"])
    assert (served == modeling.score(whole, FLIGHT_DELAY, rows)).all()

    gated = modeling.fit(FLIGHT_DELAY, rows[~held_out], record["params"])
    holdout = rows[held_out]
    evidence = evaluate(
        FLIGHT_DELAY.task, holdout["label"], modeling.score(gated, FLIGHT_DELAY, holdout)
    )
    assert record["metrics"]["auc"] == evidence["auc"]
    served_on_holdout = evaluate(FLIGHT_DELAY.task, holdout["label"], served[held_out.to_numpy()])
    assert record["metrics"]["auc"] != served_on_holdout["auc"]


@pytest.mark.parametrize("piece_rows", [CHUNK_ROWS, 2_500])
def test_a_window_above_the_row_limit_keeps_every_kth_row_in_entity_order(
    story, monkeypatch, piece_rows
):
    """The same rows whether the window is read at once or in pieces of a few days, numbered
    across the pieces (their lengths are not multiples of four)."""
    window = days_between(date(2013, 1, 1), date(2013, 2, 19))
    every_row = labelled_rows(story.platform.lake, CATALOG, FLIGHT_DELAY, window)
    limit = len(every_row) // 3 - 1  # so every fourth row is kept
    monkeypatch.setattr(days, "CHUNK_ROWS", piece_rows)
    sampled = labelled_rows(story.platform.lake, CATALOG, FLIGHT_DELAY, window, max_rows=limit)
    assert sampled.attrs == {"window_rows": len(every_row), "sampled_every": 4}
    assert sampled.equals(every_row.iloc[::4].reset_index(drop=True))


@pytest.mark.parametrize(
    ("metric", "candidate", "champion", "passed", "why"),
    [
        ("auc", 0.64, None, False, "below the floor"),
        ("auc", float("nan"), None, False, "below the floor"),
        ("auc", 0.70, None, True, "first model"),
        ("auc", 0.70, 0.704, True, "against the champion"),
        ("auc", 0.70, 0.706, False, "worse than the champion"),
        # Lower is better: the limit is a ceiling, and a champion is beaten from below.
        ("mae", 0.66, None, False, "above the ceiling"),
        ("mae", float("nan"), None, False, "above the ceiling"),
        ("mae", 0.60, None, True, "first model"),
        ("mae", 0.60, 0.596, True, "against the champion"),
        ("mae", 0.60, 0.594, False, "worse than the champion"),
    ],
)
def test_gate_decision(metric, candidate, champion, passed, why):
    decision = decide(metric, candidate, champion, limit=0.65, tolerance=0.005)
    assert decision.passed is passed and why in decision.reason


def test_the_models_cli_lists_shows_promotes_and_rolls_back(story, tmp_path):
    """The commands of docs/models.md, on a copy of the story's lake found through the environment."""
    lake = tmp_path / "lake"
    shutil.copytree(story.platform.lake.root, lake)
    env = {**os.environ, "PLATFORM_LAKE_URI": str(lake)}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "resources.models_cli", "--model", MODEL, *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    better, worse = _version(story.better), _version(story.worse)
    listing = cli("list")
    assert better in listing and worse in listing and "FAIL" in listing
    assert listing.count("\n* ") == 1
    assert json.loads(cli("show", better))["training_window"] == ["2013-01-01", "2013-02-19"]
    assert better in cli("trained-on", "2013-02-15")
    assert "from 2013-03-10" in cli("promote", better, "--effective-from", "2013-03-10")
    assert cli("champion", "--at", "2013-03-10").strip() == better
    assert cli("champion", "--at", "2013-03-09").strip() != better
    assert f"rolled back {better}" in cli("rollback")
    assert cli("champion", "--at", "2013-03-10").strip() != better
    assert "rollback" in cli("history")
