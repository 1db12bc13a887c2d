"""Jobs to promote a model version or roll back a model's champion from the Launchpad, and the job
that records a rollout decision.

Each job serves every model: the model is chosen in their config from the declared ones. They
append to the same promotion history as the quality gate and the `resources.models_cli` command
line; predictions pick the change up when they are next materialized. `decide_rollout` is what
the rollout sensors launch (`sensors.rollout`); a person may launch it too, to end an experiment
by hand.
"""

import json
from datetime import date
from enum import Enum

import dagster as dg
from pydantic import Field

from assets.catalog import Catalog
from resources.registry import ModelRegistry

# The job that appends a rollout decision to the history, and its op; the rollout sensors
# request it by these names.
DECIDE_JOB, DECIDE_OP = "decide_rollout", "record_rollout_decision"


def _day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def build_promotion_jobs(catalog: Catalog) -> list[dg.JobDefinition]:
    """`promote_model`, `rollback_model` and `decide_rollout`, whose config offers the catalog's
    models."""
    names = [spec.name for spec in catalog.models]
    model_name = Enum("ModelName", {name: name for name in names}, type=str)

    class PromoteConfig(dg.Config):
        model: model_name = Field(description="The model.")
        version: str = Field(description="The version to promote, e.g. 2013-03-01.1a2b3c4d5e.")
        effective_from: str = Field(
            default="", description="YYYY-MM-DD from which it is champion; empty: its cutoff."
        )
        reason: str = Field(
            default="promoted from the Launchpad", description="Kept in the history."
        )

    class RollbackConfig(dg.Config):
        model: model_name = Field(description="The model.")
        effective_from: str = Field(
            default="",
            description="YYYY-MM-DD from which the previous champion returns; empty: the date the "
            "current champion took effect, withdrawing it entirely.",
        )
        reason: str = Field(
            default="rolled back from the Launchpad", description="Kept in the history."
        )

    @dg.op
    def promote_version(
        context: dg.OpExecutionContext, config: PromoteConfig, registry: ModelRegistry
    ) -> None:
        model = config.model.value
        entry = registry.promote(
            model, config.version, _day(config.effective_from), "manual", config.reason
        )
        context.log.info(f"{model}: {entry['version']} is champion from {entry['effective_from']}")

    @dg.op
    def rollback_champion(
        context: dg.OpExecutionContext, config: RollbackConfig, registry: ModelRegistry
    ) -> None:
        model = config.model.value
        entry = registry.rollback(model, _day(config.effective_from), config.reason)
        context.log.info(
            f"{model}: {entry['replaces']} rolled back; {entry['version']} is champion "
            f"from {entry['effective_from']}"
        )

    class DecisionConfig(dg.Config):
        model: model_name = Field(description="The model.")
        experiment: str = Field(description="The experiment's id: its challenger's version.")
        outcome: str = Field(description="promote (its challenger becomes champion) or retire.")
        effective_from: str = Field(description="YYYY-MM-DD from which the decision holds.")
        reason: str = Field(
            default="decided from the Launchpad", description="Kept in the history."
        )
        evidence: str = Field(
            default="null",
            description="JSON of the evidence (days, the metric of each, interval) kept with it.",
        )

    @dg.op(name=DECIDE_OP)
    def record_decision(
        context: dg.OpExecutionContext, config: DecisionConfig, registry: ModelRegistry
    ) -> dg.Output:
        model = config.model.value
        evidence = json.loads(config.evidence)
        entry = registry.end_experiment(
            model,
            config.experiment,
            config.outcome,
            date.fromisoformat(config.effective_from),
            config.reason,
            evidence,
        )
        context.log.info(
            f"{model}: experiment {config.experiment} ended, {entry['version']} "
            f"{'promoted' if entry['action'] == 'promote' else 'retired'} from "
            f"{entry['effective_from']}: {config.reason}"
        )
        summary = {"entry": entry["seq"], "action": entry["action"], "version": entry["version"]}
        return dg.Output(None, metadata=summary | {"evidence": dg.MetadataValue.json(evidence)})

    @dg.job(description="Make a model version champion from a date on (appends to its history).")
    def promote_model() -> None:
        promote_version()

    @dg.job(description="Restore the previous champion of a model (appends to its history).")
    def rollback_model() -> None:
        rollback_champion()

    @dg.job(
        name=DECIDE_JOB,
        description="End a model's experiment: promote its challenger or retire it (appends to "
        "its history, with the evidence). The rollout sensors launch it.",
    )
    def decide_rollout() -> None:
        record_decision()

    return [promote_model, rollback_model, decide_rollout]
