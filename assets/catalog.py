"""The declarations of the platform, found and checked once when the code location loads.

Datasets are the modules and packages of `datasets/` that define `DATASET`; models, those of
`models/` that define `MODEL` (or `MODELS`, a list, for a family of variants). Modules named by
PLATFORM_DECLARATIONS may define any of the three, so a team can keep its declarations in a
package of its own. Everything that refers across declarations is checked here, with a message
that says what to change: inputs name known tables, labels can be joined on the entity key, the
features query returns the declared columns, a classifier's label is a condition, a notebook
exists, has its parameters cell and reads tables of its owner's calendar.
"""

import importlib
import json
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path

import duckdb

from assets.keys import model_key, model_keys, notebook_key
from assets.model_spec import LABEL, Input, ModelSpec, Task
from assets.notebook_spec import PARAMETERS_TAG, Notebook, Trigger
from resources import settings
from resources.dataset import Dataset, RawTable
from resources.scratch import scratch

DECLARATION_PACKAGES = ("datasets", "models")
NUMERIC_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE"}
CONDITION_TYPES = {"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT"}


class DeclarationError(ValueError):
    """A declaration that cannot work, and what to change."""


@dataclass(frozen=True)
class Catalog:
    """Every dataset and model, checked against each other."""

    datasets: tuple[Dataset, ...]
    models: tuple[ModelSpec, ...]

    def __post_init__(self):
        self._check()

    @cached_property
    def tables(self) -> dict[str, tuple[Dataset, RawTable]]:
        return {t.name: (d, t) for d in self.datasets for t in d.tables}

    def table(self, name: str) -> RawTable:
        return self.tables[name][1]

    def model(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise KeyError(f"no model {name!r}; declared: {', '.join(m.name for m in self.models)}")

    def features_owner(self, spec: ModelSpec) -> ModelSpec:
        """The model whose features `spec` reads: itself, or the one it names."""
        return self.model(spec.features_from) if spec.features_from else spec

    def dataset_of(self, spec: ModelSpec) -> Dataset:
        """The dataset whose calendar the model follows: that of its label."""
        return self.tables[spec.label.table][0]

    def first_cutoff(self, spec: ModelSpec) -> date:
        """The cutoff of the model's first version: declared, or the first day whose window
        is whole."""
        first_day = self.dataset_of(spec).first_day
        return spec.first_cutoff or first_day + timedelta(days=spec.window_days)

    def label_table(self, spec: ModelSpec) -> RawTable:
        return self.table(spec.label.table)

    def models_of(self, dataset: Dataset) -> list[ModelSpec]:
        return [m for m in self.models if self.dataset_of(m) is dataset]

    def input_table(self, name: str) -> RawTable | None:
        """The raw table an input reads, or None when it reads a model's features."""
        return self.tables[name][1] if name in self.tables else None

    def is_daily(self, input_: Input) -> bool:
        table = self.input_table(input_.table)
        return table is None or table.daily

    # --- checks ---------------------------------------------------------------------------

    def _check(self) -> None:
        _unique("dataset", [d.name for d in self.datasets])
        _unique("model", [m.name for m in self.models])
        _unique("raw table", [t.name for d in self.datasets for t in d.tables])
        _unique("landing name", [t.landing_name for d in self.datasets for t in d.tables])
        assets = {t.name for d in self.datasets for t in d.tables}
        clash = sorted(assets & {m.name for m in self.models})
        if clash:
            raise DeclarationError(f"models and raw tables share names: {clash}")
        self._check_synthetic_settings()
        for spec in self.models:
            self._check_model(spec)
        self._check_notebooks()

    def notebook_owners(self) -> list[tuple[str, Dataset, ModelSpec | None, Notebook]]:
        """Every declared notebook with its owner's name, its calendar's dataset and its model
        (None for a dataset's notebook)."""
        owned = [(m.name, self.dataset_of(m), m, n) for m in self.models for n in m.notebooks]
        return owned + [(d.name, d, None, n) for d in self.datasets for n in d.notebooks]

    def _check_notebooks(self) -> None:
        taken = {key for spec in self.models for key in model_keys(spec)}
        # What a notebook may read beside raw tables: the lake tables of the models' pipelines.
        model_tables = {
            key.to_user_string(): self.dataset_of(spec)
            for spec in self.models
            for key in model_keys(spec)
            if key != model_key(spec)
        }
        for owner, dataset, spec, notebook in self.notebook_owners():
            where = f"{'model' if spec else 'dataset'} {owner}: notebook {notebook.name}"
            if not isinstance(notebook, Notebook):
                raise DeclarationError(f"{owner}: {notebook!r} is not a Notebook")
            key = notebook_key(owner, notebook.name)
            if key in taken:
                raise DeclarationError(
                    f"{where}: its asset {key.to_user_string()} is already another asset's "
                    "key; rename the notebook"
                )
            taken.add(key)
            if spec is None and notebook.trigger == Trigger.VERSION:
                raise DeclarationError(
                    f"{where}: a dataset has no trained versions; declare trigger=Trigger.DAY"
                )
            for name, input_ in notebook.inputs.items():
                if input_.table in self.tables:
                    table_dataset, table = self.tables[input_.table]
                    other = table_dataset if table.daily else dataset
                elif input_.table in model_tables:
                    other = model_tables[input_.table]
                else:
                    raise DeclarationError(
                        f"{where}: input {name} reads {input_.table!r}, which is neither a raw "
                        "table nor a table of a model's pipeline (e.g. 'flight_delay/predictions')"
                    )
                if other is not dataset:
                    raise DeclarationError(
                        f"{where}: input {name} reads {input_.table} of dataset {other.name}, "
                        f"but the notebook follows {dataset.name}'s calendar"
                    )
            check_notebook_file(where, notebook.path)

    def _check_synthetic_settings(self) -> None:
        """Every PLATFORM_SYNTHETIC_<FIELD> set is a field of some generator, of a valid value."""
        from pydantic import ValidationError

        chosen = settings.synthetic_settings()
        known = {f for d in self.datasets if d.synthetic for f in d.synthetic.model_fields}
        unknown = sorted(set(chosen) - known)
        if unknown:
            variables = ", ".join(f"{settings.SYNTHETIC_PREFIX}{n.upper()}" for n in unknown)
            raise DeclarationError(
                f"{variables}: no dataset's synthetic generator has such a field "
                f"(known: {', '.join(sorted(known))})"
            )
        for dataset in self.datasets:
            if dataset.synthetic is None:
                continue
            fields = {k: v for k, v in chosen.items() if k in dataset.synthetic.model_fields}
            try:
                dataset.synthetic(**fields)
            except ValidationError as error:
                bad = ", ".join(
                    f"{settings.SYNTHETIC_PREFIX}{str(e['loc'][0]).upper()}={e['input']!r}: "
                    f"{e['msg']}"
                    for e in error.errors()
                )
                raise DeclarationError(f"synthetic {dataset.name}: {bad}") from None

    def _check_model(self, spec: ModelSpec) -> None:
        where = f"model {spec.name}"
        if spec.label.table not in self.tables:
            raise DeclarationError(
                f"{where}: label table {spec.label.table!r} is not a raw table of any dataset"
            )
        label_table = self.label_table(spec)
        if label_table.day_column != spec.day_column:
            raise DeclarationError(
                f"{where}: the entity key must start with the label table's day column "
                f"{label_table.day_column!r} (it starts with {spec.day_column!r})"
            )
        unjoinable = [c for c in spec.entity_key if c not in label_table.columns]
        if unjoinable:
            raise DeclarationError(
                f"{where}: the label cannot be joined on the entity key: {label_table.name} has no "
                f"column {unjoinable}. Use an entity key made of {label_table.name}'s columns "
                f"({', '.join(label_table.columns)}), or label from a table at the model's grain"
            )
        dataset = self.dataset_of(spec)
        if spec.features_from:
            owner = self.model(spec.features_from) if spec.features_from in self._names else None
            if owner is None or owner.features_from:
                raise DeclarationError(
                    f"{where}: features_from={spec.features_from!r} must name a model that "
                    "computes its own features"
                )
            if self.dataset_of(owner) is not dataset:
                raise DeclarationError(f"{where}: it reads features of another dataset's model")
        for name, input_ in spec.inputs.items():
            if input_.table in self.tables:
                table_dataset, table = self.tables[input_.table]
                if table.daily and table_dataset is not dataset:
                    raise DeclarationError(
                        f"{where}: input {name} reads {input_.table} of dataset "
                        f"{table_dataset.name}, but its label follows {dataset.name}'s calendar"
                    )
                if table.name == label_table.name and input_.same_day:
                    raise DeclarationError(
                        f"{where}: input {name} reads the label table {table.name} on day D "
                        "itself: a day's labels are known only after it. Set same_day=False "
                        "and a lookback"
                    )
            elif not (
                input_.table.endswith("/features")
                and input_.table.split("/")[0] in self._names
                and not self.model(input_.table.split("/")[0]).features_from
            ):
                raise DeclarationError(
                    f"{where}: input {name} reads {input_.table!r}, which is neither a raw table "
                    f"({', '.join(sorted(self.tables))}) nor a model's features ('<model>/features')"
                )
        cutoff = self.first_cutoff(spec)
        earliest = dataset.first_day + timedelta(days=spec.min_window_days)
        if not earliest <= cutoff < dataset.replay_from:
            raise DeclarationError(
                f"{where}: its first cutoff {cutoff} must fall on or after {earliest} (a window "
                f"of min_window_days) and before {dataset.name}'s replay starts on "
                f"{dataset.replay_from}; set first_cutoff"
            )
        self._check_label(spec)
        self._check_columns(spec, self.feature_columns(spec))

    @cached_property
    def _names(self) -> set[str]:
        return {m.name for m in self.models}

    def feature_columns(self, spec: ModelSpec) -> dict[str, str]:
        """The columns the model's features query returns, with their DuckDB types, found by
        running it over empty inputs."""
        owner = self.features_owner(spec)
        con = scratch()
        try:
            for name, input_ in owner.inputs.items():
                con.register(f"{name}__source", self.empty_input(input_))
                con.execute(self.input_view(owner, name, input_, f"{name}__source"))
            relation = con.sql(
                f"SELECT * FROM ({owner.features_sql.format(**owner.lookback)}) LIMIT 0"
            )
            return dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))
        except (duckdb.Error, KeyError, IndexError) as error:
            raise DeclarationError(
                f"model {owner.name}: the features query fails on its inputs: {error}"
            ) from None
        finally:
            con.close()

    def input_view(self, spec: ModelSpec, name: str, input_: Input, source: str) -> str:
        """The SQL creating view `name` of an input over the relation `source`: its columns, and
        on the label's table the label, as a number (1.0 and 0.0 for a condition)."""
        table = self.input_table(input_.table)
        label = ""
        if table is not None and table.name == spec.label.table:
            label = f", CAST(({spec.label.expression}) AS DOUBLE) AS {LABEL}"
        return f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT *{label} FROM "{source}"'

    def empty_input(self, input_: Input):
        """No rows, with the columns of the table `input_` reads."""
        table = self.input_table(input_.table)
        if table is None:
            owner = self.model(input_.table.split("/")[0])
            columns = self.feature_columns(owner)
            con = scratch()
            types = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in columns.items())
            return con.sql(f"SELECT {types} LIMIT 0").to_arrow_table()
        return table.arrow_schema.empty_table()

    def _check_columns(self, spec: ModelSpec, columns: dict[str, str]) -> None:
        where = f"model {spec.name}"
        missing = [c for c in (*spec.entity_key, *spec.features, *spec.carried) if c not in columns]
        if missing:
            raise DeclarationError(
                f"{where}: the features of {self.features_owner(spec).name} have no column "
                f"{missing} (they have {', '.join(columns)})"
            )
        if LABEL in columns:
            raise DeclarationError(
                f"{where}: the features query returns a column named 'label', the platform's "
                "name for the label; rename it"
            )
        if columns[spec.day_column] != "DATE":
            raise DeclarationError(f"{where}: {spec.day_column} must be a DATE in the features")
        not_numbers = [
            f"{c} ({columns[c]})" for c in spec.numeric_features if not is_number(columns[c])
        ]
        if not_numbers:
            raise DeclarationError(
                f"{where}: numeric features that are not numbers: {', '.join(not_numbers)}; "
                "cast them in the query or declare them categorical"
            )

    def _check_label(self, spec: ModelSpec) -> None:
        table = self.label_table(spec)
        con = scratch()
        try:
            con.register("labelled", table.arrow_schema.empty_table())
            kind = str(con.sql(f"SELECT ({spec.label.expression}) FROM labelled").types[0])
        except duckdb.Error as error:
            raise DeclarationError(
                f"model {spec.name}: label {spec.label.expression!r} fails on {table.name}: {error}"
            ) from None
        finally:
            con.close()
        if spec.task == Task.BINARY and kind not in CONDITION_TYPES:
            raise DeclarationError(
                f"model {spec.name}: a binary classifier needs a condition as its label, but "
                f"{spec.label.expression!r} is {kind}, a continuous value. Write a condition "
                f"(e.g. '{spec.label.expression} > 15') or declare task=Task.REGRESSION"
            )
        if spec.task == Task.REGRESSION and not is_number(kind):
            raise DeclarationError(
                f"model {spec.name}: a regression needs a number as its label, but "
                f"{spec.label.expression!r} is {kind}"
            )


