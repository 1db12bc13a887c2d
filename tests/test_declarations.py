"""Declarations that cannot work fail when the code location loads, saying what to change."""

import dataclasses

import guide_bakery
import pytest

from assets.catalog import Catalog, DeclarationError
from assets.model_spec import Input, Label, ModelSpec, Task

DATASET, MODEL = guide_bakery.DATASET, guide_bakery.MODEL


def load(*models: ModelSpec) -> Catalog:
    return Catalog((DATASET,), models)


def test_the_guides_declarations_load():
    assert load(MODEL).model("bakery_loaves") is MODEL


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"task": Task.BINARY, "metrics": (), "gate_metric": "", "gate_limit": 0.6,
             "label": Label("bakery_sales", "loaves / 2")},
            "a binary classifier needs a condition as its label, but 'loaves / 2' is DOUBLE",
        ),
        (
            {"entity_key": ("sale_date", "store", "shelf")},
            "the label cannot be joined on the entity key: bakery_sales has no column ['shelf']",
        ),
        (
            {"inputs": {**MODEL.inputs, "weather": Input("bakery_weather")}},
            "input weather reads 'bakery_weather', which is neither a raw table",
        ),
        (
            {"numeric_features": (*MODEL.numeric_features, "rain")},
            "the features of bakery_loaves have no column ['rain']",
        ),
        (
            {"inputs": {**MODEL.inputs, "history": Input("bakery_sales", lookback_days=7)}},
            "reads the label table bakery_sales on day D itself",
        ),
        (
            {"numeric_features": ("temperature", "store"), "categorical_features": ()},
            "numeric features that are not numbers: store (VARCHAR)",
        ),
        (
            {"features_sql": MODEL.features_sql.replace("avg(h.label)", "avg(h.lable)")},
            "the features query fails on its inputs",
        ),
        ({"label": Label("bakery_sales", "loaves + nothing")}, "fails on bakery_sales"),
        ({"first_cutoff": DATASET.replay_from}, "before bakery's replay starts on 2024-04-01"),
    ],
)  # fmt: skip
def test_a_declaration_that_cannot_work_fails_at_load_saying_what_to_change(changes, says):
    with pytest.raises(DeclarationError) as failure:
        load(dataclasses.replace(MODEL, **changes))
    assert says in str(failure.value)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"metrics": ("auc", "mae")}, "metric auc does not apply to a regression model"),
        (
            {"gate_metric": "mean_label", "metrics": ("mae", "mean_label")},
            "has no better direction",
        ),
        ({"features_from": "bakery_loaves"}, "declare features_sql (with inputs) or features_from"),
        ({"numeric_features": ("store",)}, "features both numeric and categorical"),
    ],
)
def test_a_declaration_that_contradicts_itself_fails_when_it_is_written(changes, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        dataclasses.replace(MODEL, **changes)


def test_a_model_reading_features_of_a_model_that_reads_another_s_is_refused():
    reader = dataclasses.replace(MODEL, name="reader", features_sql="", inputs={},
                                 features_from="bakery_loaves")  # fmt: skip
    second = dataclasses.replace(reader, name="second", features_from="reader")
    assert load(MODEL, reader).features_owner(reader) is MODEL
    with pytest.raises(DeclarationError, match="must name a model that computes its own"):
        load(MODEL, reader, second)


def test_two_declarations_of_one_name_are_refused():
    with pytest.raises(DeclarationError, match="model names declared twice"):
        load(MODEL, dataclasses.replace(MODEL, description="again"))
