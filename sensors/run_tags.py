"""Run tags the platform's sensors write and read.

Ours say why a run was launched; Dagster's own are spelled here once, since Dagster does not
export them.
"""

# Why a sensor or schedule launched a run: replay, landing, drift, quality, schedule.
TRIGGER_TAG = "platform/trigger"
# A retrain's reason, in words a person can act on.
REASON_TAG = "platform/trigger_reason"

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RUN_KEY_TAG = "dagster/run_key"
