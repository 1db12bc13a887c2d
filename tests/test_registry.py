"""The registry: verified loading, the append-only promotion history, champions as of a date, and
readers that refuse a history or record that is not whole."""

import json
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import QUIET, BuiltPipeline, Platform, make_lake
from landing_support import failure_messages

from assets import defs as asset_defs
from resources import models_cli
from resources.lake import Lake
from resources.promotions import HistoryChanged
from resources.records import DamagedRegistryError
from resources.registry import ArtifactIntegrityError, ModelRegistry

MODEL = "flight_delay"


def _estimator():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


def _store(registry: ModelRegistry, cutoff: str, window: tuple[str, str]) -> str:
    version = f"{cutoff}.{cutoff.replace('-', '')}00"
    registry.save(
        MODEL,
        version,
        _estimator(),
        {"partition": cutoff, "training_window": list(window), "created_at": cutoff},
    )
    return version


@pytest.fixture
def registry(lake: Lake) -> ModelRegistry:
    return ModelRegistry(lake=lake)


@pytest.fixture
def three(registry: ModelRegistry) -> list[str]:
    """Versions with cutoffs Feb 1, Mar 1 and Apr 1, each trained on the 31 days before."""
    return [
        _store(registry, "2013-02-01", ("2013-01-01", "2013-01-31")),
        _store(registry, "2013-03-01", ("2013-01-29", "2013-02-28")),
        _store(registry, "2013-04-01", ("2013-03-01", "2013-03-31")),
    ]


def test_tampered_artifact_is_refused_naming_version_and_file(registry, three):
    path = registry.lake.root / "registry" / MODEL / three[0] / "model.skops"
    registry.load(MODEL, three[0])
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError, match=rf"{three[0]}.*model\.skops"):
        registry.load(MODEL, three[0])


def test_champion_is_looked_up_as_of_the_day(registry, three):
    v1, v2, _ = three
    assert registry.champion_at(MODEL, date(2013, 3, 1)) is None
    registry.promote(MODEL, v1, action="promote")
    registry.promote(MODEL, v2, action="promote")
    assert registry.champion_at(MODEL, date(2013, 1, 31)) is None
    assert registry.champion_at(MODEL, date(2013, 2, 28))["version"] == v1
    assert registry.champion_at(MODEL, date(2013, 3, 1))["version"] == v2
    # Promoting an older version again later, from the same day, wins the tie by sequence.
    registry.promote(MODEL, v1, date(2013, 3, 1), reason="v2 misbehaves")
    assert registry.champion_at(MODEL, date(2013, 3, 1))["version"] == v1
    assert registry.champion_at(MODEL, date(2013, 2, 28))["version"] == v1


def test_history_is_append_only_files(registry, three):
    registry.promote(MODEL, three[0])
    first = (registry.lake.root / "registry" / MODEL / "promotions" / "000001.json").read_bytes()
    registry.promote(MODEL, three[1])
    folder = registry.lake.root / "registry" / MODEL / "promotions"
    assert sorted(p.name for p in folder.iterdir()) == ["000001.json", "000002.json"]
    assert (folder / "000001.json").read_bytes() == first
    assert [e["seq"] for e in registry.history(MODEL)] == [1, 2]
    assert set(registry.history(MODEL)[0]) >= {
        "version", "effective_from", "action", "reason", "created_at"
    }  # fmt: skip


def test_a_version_cannot_serve_days_before_its_cutoff(registry, three):
    with pytest.raises(ValueError, match="before its cutoff"):
        registry.promote(MODEL, three[1], date(2013, 2, 15))
    with pytest.raises(KeyError):
        registry.promote(MODEL, "2013-02-01.0000000000")


def test_rollback_restores_the_previous_champion_and_skips_rolled_back_ones(registry, three):
    v1, v2, v3 = three
    for version in three:
        registry.promote(MODEL, version, action="promote")
    entry = registry.rollback(MODEL)
    assert (entry["version"], entry["replaces"], entry["effective_from"]) == (v2, v3, "2013-04-01")
    assert registry.champion_at(MODEL, date(2013, 4, 2))["version"] == v2
    assert registry.champion_at(MODEL, date(2013, 3, 2))["version"] == v2  # before: unchanged
    with pytest.raises(ValueError, match="would not override"):
        registry.rollback(MODEL, date(2013, 3, 15))
    entry = registry.rollback(MODEL)  # v3 was withdrawn: the one before v2 is v1
    assert (entry["version"], entry["replaces"]) == (v1, v2)
    assert registry.champion_at(MODEL, date(2013, 4, 2))["version"] == v1
    with pytest.raises(LookupError, match="only champion"):
        registry.rollback(MODEL)


