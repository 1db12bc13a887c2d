"""What a notebook step declares: a data scientist's notebook that the platform runs as an asset of
its own, bound to a trigger.

A model or a dataset lists its notebooks (`ModelSpec.notebooks`, `Dataset.notebooks`). Each runs
once per trained version of the model, after its quality gate (`Trigger.VERSION`), or once per
daily partition, after that day's quality (`Trigger.DAY`), with the platform's parameters
injected into the cell tagged `parameters` (see `INJECTED`) beside the declared `parameters`.
`inputs` name what else it reads, with windows of days as a model's inputs do: they enter its
lineage and reach it as the `inputs` parameter, which the read API (`assets.notebook_api`) reads.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from assets.model_spec import Input
from resources.dataset import check_identifier

# The parameters the platform injects; a notebook declares defaults for those it reads.
MODEL, DATASET, VERSION, CUTOFF, DAY = "model", "dataset", "version", "cutoff", "day"
LAKE_ROOT, INPUTS = "lake_root", "inputs"
INJECTED = (MODEL, DATASET, VERSION, CUTOFF, DAY, LAKE_ROOT, INPUTS)
# The tag papermill looks for: the injected values follow the cell that carries it.
PARAMETERS_TAG = "parameters"
# The model card every shipped model declares (`model_card`).
MODEL_CARD = Path(__file__).with_name("model_card.ipynb")


class Trigger(StrEnum):
    VERSION = "version"  # per trained version of a model, after its quality gate
    DAY = "day"  # per daily partition, after the day's quality


@dataclass(frozen=True)
class Notebook:
    """A notebook run as the asset `<model or dataset>/<name>`: `path` is the .ipynb file, which
    ships beside its declaration (`notebook_file(__file__, 'review.ipynb')`)."""

    name: str
    path: Path
    trigger: Trigger
    description: str = ""
    inputs: Mapping[str, Input] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        check_identifier("notebook", self.name)
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "trigger", Trigger(self.trigger))
        where = f"notebook {self.name}"
        if self.path.suffix != ".ipynb":
            raise ValueError(f"{where}: {self.path} is not a .ipynb file")
        for name in self.inputs:
            check_identifier(f"input of {where}", name)
        reserved = sorted(set(self.parameters) & set(INJECTED))
        if reserved:
            raise ValueError(f"{where}: parameters {reserved} are injected by the platform")
        try:
            json.dumps(dict(self.parameters))
        except TypeError as error:
            raise ValueError(f"{where}: parameters must be JSON values ({error})") from None


def notebook_file(module_file: str, name: str) -> Path:
    """The notebook `name` beside the declaring module (`notebook_file(__file__, 'x.ipynb')`)."""
    return Path(module_file).parent / name


def model_card(segments: Mapping[str, str]) -> Notebook:
    """The platform's model card, run for every trained version: the gate's evidence replayed
    (calibration or residuals, the gate metric by each of `segments`, permutation importance,
    the comparison with the champion it was gated against). `segments` maps a segment's name to
    a DuckDB expression over the version's labelled rows, e.g. `{"hour": "dep_hour"}`."""
    return Notebook(
        name="model_card",
        path=MODEL_CARD,
        trigger=Trigger.VERSION,
        description=(
            "The model card of each trained version: its gate replayed on the held-out days "
            "beside the champion it was judged against, by segment, with calibration or "
            "residuals and permutation feature importance."
        ),
        parameters={"segments": dict(segments)},
    )
