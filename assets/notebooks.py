"""The notebook factory: each declared notebook becomes the asset `<owner>/<notebook>`, in its
owner's group, in lineage after what it reads.

Partitions: the owner's daily calendar, for both triggers. A notebook of a day D follows that
day's quality (`<model>/prediction_quality[D]`, or every raw table of the dataset on D with its
checks). A notebook of a trained version follows `<model>/model[D]`: a model's versions are
its partitions, the training cutoffs, so the notebook of cutoff D runs for the version that
`model[D]` trained last, and a backfill of model cutoffs and their notebooks lines up partition
by partition. Declared inputs add their windows of days to the lineage.

A run over a range executes one notebook per partition, one kernel each, in date order. Every
executed copy is stored in the lake beside its partition as `.ipynb` and `.html`, each replaced
whole when the partition runs again, and listed in that partition's metadata. A cell that
raises stops the run: the partitions executed before it are recorded as materialized, the
partial copy is stored under `failed/<run id>/` (the last good copy of that partition stays as
it was), and the step fails naming the notebook, the cell and the error.
"""

from datetime import date

import dagster as dg

from assets.catalog import Catalog
from assets.features import input_days
from assets.keys import model_key, notebook_key, quality_key
from assets.model_pipeline import MODEL_VERSION
from assets.model_spec import ModelSpec
from assets.notebook_execution import ExecutedNotebook, execute_notebook
from assets.notebook_spec import (
    CUTOFF,
    DATASET,
    DAY,
    INPUTS,
    LAKE_ROOT,
    MODEL,
    VERSION,
    Notebook,
    Trigger,
)
from assets.partitions import daily_backfill_policy, run_days, window_mapping
from assets.tags import asset_tags
from resources.dataset import Dataset
from resources.lake import Lake
from resources.registry import ModelRegistry

NOTEBOOK_STAGE = "notebook"
# Metadata of each partition: where its executed copy and HTML page are, and what they cost.
NOTEBOOK, NOTEBOOK_HTML = "notebook", "notebook_html"
EXECUTION_SECONDS = "execution_seconds"
FAILED = "failed"


def build_notebook_assets(catalog: Catalog) -> list[dg.AssetsDefinition]:
    """An asset per notebook declared by a model or a dataset."""
    return [
        notebook_asset(catalog, owner, dataset, spec, notebook)
        for owner, dataset, spec, notebook in catalog.notebook_owners()
    ]


def trigger_deps(dataset: Dataset, spec: ModelSpec | None, notebook: Notebook) -> list[dg.AssetDep]:
    """What a partition of the notebook follows: the version trained for its cutoff, or the
    day's quality."""
    if notebook.trigger == Trigger.VERSION:
        return [dg.AssetDep(model_key(spec))]
    if spec is not None:
        return [dg.AssetDep(quality_key(spec))]
    return [dg.AssetDep(table.name) for table in dataset.daily_tables]


def input_deps(catalog: Catalog, notebook: Notebook) -> list[dg.AssetDep]:
    return [
        dg.AssetDep(
            dg.AssetKey.from_user_string(i.table),
            partition_mapping=(
                window_mapping(i.lookback_days, i.same_day) if catalog.is_daily(i) else None
            ),
        )
        for i in notebook.inputs.values()
    ]


