"""The daily cycle as declarative automation: when day D's data lands, the rest of day D follows.

Once the inputs a model reads on day D arrive (for `flight_delay`, `raw_flights[D]` and
`raw_weather[D]`), `<model>/features[D]`, `<model>/feature_drift[D]` and `<model>/predictions[D]`
run; `<model>/prediction_quality[D]` runs once the labels of D (`flight_outcomes[D]`) and
`predictions[D]` both exist. `<model>/model` is never automated: retraining is decided by the drift
and quality sensors (or the weekly schedule), not by new data.

Why not `AutomationCondition.eager()`: it only considers the latest time window, and our partitions
end on 2013-12-31, so against today's clock it would never run a single day. The condition below is
eager's logic over every partition:

- a partition is *triggered* when one of its dependencies was updated since it was last requested or
  materialized, and stays triggered until it is handled (so a day whose inputs arrive one by one
  runs when the last one lands);
- it runs only when none of its dependencies is missing or in progress and it is not in progress.

A fresh daemon does not backfill history on its first evaluation: only updates after it started
trigger anything. Two dependencies are treated apart:

- **the model** (predictions and drift depend on the champion of the past year): a new champion
  must not rewrite past predictions or drift reports, so model updates trigger nothing and model
  partitions are not required to exist (most never will). A retrain *in progress* does hold them
  back, so the day after a retrain is served by the new champion.
- **inputs read only before D** (flight_delay's features[D] use outcomes of D-7..D-1) **and
  registers** (raw_planes, read whole by every day): they are required, so features wait for
  yesterday's outcomes, but a late rewrite of old outcomes, or a new register, does not
  recompute features. Those features were already served: recomputing them would silently
  rewrite the predictions a day was actually scored with (and for days before the first
  champion, fail). Quality, which judges day D by its own labels, is re-evaluated when those
  labels change.

Notebooks follow what they are bound to, and nothing else: a version's notebook runs once
`<model>/model[D]` has been materialized and its run has ended (its own run, so a notebook never
holds up or fails a training), a day's notebook once that day's quality (or, for a dataset's
notebook, every raw table of the day) is in. Updates of their declared inputs trigger nothing,
though the inputs must exist.
"""

import dagster as dg

from assets.catalog import Catalog
from assets.keys import (
    drift_key,
    features_key,
    model_key,
    notebook_key,
    predictions_key,
    quality_key,
)

DAILY_CYCLE = "daily_cycle"


def daily_cycle_condition(
    untriggering: dg.AssetSelection | None = None,
    unrequired: dg.AssetSelection | None = None,
) -> dg.AutomationCondition:
    """Run a partition when its dependencies have been updated and are all present and settled.

    Updates of `untriggering` dependencies do not trigger a run; `unrequired` dependencies may
    be missing.
    """
    updated = dg.AutomationCondition.any_deps_updated()
    missing = dg.AutomationCondition.any_deps_missing()
    if untriggering is not None:
        updated = updated.ignore(untriggering)
    if unrequired is not None:
        missing = missing.ignore(unrequired)
    return (
        updated.since_last_handled()
        & ~missing
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(DAILY_CYCLE)


def daily_cycle_policy(catalog: Catalog) -> dict[dg.AssetKey, dg.AutomationCondition]:
    """The condition of every automated asset of each model and of every notebook; the model
    itself is not among them."""
    policy = {}
    for spec in catalog.models:
        model = dg.AssetSelection.assets(model_key(spec))
        served = daily_cycle_condition(untriggering=model, unrequired=model)
        policy |= {
            predictions_key(spec): served,
            drift_key(spec): served,
            quality_key(spec): daily_cycle_condition(),
        }
        if not spec.features_from:
            settled = [
                i.table for i in spec.inputs.values() if not i.same_day or not catalog.is_daily(i)
            ]
            untriggering = dg.AssetSelection.assets(*settled) if settled else None
            policy[features_key(spec)] = daily_cycle_condition(untriggering=untriggering)
    for owner, _, _, notebook in catalog.notebook_owners():
        inputs = [dg.AssetKey.from_user_string(i.table) for i in notebook.inputs.values()]
        untriggering = dg.AssetSelection.assets(*inputs) if inputs else None
        policy[notebook_key(owner, notebook.name)] = daily_cycle_condition(
            untriggering=untriggering
        )
    return policy


def with_daily_cycle(
    catalog: Catalog, assets: list[dg.AssetsDefinition]
) -> list[dg.AssetsDefinition]:
    """`assets` with the daily-cycle conditions of the catalog's models set where the policy
    names them, so the asset factories stay free of scheduling policy."""
    policy = daily_cycle_policy(catalog)

    def automate(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key not in policy:
            return spec
        return spec.replace_attributes(automation_condition=policy[spec.key])

    return list(dg.map_asset_specs(automate, assets))
