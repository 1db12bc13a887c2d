"""`platform/backfill.py` backfills a dataset's whole daily graph over a range in one command:
the raw tables and features, the models at their cutoffs, then what the champions serve."""

import argparse
import runpy
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date

import dagster as dg
import pytest
from conftest import REPO_ROOT, platform_env

from assets import CATALOG
from assets.backfill import (
    Step,
    backfill_steps,
    prepare_instance,
    run_steps,
    side_by_side,
    training_cutoffs,
)
from assets.keys import drift_key, features_key, model_key, served_keys
from resources.instance_storage import install_instance_config

FLIGHTS = next(d for d in CATALOG.datasets if d.name == "flights")
BACKFILL = runpy.run_path(str(REPO_ROOT / "platform" / "backfill.py"))


def test_models_train_at_their_first_cutoff_then_at_the_cadence_and_serve_from_their_champion():
    models = CATALOG.models_of(FLIGHTS)
    first_cutoff = max(CATALOG.first_cutoff(m) for m in models)
    assert first_cutoff == date(2013, 3, 1)
    cutoffs = training_cutoffs(CATALOG, models, date(2013, 1, 1), date(2013, 9, 30), "quarterly")
    assert list(cutoffs) == [date(2013, 3, 1), date(2013, 6, 1), date(2013, 9, 1)]
    assert all(cutoffs[day] == models for day in cutoffs)
    monthly = training_cutoffs(CATALOG, models, date(2013, 4, 15), date(2013, 6, 30), "monthly")
    assert list(monthly) == [date(2013, 5, 1), date(2013, 6, 1)], "only cutoffs in the range"
    later = replace(models[1], first_cutoff=date(2013, 4, 1))
    staggered = training_cutoffs(
        CATALOG, [models[0], later], date(2013, 1, 1), date(2013, 5, 31), "monthly"
    )
    assert staggered == {
        date(2013, 3, 1): [models[0]],
        date(2013, 4, 1): [later, models[0]],
        date(2013, 5, 1): [models[0], later],
    }, "a calendar cutoff on a model's first trains every model"

    steps = backfill_steps(CATALOG, FLIGHTS, date(2013, 1, 1), date(2013, 4, 30))
    before, trained, after, served, drift = steps
    assert (before.first, before.last) == (date(2013, 1, 1), date(2013, 2, 28))
    assert (after.first, after.last) == (first_cutoff, date(2013, 4, 30))
    registers = {t.name for t in FLIGHTS.registers}
    assert registers <= set(before.keys) and not registers & set(after.keys), "registers once"
    for ingest in (before, after):
        assert {t.name for t in FLIGHTS.daily_tables} <= set(ingest.keys)
        assert {features_key(m).to_user_string() for m in models} <= set(ingest.keys)
    assert (trained.first, trained.last) == (first_cutoff, first_cutoff)
    assert set(trained.keys) == {model_key(m).to_user_string() for m in models}
    assert (served.first, served.last) == (drift.first, drift.last)
    assert (served.first, served.last) == (first_cutoff, date(2013, 4, 30))
    assert set(served.keys + drift.keys) == {
        k.to_user_string() for m in models for k in served_keys(m)
    }
    assert set(drift.keys) == {drift_key(m).to_user_string() for m in models}
    # The first models read only the days before their cutoff, which the days from it on do not
    # need; the drift reports read no prediction.
    assert [s.beside_previous for s in steps] == [False, False, True, False, True]

    quarterly = backfill_steps(
        CATALOG, FLIGHTS, date(2013, 1, 1), date(2013, 6, 30), cadence="quarterly"
    )
    assert [(s.label.split(": ")[1], s.first, s.beside_previous) for s in quarterly[1:4]] == [
        ("models", first_cutoff, False),
        ("raw tables and features", first_cutoff, True),
        ("models", date(2013, 6, 1), False),
    ], "a later cutoff trains on days the range ingests after the first: after them"
    from_cutoff = backfill_steps(CATALOG, FLIGHTS, first_cutoff, date(2013, 3, 31))
    assert [s.first for s in from_cutoff] == [first_cutoff] * 4, "one ingest when nothing precedes"
    assert not from_cutoff[1].beside_previous

    later = backfill_steps(CATALOG, FLIGHTS, date(2013, 6, 1), date(2013, 6, 30))
    assert [s.first for s in later] == [date(2013, 6, 1)] * 3, "champions exist: no training"


