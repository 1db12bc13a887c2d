"""Where the steps of a run execute, chosen by the deployment (PLATFORM_EXECUTOR).

- `in_process` (the default): every step in the run's own process. Steps are DuckDB- and
  numpy-bound, so separate processes on one machine would only repeat imports and source loading.
- `celery`: each step a task of the Celery worker pool (`resources.celery_pool`); the run's process
  only submits steps and collects their events.
- `kubernetes`: each step a pod of its own (dagster-k8s's `k8s_job_executor`), in the run's image
  and with its environment.

The code location is the same file in every profile (`platform/definitions.py`); the executor's
packages are the `celery` and `kubernetes` extras, imported only by the profile that uses them.
"""

import dagster as dg

from resources import settings

# Step pods of one Kubernetes run at a time; the run queue bounds the runs themselves.
KUBERNETES_STEPS_AT_ONCE = 4


def executor() -> dg.ExecutorDefinition:
    """The executor of the code location's jobs, as PLATFORM_EXECUTOR names it."""
    kind = settings.executor()
    if kind == "celery":
        from resources.celery_pool import pool_executor

        return pool_executor()
    if kind == "kubernetes":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured({"max_concurrent": KUBERNETES_STEPS_AT_ONCE})
    return dg.in_process_executor