def test_rollback_needs_a_previous_champion(registry, three):
    with pytest.raises(LookupError, match="nothing to roll back"):
        registry.rollback(MODEL)
    registry.promote(MODEL, three[0])
    with pytest.raises(LookupError, match="only champion"):
        registry.rollback(MODEL)


def test_versions_trained_on_a_partition(registry, three):
    v1, v2, v3 = three
    assert registry.versions_trained_on(MODEL, date(2013, 1, 15)) == [registry.record(MODEL, v1)]
    found = [r["version"] for r in registry.versions_trained_on(MODEL, date(2013, 1, 30))]
    assert found == [v1, v2]
    assert [r["version"] for r in registry.versions_trained_on(MODEL, date(2013, 3, 1))] == [v3]
    assert registry.versions_trained_on(MODEL, date(2013, 4, 1)) == []


@pytest.mark.parametrize("task", ["binary_classification", "regression"])
def test_the_default_estimators_of_both_tasks_load_as_stored(registry, task):
    """skops loads only trusted types: the default classifier's and regressor's are trusted."""
    import dataclasses

    import numpy as np
    import pandas as pd

    from assets import CATALOG, modeling

    spec = CATALOG.model("flight_delay")
    if task == "regression":
        spec = dataclasses.replace(
            spec, name="minutes", task=task, metrics=(), gate_metric="", gate_limit=30.0
        )
    rng = np.random.default_rng(3)
    rows = pd.DataFrame({c: rng.normal(size=300) for c in spec.numeric_features})
    for column in spec.categorical_features:
        rows[column] = rng.choice(["A", "B"], 300)
    rows["label"] = (rows["dep_hour"] > 0).astype(int if task != "regression" else float)
    fitted = modeling.fit(spec, rows, {**spec.params, "max_iter": 5, "min_samples_leaf": 10})
    registry.save(spec.name, "2013-03-01.0123456789", fitted, {"partition": "2013-03-01"})
    loaded = registry.load(spec.name, "2013-03-01.0123456789")
    np.testing.assert_array_equal(
        modeling.score(loaded, spec, rows), modeling.score(fitted, spec, rows)
    )


def _promotions(registry: ModelRegistry) -> Path:
    return registry.lake.root / "registry" / MODEL / "promotions"


def test_a_promotion_decided_on_a_stale_history_is_not_written(registry, three):
    v1, v2, v3 = three
    registry.promote(MODEL, v1, action="promote")
    decided_on = registry.history(MODEL)
    registry.promote(MODEL, v2, action="promote")  # lands between the decision and its write

    with pytest.raises(HistoryChanged, match="entry 2 was appended by another writer"):
        registry.promote(MODEL, v3, action="promote", decided_on=decided_on)

    assert [e["version"] for e in registry.history(MODEL)] == [v1, v2]
    entry = registry.promote(MODEL, v3, action="promote", decided_on=registry.history(MODEL))
    assert entry["seq"] == 3


def test_a_deleted_history_entry_makes_every_reader_refuse_naming_it(registry, three, capsys):
    for version in three:
        registry.promote(MODEL, version, action="promote")
    missing = _promotions(registry) / "000002.json"
    missing.unlink()  # a "rollback" by hand: v1 would silently serve March again

    for read in (
        lambda: registry.history(MODEL),
        lambda: registry.champion_at(MODEL, date(2013, 3, 15)),
        lambda: registry.rollback(MODEL),
        lambda: registry.promote(MODEL, three[1]),
    ):
        with pytest.raises(DamagedRegistryError, match=r"entries \[2\] are missing") as refused:
            read()
        assert str(missing) in str(refused.value)
        assert "roll it back" in str(refused.value)
    assert sorted(p.name for p in _promotions(registry).iterdir()) == ["000001.json", "000003.json"]

    assert models_cli.main(["--model", MODEL, "history"]) == 1
    assert str(missing) in capsys.readouterr().err