def test_a_range_outside_the_calendar_is_refused_naming_the_dataset(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    with pytest.raises(SystemExit) as refused:
        BACKFILL["main"](["--datasets", "flights", "--to", "2014-01-05"])
    assert refused.value.code == 2
    assert "flights: the days 2013-01-01..2014-01-05 are not within" in capsys.readouterr().err
    assert not (tmp_path / "dagster_home").exists(), "nothing ran"


def test_an_instance_configured_already_is_used_as_it_is(tmp_path, monkeypatch):
    """A production DAGSTER_HOME keeps its own dagster.yaml; make run's is rewritten."""
    home = tmp_path / "dagster_home"
    install_instance_config(home)
    config = home / "dagster.yaml"
    config.write_text(config.read_text() + "# the operator's own\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with prepare_instance(CATALOG, reconfigure=False):
        assert config.read_text().endswith("# the operator's own\n")
    with prepare_instance(CATALOG):
        assert not config.read_text().endswith("# the operator's own\n")


def test_one_command_backfills_the_graph_one_run_a_step_some_beside_others(tmp_path):
    """flight_delay over January and February and two days of March, from the synthetic source:
    its first version at 03-01 and what it serves from then on, each step one run, from a second
    process the ingestion of March beside the model and the drift reports beside the
    predictions."""
    env = platform_env(tmp_path)
    command = [sys.executable, "platform/backfill.py", "--models", "flight_delay"]
    command += ["--from", "2013-01-01", "--to", "2013-03-02"]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": done in") == 5
    assert "[3/5] flights: raw tables and features: beside it" in result.stdout
    assert "[5/5] flights: drift reports: beside it" in result.stdout
    assert "[5/5] flights: drift reports 2013-03-01..2013-03-02: done in" in result.stdout

    spec = CATALOG.model("flight_delay")
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        runs = instance.get_run_records()
        assert len(runs) == 5
        assert all(r.dagster_run.tags["platform/backfill"] == "true" for r in runs)
        days = FLIGHTS.partitions.get_partition_keys_in_range(
            dg.PartitionKeyRange("2013-01-01", "2013-03-02")
        )
        for table in [t.name for t in FLIGHTS.daily_tables] + [features_key(spec).to_user_string()]:
            assert instance.get_materialized_partitions(dg.AssetKey.from_user_string(table)) == set(
                days
            )
        assert instance.get_materialized_partitions(model_key(spec)) == {"2013-03-01"}
        for key in served_keys(spec):
            assert instance.get_materialized_partitions(key) == {"2013-03-01", "2013-03-02"}


def test_a_step_beside_another_runs_when_its_turn_comes_and_not_after_a_failure(tmp_path, instance):
    """The child of a step beside another is started a step ahead, and waits: it runs its step
    when the step it goes beside starts, and leaves without running when a step before fails."""
    days = dg.DailyPartitionsDefinition(start_date="2013-01-01")

    @dg.asset(partitions_def=days)
    def fails() -> None:
        raise RuntimeError("a step that fails")

    @dg.asset(partitions_def=days)
    def works() -> None:
        pass

    def step(key: str, beside: bool = False) -> Step:
        return Step(key, (key,), days, date(2013, 1, 1), date(2013, 1, 1), beside_previous=beside)

    def child(index: int) -> list[str]:
        ran = tmp_path / f"ran-{index}"
        code = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); " + (
            "from assets.backfill import await_turn; "
            f"await_turn() and open({str(ran)!r}, 'w').write('ran')"
        )
        return [sys.executable, "-c", code]

    def run(steps: list[Step]) -> int:
        return run_steps(instance, [fails, works], steps, {}, {}, beside=child)

    ran = tmp_path / "ran-2"
    assert run([step("works"), step("works"), step("works", beside=True)]) == 0
    assert ran.exists()
    ran.unlink()
    # Step 2's child was started with step 0, ahead of its turn.
    assert run([step("fails"), step("works"), step("works", beside=True)]) == 1
    assert not ran.exists()


