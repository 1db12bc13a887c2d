"""Notebooks as steps: a declared notebook runs through a real Jupyter kernel on a real instance,
its executed copy is kept in the lake as .ipynb and HTML and listed in the materialization, and a
cell that raises fails the step naming the cell and the error, keeping the partial copy while the
copies stored before stay whole.

On a copy of the session's synthetic lake: the shipped model card of `flight_delay` for its
first version, and a day's notebook declared here that reads the read API and raises on the day
it is told to, its frames joined on the day as any two of the API's are."""

import dataclasses
import json
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import nbformat
import pytest
from conftest import (
    PIPELINE_MODEL_CUTOFF,
    QUIET,
    BuiltPipeline,
    make_lake,
    platform_instance,
    synthetic_sources,
)

from assets import CATALOG, build_assets
from assets.catalog import Catalog
from assets.keys import notebook_key
from assets.model_pipeline import MODEL_VERSION
from assets.model_spec import Input
from assets.notebook_spec import Notebook, Trigger
from assets.notebooks import NOTEBOOK, NOTEBOOK_HTML
from datasets.flights.tables import FLIGHT_KEY
from resources import platform_resources
from resources.lake import Lake

MODEL = "flight_delay"
CARD = notebook_key(MODEL, "model_card")
REVIEW = notebook_key(MODEL, "day_review")


@dataclasses.dataclass
class Lab:
    lake: Lake
    instance: dg.DagsterInstance
    resources: dict
    folder: Path


@pytest.fixture(scope="module")
def lab(synthetic_pipeline: BuiltPipeline, tmp_path_factory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("notebooks")
    shutil.copytree(synthetic_pipeline.platform.lake.root, folder / "lake")
    lake = make_lake(folder)
    with platform_instance() as instance:
        resources = platform_resources(sources=synthetic_sources(), lake=lake)
        yield Lab(lake, instance, resources, folder)


def materialize(lab: Lab, catalog: Catalog, key: dg.AssetKey, first: str, last: str):
    return dg.materialize(
        build_assets(catalog),
        selection=[key],
        instance=lab.instance,
        resources=lab.resources,
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
        run_config=QUIET,
        raise_on_error=False,
    )


def partition_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, day: str) -> dict:
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
    ).records
    return {name: value.value for name, value in record.asset_materialization.metadata.items()}


def outputs(executed: dict) -> list[str]:
    """Every text a code cell of an executed notebook printed, displayed or raised."""
    texts = []
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                texts.append("".join(output["text"]))
            elif output["output_type"] == "error":
                texts.append(f"{output['ename']}: {output['evalue']}")
            else:
                texts.append("".join(output.get("data", {}).get("text/plain", "")))
    return texts


def test_the_model_card_of_a_version_runs_in_a_kernel_and_is_kept_beside_its_cutoff(lab: Lab):
    result = materialize(lab, CATALOG, CARD, PIPELINE_MODEL_CUTOFF, PIPELINE_MODEL_CUTOFF)
    assert result.success
    [version] = [
        r["version"]
        for r in lab.resources["registry"].versions(MODEL)
        if r["partition"] == PIPELINE_MODEL_CUTOFF
    ]
    metadata = partition_metadata(lab.instance, CARD, PIPELINE_MODEL_CUTOFF)
    beside = lab.lake.root / CARD.to_user_string() / f"date={PIPELINE_MODEL_CUTOFF}"
    assert metadata[MODEL_VERSION] == version
    assert metadata[NOTEBOOK] == str(beside / f"{version}.ipynb")
    assert metadata[NOTEBOOK_HTML] == str(beside / f"{version}.html")

    executed = nbformat.read(metadata[NOTEBOOK], as_version=4)
    nbformat.validate(executed)
    [injected] = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert f'version = "{version}"' in injected.source
    assert f'lake_root = "{lab.lake.root}"' in injected.source
    texts = outputs(json.loads(nbformat.writes(executed)))
    assert not any(t.startswith(("Error", "Traceback")) for t in texts)
    [gate] = [t for t in texts if t.lstrip().startswith("recorded")]
    record = lab.resources["registry"].record(MODEL, version)
    auc = f"{record['metrics']['auc']:.4f}"
    assert gate.split("\n")[1].split() == ["auc", auc, auc], "the replayed gate is the recorded one"
    for segment in ("carrier", "origin", "hour"):
        assert any(t.lstrip().startswith(segment) for t in texts), segment
    assert any("auc lost" in t and "wind_speed" in t for t in texts), "permutation importance"
    page = Path(metadata[NOTEBOOK_HTML]).read_text()
    assert "Model card" in page and version in page and "data:image/png;base64" in page


