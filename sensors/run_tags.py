"""Run tags the platform's sensors write and read.

Ours say why a run was launched; Dagster's own are spelled here once, since Dagster does not
export them.
"""

# Why a sensor or schedule launched a run: one of `Trigger`'s values.
TRIGGER_TAG = "platform/trigger"


class Trigger:
    """The values of TRIGGER_TAG (plain strings: run tags are text)."""

    REPLAY = "replay"
    LANDING = "landing"
    DRIFT = "drift"
    QUALITY = "quality"
    SCHEDULE = "schedule"
    ROLLOUT = "rollout"  # a decision on an experiment


# The triggers of retrains: their failures make the retrain sensors back off.
RETRAIN_TRIGGERS = (Trigger.DRIFT, Trigger.QUALITY, Trigger.SCHEDULE)
# A retrain's reason, in words a person can act on.
REASON_TAG = "platform/trigger_reason"

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RUN_KEY_TAG = "dagster/run_key"
