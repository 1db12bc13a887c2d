"""The code location on Kubernetes: the platform's definitions, each step of a run in its own pod.

Loaded by the Helm chart's user deployment (`dagster api grpc --python-file
platform/production/k8s/definitions.py --working-directory /opt/flightdesk`). The same
definitions as `platform/definitions.py` but for the executor: dagster-k8s's `k8s_job_executor`
starts one Kubernetes Job per step, in the image and with the environment of the run, so the
models of a run train and score side by side on separate nodes. tests/prod checks that both files
hold the same assets, checks, jobs, sensors, schedules and resources.
"""

import warnings

import dagster as dg
from dagster_k8s import k8s_job_executor

warnings.filterwarnings("ignore", category=dg.BetaWarning)

import assets  # noqa: E402
import resources  # noqa: E402
import sensors  # noqa: E402

# At most four step pods of one run at a time; the run queue bounds the runs themselves.
defs = dg.Definitions.merge(
    assets.defs,
    resources.defs,
    sensors.defs,
    dg.Definitions(executor=k8s_job_executor.configured({"max_concurrent": 4})),
)