def notebook_asset(
    catalog: Catalog, owner: str, dataset: Dataset, spec: ModelSpec | None, notebook: Notebook
) -> dg.AssetsDefinition:
    key = notebook_key(owner, notebook.name)
    table = key.to_user_string()
    when = (
        "for every version trained, after its quality gate"
        if notebook.trigger == Trigger.VERSION
        else "for every day, after the day's quality"
    )

    @dg.asset(
        key=key,
        description=(
            f"{notebook.description or 'Notebook ' + notebook.path.name} Executed {when}; each "
            "executed copy is kept beside its partition as .ipynb and .html."
        ),
        group_name=owner,
        tags=asset_tags(NOTEBOOK_STAGE, dataset=dataset.name, model=spec.name if spec else ""),
        partitions_def=dataset.partitions,
        backfill_policy=daily_backfill_policy(),
        kinds={"jupyter"},
        deps=[*trigger_deps(dataset, spec, notebook), *input_deps(catalog, notebook)],
        metadata={"notebook_source": dg.MetadataValue.path(str(notebook.path))},
    )
    def run_notebook(
        context: dg.AssetExecutionContext, lake: Lake, registry: ModelRegistry
    ) -> dg.MaterializeResult:
        days = run_days(context)
        versions = (
            trained_versions(registry, spec, days, table)
            if notebook.trigger == Trigger.VERSION
            else {}
        )
        done: dict[date, dict[str, dg.MetadataValue]] = {}
        for day in days:
            version = versions.get(day)
            parameters = injected(catalog, lake, owner, dataset, spec, notebook, day, version)
            stem = version or notebook.name
            executed = execute_notebook(notebook.path, parameters)
            if executed.failure is not None:
                kept = store(
                    lake, f"{table}/date={day}/{FAILED}/{context.run.run_id}/{stem}", executed
                )
                for finished, metadata in done.items():
                    context.log_event(
                        dg.AssetMaterialization(
                            key, partition=finished.isoformat(), metadata=metadata
                        )
                    )
                raise dg.Failure(
                    description=(
                        f"{table}[{day}]: {executed.failure.describe(notebook.path)}. The "
                        f"partially executed notebook is kept at {kept[NOTEBOOK].value}"
                    ),
                    metadata=kept,
                )
            stored = store(lake, f"{table}/date={day}/{stem}", executed)
            done[day] = stored | {
                EXECUTION_SECONDS: dg.MetadataValue.float(round(executed.seconds, 3)),
                "code_cells": dg.MetadataValue.int(executed.code_cells),
            }
            if version:
                done[day][MODEL_VERSION] = dg.MetadataValue.text(version)
            context.log.info(f"{table}[{day}]: executed in {executed.seconds:.1f}s")
        for day, metadata in done.items():
            context.add_asset_metadata(metadata, partition_key=day.isoformat())
        return dg.MaterializeResult()

    return run_notebook


def trained_versions(
    registry: ModelRegistry, spec: ModelSpec, days: list[date], table: str
) -> dict[date, str]:
    """The version each cutoff trained last; fails naming the cutoffs that have none."""
    newest = {r["partition"]: r["version"] for r in registry.versions(spec.name)}
    missing = [d for d in days if d.isoformat() not in newest]
    if missing:
        raise dg.Failure(
            f"{table}: no {spec.name} version was trained for the cutoffs "
            f"{', '.join(d.isoformat() for d in missing[:10])}; materialize "
            f"{model_key(spec).to_user_string()} for them first, or choose its cutoffs"
        )
    return {d: newest[d.isoformat()] for d in days}


def injected(
    catalog: Catalog,
    lake: Lake,
    owner: str,
    dataset: Dataset,
    spec: ModelSpec | None,
    notebook: Notebook,
    day: date,
    version: str | None,
) -> dict:
    """The parameters of one execution: the declared ones, and the platform's (a version's
    notebook gets its version and cutoff, a day's its day)."""
    inputs = {}
    for name, input_ in notebook.inputs.items():
        inputs[name] = {"table": input_.table}
        if catalog.is_daily(input_):
            days = input_days(input_, [day], dataset.first_day)
            inputs[name]["days"] = [d.isoformat() for d in days]
    platform = {LAKE_ROOT: lake.location, INPUTS: inputs}
    if spec is None:
        platform |= {DATASET: owner, DAY: day.isoformat()}
    elif version:
        platform |= {MODEL: owner, VERSION: version, CUTOFF: day.isoformat()}
    else:
        platform |= {MODEL: owner, DAY: day.isoformat()}
    return dict(notebook.parameters) | platform


def store(lake: Lake, stem: str, executed: ExecutedNotebook) -> dict[str, dg.MetadataValue]:
    """The executed copy and its page at `<stem>.ipynb` and `<stem>.html`, each replaced whole."""
    objects = {f"{stem}.ipynb": executed.ipynb, f"{stem}.html": executed.html}
    lake.store.put_many(objects)
    ipynb, html = (lake.store.uri(key) for key in objects)
    return {NOTEBOOK: dg.MetadataValue.path(ipynb), NOTEBOOK_HTML: dg.MetadataValue.path(html)}