DAMAGE = {
    "empty": b"",
    "truncated": b'{\n  "seq": 2,\n  "version": "2013-',
    "not JSON": b"<html>Service Unavailable</html>",
    "a list": b"[1, 2]",
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_history_entry_is_refused_naming_the_file(registry, three, damage, capsys):
    for version in three:
        registry.promote(MODEL, version, action="promote")
    damaged = _promotions(registry) / "000002.json"
    damaged.write_bytes(DAMAGE[damage])

    with pytest.raises(DamagedRegistryError, match="refusing to read around it") as refused:
        registry.champion_at(MODEL, date(2013, 3, 15))
    assert str(damaged) in str(refused.value)
    assert models_cli.main(["--model", MODEL, "champion"]) == 1
    assert str(damaged) in capsys.readouterr().err


def test_a_history_entry_that_lacks_a_field_or_names_another_seq_is_refused(registry, three):
    registry.promote(MODEL, three[0])
    entry = _promotions(registry) / "000001.json"
    fields = json.loads(entry.read_bytes())
    entry.write_text(json.dumps({k: v for k, v in fields.items() if k != "effective_from"}))
    with pytest.raises(DamagedRegistryError, match=r"lacks the fields \['effective_from'\]"):
        registry.history(MODEL)
    entry.write_text(json.dumps(fields | {"seq": 7}))
    with pytest.raises(DamagedRegistryError, match="says it is entry 7"):
        registry.history(MODEL)


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_model_record_is_refused_naming_the_file(registry, three, damage, capsys):
    record = registry.lake.root / "registry" / MODEL / three[1] / "record.json"
    record.write_bytes(DAMAGE[damage])

    for read in (
        lambda: registry.versions(MODEL),
        lambda: registry.record(MODEL, three[1]),
        lambda: registry.load(MODEL, three[1]),
        lambda: registry.promote(MODEL, three[1]),
    ):
        with pytest.raises(DamagedRegistryError, match="materialize the version's cutoff again"):
            read()
    assert models_cli.main(["--model", MODEL, "list"]) == 1
    assert str(record) in capsys.readouterr().err
    registry.record(MODEL, three[0])  # the other versions are whole


def test_a_record_copied_into_another_version_is_refused(registry, three):
    folder = registry.lake.root / "registry" / MODEL
    (folder / three[1] / "record.json").write_bytes(
        (folder / three[0] / "record.json").read_bytes()
    )
    with pytest.raises(DamagedRegistryError, match=f"is the record of version '{three[0]}'"):
        registry.record(MODEL, three[1])


def test_predictions_refuse_a_history_with_an_entry_deleted_and_keep_their_rows(
    synthetic_pipeline: BuiltPipeline, tmp_path: Path, instance
):
    """On a real lake and instance: a champion rolled back by deleting its entry would change
    which model scored past days; predictions fail naming the file instead, and keep their rows."""
    shutil.copytree(synthetic_pipeline.platform.lake.root, tmp_path / "lake")
    lake = make_lake(tmp_path)
    registry = ModelRegistry(lake=lake)
    [first] = registry.history(MODEL)
    day = date.fromisoformat(first["effective_from"])
    registry.promote(MODEL, first["version"], day, reason="re-checked")
    registry.promote(MODEL, first["version"], day, reason="re-checked again")
    deleted = lake.root / "registry" / MODEL / "promotions" / "000002.json"
    deleted.unlink()
    before = lake.read(f"{MODEL}/predictions", [day])

    result = dg.materialize(
        list(asset_defs.assets),
        selection=[f"{MODEL}/predictions"],
        partition_key=day.isoformat(),
        instance=instance,
        resources=Platform(instance, None, lake).resources,
        run_config=QUIET,
        raise_on_error=False,
    )

    assert not result.success
    message = failure_messages(result)
    assert "entries [2] are missing" in message and str(deleted) in message, message
    pd.testing.assert_frame_equal(lake.read(f"{MODEL}/predictions", [day]), before)