def check_notebook_file(where: str, path: Path) -> None:
    """The notebook at `path` exists, is a Jupyter notebook, and has the code cell tagged
    `parameters` whose defaults the injected values follow."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except FileNotFoundError:
        raise DeclarationError(f"{where}: {path} does not exist") from None
    except (ValueError, KeyError, TypeError) as error:
        raise DeclarationError(f"{where}: {path} is not a Jupyter notebook ({error})") from None
    tagged = [
        c
        for c in cells
        if c.get("cell_type") == "code" and PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])
    ]
    if not tagged:
        raise DeclarationError(
            f"{where}: no code cell of {path} is tagged '{PARAMETERS_TAG}'. Tag the cell that "
            "sets the defaults of the parameters it reads (in JupyterLab: the cell's property "
            "inspector, Common Tools, Cell Tags), so the platform's values follow it"
        )


def is_number(duckdb_type: str) -> bool:
    return duckdb_type in NUMERIC_TYPES or duckdb_type.startswith("DECIMAL")


def _unique(kind: str, names: list[str]) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DeclarationError(f"{kind} names declared twice: {repeated}")


def _declared(module) -> tuple[list[Dataset], list[ModelSpec]]:
    """The declarations a module defines under the conventional names."""
    datasets = [module.DATASET] if hasattr(module, "DATASET") else []
    datasets += list(getattr(module, "DATASETS", []))
    models = [module.MODEL] if hasattr(module, "MODEL") else []
    models += list(getattr(module, "MODELS", []))
    for value, kind in [*((d, Dataset) for d in datasets), *((m, ModelSpec) for m in models)]:
        if not isinstance(value, kind):
            raise DeclarationError(f"{module.__name__}: {value!r} is not a {kind.__name__}")
    return datasets, models


def declaration_modules(extra: Iterable[str] = ()) -> list[str]:
    """The modules of `datasets/` and `models/`, then `extra`."""
    names = []
    for package_name in DECLARATION_PACKAGES:
        package = importlib.import_module(package_name)
        names += [
            f"{package_name}.{info.name}"
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name)
        ]
    return [*names, *extra]


def load_catalog(extra: Iterable[str] | None = None) -> Catalog:
    """Every declaration of `datasets/`, `models/` and the modules of PLATFORM_DECLARATIONS
    (or `extra`), checked."""
    datasets: list[Dataset] = []
    models: list[ModelSpec] = []
    extra = settings.declaration_modules() if extra is None else list(extra)
    for name in declaration_modules(extra):
        found_datasets, found_models = _declared(importlib.import_module(name))
        datasets += [d for d in found_datasets if all(d is not seen for seen in datasets)]
        models += [m for m in found_models if all(m is not seen for seen in models)]
    return Catalog(tuple(datasets), tuple(models))
