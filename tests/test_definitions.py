"""The code location loads, and its assets keep the contract's keys, partitions and UI grouping."""

import os
import runpy
import subprocess
from datetime import date

import dagster as dg
import pytest
from conftest import REPO_ROOT, make_lake, platform_env, start_materialize

from assets import CATALOG
from assets.dataset_jobs import dataset_job_name

CONTRACT_KEYS = {
    "raw_flights",
    "raw_weather",
    "flight_outcomes",
    "flight_delay/features",
    "flight_delay/model",
    "flight_delay/predictions",
}
CONTRACT_DAILY_KEYS = CONTRACT_KEYS
# Each dataset and each model is a group of its own in the lineage graph.
CONTRACT_GROUPS = {
    "raw_flights": "flights",
    "raw_weather": "flights",
    "flight_outcomes": "flights",
    "raw_planes": "flights",
    "flight_delay/features": "flight_delay",
    "flight_delay/model": "flight_delay",
    "flight_delay/predictions": "flight_delay",
}
ALLOWED_GROUPS = {d.name for d in CATALOG.datasets} | {m.name for m in CATALOG.models}


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    """The code location exactly as workspace.yaml loads it: a file, not a package."""
    return runpy.run_path(str(REPO_ROOT / "platform" / "definitions.py"))["defs"]


@pytest.fixture(scope="module")
def asset_nodes(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}


def test_definitions_are_loadable(defs: dg.Definitions):
    assert isinstance(defs, dg.Definitions)
    dg.Definitions.validate_loadable(defs)


def test_workspace_validates_with_the_dagster_cli(tmp_path):
    dagster = REPO_ROOT / ".venv" / "bin" / "dagster"
    assert dagster.exists(), "the venv has no dagster executable"
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = os.environ | {"DAGSTER_HOME": str(home), "PLATFORM_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Validation successful for code location flightdesk" in output, output
    # Loading definitions must not create local state as an import side effect.
    assert not (tmp_path / "data").exists()


def test_contract_asset_keys_exist(asset_nodes: dict):
    missing = CONTRACT_KEYS - set(asset_nodes)
    assert not missing, f"contract asset keys missing: {sorted(missing)}"


def test_daily_assets_follow_their_datasets_calendar_and_backfill_in_one_run(asset_nodes: dict):
    partitioned = {key for key, node in asset_nodes.items() if node.partitions_def is not None}
    assert partitioned >= CONTRACT_DAILY_KEYS
    calendars = {}
    for dataset in CATALOG.datasets:
        calendars |= {t.name: dataset.partitions for t in dataset.daily_tables}
    for spec in CATALOG.models:
        calendar = CATALOG.dataset_of(spec).partitions
        calendars |= {k: calendar for k in partitioned if k.startswith(f"{spec.name}/")}
    assert set(calendars) == partitioned
    for key in sorted(partitioned):
        node = asset_nodes[key]
        assert node.partitions_def == calendars[key], key
        assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
    flights = asset_nodes["raw_flights"].partitions_def.get_partition_keys()
    assert (flights[0], flights[-1]) == ("2013-01-01", "2013-12-31")


def test_one_cli_run_backfills_every_raw_table_planes_included(tmp_path):
    """The CLI refuses a partition range unless every selected asset backfills in one run; the
    unpartitioned plane register must not split a backfill of the dataset's group in two."""
    run = start_materialize(
        platform_env(tmp_path), "group:flights", "--partition-range", "2013-01-05...2013-01-06"
    )
    output = run.communicate(timeout=300)[0]
    assert run.returncode == 0, output[-4000:]

    lake = make_lake(tmp_path)
    days = [date(2013, 1, 5), date(2013, 1, 6)]
    for table in ("raw_flights", "raw_weather", "flight_outcomes"):
        assert lake.missing_partitions(table, days) == [], table
    assert len(lake.read("raw_planes")) > 0


def test_every_asset_has_a_description_and_a_known_group(asset_nodes: dict):
    for key, node in sorted(asset_nodes.items()):
        assert node.description and node.description.strip(), f"{key} has no description"
        assert node.group_name in ALLOWED_GROUPS, f"{key} is in group {node.group_name!r}"
    for key, group in CONTRACT_GROUPS.items():
        assert asset_nodes[key].group_name == group, key


def test_each_dataset_has_a_job_of_all_its_assets_that_the_ui_backfills_through(
    defs: dg.Definitions, asset_nodes: dict
):
    """The UI backfills a selection through the first job its assets share, by name: ours must
    come before Dagster's `__ASSET_JOB`, whose backfills extend a selection downstream."""
    from dagster._core.remote_representation.external_data import RepositorySnap

    snap = RepositorySnap.from_def(defs.get_repository_def())
    jobs_of = {node.asset_key.to_user_string(): node.job_names for node in snap.asset_nodes}
    for dataset in CATALOG.datasets:
        job = defs.resolve_job_def(dataset_job_name(dataset))
        assert job.partitions_def == dataset.partitions
        members = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
        expected = {t.name for t in dataset.tables} | {
            key
            for key, node in asset_nodes.items()
            if key.split("/")[0] in {m.name for m in CATALOG.models_of(dataset)}
        }
        assert members == expected
        for key in members:
            assert jobs_of[key][0] == dataset_job_name(dataset), (key, jobs_of[key])