def test_a_child_starts_ahead_but_never_waits_beside_a_step_with_companions(tmp_path, instance):
    """A step's child starts ahead of its turn: with the step before when that one runs alone,
    else only once that step's own run is done, so that it does not wait, holding memory,
    beside the busiest steps."""
    days = dg.DailyPartitionsDefinition(start_date="2013-01-01")
    seen: dict[str, bool] = {}

    def child_started(index: int, within: float) -> bool:
        deadline = time.monotonic() + within
        while not (tmp_path / f"started-{index}").exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    @dg.asset(partitions_def=days)
    def alone() -> None:
        seen["step 2's child during step 0, alone"] = child_started(2, within=30)

    @dg.asset(partitions_def=days)
    def lead() -> None:
        seen["step 4's child during step 1, beside step 2"] = child_started(4, within=3)

    @dg.asset(partitions_def=days)
    def last() -> None:
        seen["step 4's child by step 3"] = child_started(4, within=30)

    def step(key: str, beside: bool = False) -> Step:
        return Step(key, (key,), days, date(2013, 1, 1), date(2013, 1, 1), beside_previous=beside)

    def child(index: int) -> list[str]:
        code = f"open({str(tmp_path / f'started-{index}')!r}, 'w'); import sys; sys.stdin.read()"
        return [sys.executable, "-c", code]

    steps = [step("alone"), step("lead"), step("alone", True), step("last"), step("alone", True)]
    assert run_steps(instance, [alone, lead, last], steps, {}, {}, beside=child) == 0
    assert seen == {
        "step 2's child during step 0, alone": True,
        "step 4's child during step 1, beside step 2": False,
        "step 4's child by step 3": True,
    }


def test_datasets_run_side_by_side_at_most_jobs_at_a_time_and_any_failure_fails(tmp_path):
    """The first dataset here while the others run as children, one at a time beside it when
    two may run at once; every child is waited for, and one that fails fails the command."""
    spans = tmp_path / "spans"

    def child(name: str, code: int) -> list[str]:
        record = (
            "import sys, time; start = time.time(); time.sleep(0.5); "
            f"open({str(spans)!r}, 'a').write(f'{name} {{start}} {{time.time()}}\\n'); "
            f"sys.exit({code})"
        )
        return [sys.executable, "-c", record]

    def own() -> int:
        start = time.time()
        time.sleep(0.5)
        spans.open("a").write(f"own {start} {time.time()}\n")
        return 0

    assert side_by_side(own, [child("first", 0), child("second", 3)], at_once=2) == 1
    ran = {
        name: (float(a), float(b))
        for name, a, b in map(str.split, spans.read_text().split("\n")[:-1])
    }
    assert ran["own"][0] < ran["first"][1] and ran["first"][0] < ran["own"][1], "side by side"
    assert ran["second"][0] >= ran["first"][1], "two at a time: the second child waits"
    assert side_by_side(lambda: 0, [child("third", 0)], at_once=3) == 0
    assert side_by_side(lambda: 1, [child("fourth", 0)], at_once=2) == 1
    assert "fourth" in spans.read_text(), "a child runs to its end when this process fails"


def test_a_dataset_of_its_own_process_gets_the_options_given_for_it():
    given = argparse.Namespace(
        models=["flight_delay", "demand_forecast"],
        first=date(2014, 1, 1),
        last=None,
        cadence="monthly",
        jobs=2,
    )
    command = BACKFILL["dataset_command"](given, "electricity")
    assert command[1].endswith("platform/backfill.py")
    assert command[2:] == [
        "--datasets",
        "electricity",
        "--jobs",
        "2",
        "--cadence",
        "monthly",
        "--models",
        "demand_forecast",
        "--from",
        "2014-01-01",
    ]
    alone = argparse.Namespace(models=None, first=None, last=None, cadence="first", jobs=1)
    assert "--models" not in BACKFILL["dataset_command"](alone, "flights")
