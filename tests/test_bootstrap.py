"""`make run`'s bootstrap brings every declared dataset and model to the day its replay starts, a
first champion of each model and its model card included, and a second bootstrap keeps what
exists."""

import itertools
import runpy
from datetime import timedelta

import pytest
from conftest import REPO_ROOT, make_lake, platform_instance, synthetic_sources

from assets import CATALOG
from assets.catalog import load_catalog
from assets.keys import features_key, model_key, notebook_key, served_keys
from assets.notebook_spec import Trigger
from resources import platform_resources

BOOTSTRAP = runpy.run_path(str(REPO_ROOT / "platform" / "bootstrap.py"))


@pytest.mark.parametrize("extra", [[], ["guide_bakery"]])
def test_every_declared_model_gets_a_first_version_and_serves_until_its_replay(extra):
    catalog = load_catalog(extra=extra)
    steps = BOOTSTRAP["bootstrap_steps"](catalog)
    for dataset in catalog.datasets:
        day_before_replay = dataset.replay_from - timedelta(days=1)
        raw = [s for s in steps if dataset.daily_tables[0].name in s.keys]
        assert {t.name for t in dataset.registers} <= set(raw[0].keys)
        assert all({t.name for t in dataset.daily_tables} <= set(s.keys) for s in raw)
        assert raw[0].first == dataset.first_day and raw[-1].last == day_before_replay
        assert all(a.last + timedelta(days=1) == b.first for a, b in itertools.pairwise(raw))
        for spec in catalog.models_of(dataset):
            cutoff = catalog.first_cutoff(spec)
            assert all(features_key(spec).to_user_string() in s.keys for s in raw)
            [trained] = [s for s in steps if model_key(spec).to_user_string() in s.keys]
            assert trained.first == trained.last == cutoff < dataset.replay_from
            served = [s for s in steps if set(s.keys) & served_names(spec)]
            assert {k for s in served for k in s.keys} >= served_names(spec)
            assert {(s.first, s.last) for s in served} == {(cutoff, day_before_replay)}
            ingested_first = [s for s in raw if s.first < cutoff]
            assert max(map(steps.index, ingested_first)) < steps.index(trained)
            assert max(map(steps.index, raw)) < steps.index(served[0])
            assert steps.index(trained) < steps.index(served[0])
            for notebook in spec.notebooks:
                key = notebook_key(spec.name, notebook.name).to_user_string()
                run = [s for s in steps if key in s.keys]
                if notebook.trigger == Trigger.DAY:
                    assert not run, "a day's notebooks are left to the daily cycle"
                    continue
                [card] = run
                assert card.first == card.last == cutoff
                assert steps.index(trained) < steps.index(card)


def test_the_bootstrap_materializes_every_model_once(tmp_path, capsys):
    """On the synthetic sources: each dataset to the day before its replay, each model with a
    champion; run again, every step is kept."""
    lake = make_lake(tmp_path)
    resources = platform_resources(sources=synthetic_sources(), lake=lake)
    registry = resources["registry"]
    with platform_instance() as instance:
        assert BOOTSTRAP["run"](instance, CATALOG, resources) == 0
        for spec in CATALOG.models:
            dataset = CATALOG.dataset_of(spec)
            [first] = registry.history(spec.name)
            assert first["effective_from"] == CATALOG.first_cutoff(spec).isoformat()
            served = instance.get_materialized_partitions(served_keys(spec)[0])
            assert max(served) == (dataset.replay_from - timedelta(days=1)).isoformat()
            for notebook in spec.notebooks:
                key = notebook_key(spec.name, notebook.name)
                assert instance.get_materialized_partitions(key) == {first["effective_from"]}
        runs = len(instance.get_run_records())
        capsys.readouterr()
        assert BOOTSTRAP["run"](instance, CATALOG, resources) == 0
        assert len(instance.get_run_records()) == runs
        assert capsys.readouterr().out.count("already materialized, kept") == len(
            BOOTSTRAP["bootstrap_steps"](CATALOG)
        )


def served_names(spec) -> set[str]:
    return {k.to_user_string() for k in served_keys(spec)}
