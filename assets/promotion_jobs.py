"""Jobs to promote a model version or roll back its champion from the Launchpad.

They append to the same promotion history as the quality gate and the `resources.models_cli`
command line; predictions pick the change up when they are next materialized.
"""

from datetime import date

import dagster as dg
from pydantic import Field

from resources.registry import ModelRegistry


class PromoteConfig(dg.Config):
    version: str = Field(description="The version to promote, e.g. 2013-03-01.1a2b3c4d5e.")
    model: str = Field(default="flight_delay", description="The model name.")
    effective_from: str = Field(
        default="", description="YYYY-MM-DD from which it is champion; empty: its training cutoff."
    )
    reason: str = Field(default="promoted from the Launchpad", description="Kept in the history.")


class RollbackConfig(dg.Config):
    model: str = Field(default="flight_delay", description="The model name.")
    effective_from: str = Field(
        default="",
        description="YYYY-MM-DD from which the previous champion returns; empty: the date the "
        "current champion took effect, withdrawing it entirely.",
    )
    reason: str = Field(
        default="rolled back from the Launchpad", description="Kept in the history."
    )


def _day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


@dg.op
def promote_version(
    context: dg.OpExecutionContext, config: PromoteConfig, registry: ModelRegistry
) -> None:
    entry = registry.promote(
        config.model, config.version, _day(config.effective_from), "manual", config.reason
    )
    context.log.info(
        f"{config.model}: {entry['version']} is champion from {entry['effective_from']}"
    )


@dg.op
def rollback_champion(
    context: dg.OpExecutionContext, config: RollbackConfig, registry: ModelRegistry
) -> None:
    entry = registry.rollback(config.model, _day(config.effective_from), config.reason)
    context.log.info(
        f"{config.model}: {entry['replaces']} rolled back; {entry['version']} is champion "
        f"from {entry['effective_from']}"
    )


@dg.job(description="Make a model version champion from a date on (appends to its history).")
def promote_model() -> None:
    promote_version()


@dg.job(description="Restore the previous champion of a model (appends to its history).")
def rollback_model() -> None:
    rollback_champion()


promotion_jobs = [promote_model, rollback_model]