def day_review(folder: Path, fail_on: str) -> Catalog:
    """The catalog with `flight_delay` declaring a day's notebook that reads the day's
    predictions and its declared input through the read API, and raises on `fail_on`."""
    path = folder / "day_review.ipynb"
    parameters = nbformat.v4.new_code_cell(
        'model = ""\nday = ""\nlake_root = ""\ninputs = {}\nfail_on = ""'
    )
    parameters.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# The day's predictions"),
            parameters,
            nbformat.v4.new_code_cell(
                "from assets.notebook_api import Reader\n\n"
                "platform = Reader(lake_root, inputs)\n"
                "predictions = platform.predictions(model, day)\n"
                "outcomes = platform.input('outcomes')\n"
                "scored = predictions.merge(platform.labels(model, day))\n"
                "print(f'{len(predictions)} predictions, {len(outcomes)} outcomes, '\n"
                "      f'{len(scored)} labelled on {day}')"
            ),
            nbformat.v4.new_code_cell(
                "if day == fail_on:\n    raise RuntimeError(f'review of {day} refused')"
            ),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    nbformat.write(notebook, path)
    review = Notebook(
        name="day_review",
        path=path,
        trigger=Trigger.DAY,
        inputs={"outcomes": Input("flight_outcomes")},
        parameters={"fail_on": fail_on},
    )
    models = [
        dataclasses.replace(m, notebooks=(*m.notebooks, review)) if m.name == MODEL else m
        for m in CATALOG.models
    ]
    return Catalog(CATALOG.datasets, tuple(models))


def test_a_day_notebook_is_kept_per_partition_and_a_failing_cell_keeps_what_was_stored(lab: Lab):
    folder = lab.lake.root / REVIEW.to_user_string()
    first = materialize(lab, day_review(lab.folder, ""), REVIEW, "2013-03-01", "2013-03-02")
    assert first.success
    for day in ("2013-03-01", "2013-03-02"):
        copy = folder / f"date={day}" / "day_review.ipynb"
        assert partition_metadata(lab.instance, REVIEW, day)[NOTEBOOK] == str(copy)
        printed = outputs(json.loads(copy.read_text()))
        predictions = lab.lake.read(f"{MODEL}/predictions", [date.fromisoformat(day)])
        outcomes = lab.lake.read("flight_outcomes", [date.fromisoformat(day)])
        labelled = predictions.merge(outcomes[outcomes["arr_delay"].notna()], on=list(FLIGHT_KEY))
        assert printed == [
            f"{len(predictions)} predictions, {len(outcomes)} outcomes, "
            f"{len(labelled)} labelled on {day}\n"
        ]
    kept = (folder / "date=2013-03-02" / "day_review.ipynb").read_bytes()

    failing = materialize(
        lab, day_review(lab.folder, "2013-03-02"), REVIEW, "2013-03-01", "2013-03-03"
    )
    assert not failing.success
    [failure] = [e for e in failing.all_events if e.is_step_failure]
    message = failure.event_specific_data.error.message
    assert "flight_delay/day_review[2013-03-02]: day_review.ipynb failed at cell 4 (In [" in message
    assert "RuntimeError: review of 2013-03-02 refused" in message
    partial = folder / "date=2013-03-02" / "failed" / failing.run_id / "day_review.ipynb"
    assert str(partial) in message
    texts = outputs(json.loads(partial.read_text()))
    assert texts[0].endswith("labelled on 2013-03-02\n"), "the cells before the failure ran"
    assert texts[-1] == "RuntimeError: review of 2013-03-02 refused"
    assert partial.with_suffix(".html").is_file()
    assert (folder / "date=2013-03-02" / "day_review.ipynb").read_bytes() == kept
    assert partition_metadata(lab.instance, REVIEW, "2013-03-01")[NOTEBOOK].endswith(
        "date=2013-03-01/day_review.ipynb"
    )
    [before_failure] = lab.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=REVIEW, asset_partitions=["2013-03-01"]), limit=1
    ).records
    assert before_failure.run_id == failing.run_id, "days done before the failure are recorded"
    assert not (folder / "date=2013-03-03").exists(), "the run stops at the failing day"
    assert sorted(p.name for p in (folder / "date=2013-03-01").iterdir()) == [
        "day_review.html",
        "day_review.ipynb",
    ], "a rerun replaces its partition's copy"
