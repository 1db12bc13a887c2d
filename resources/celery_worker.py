"""The Celery app of the pool's workers:
`dagster-celery worker start -A resources.celery_worker -n <name>`.

A worker runs the steps the pool's executor submits (`resources.celery_pool`) with dagster-celery's
`execute_plan` task. Everything a step needs comes from the worker's own environment and the shared
servers, never from the machine that launched the run: the broker (PLATFORM_CELERY_BROKER_URL),
the code (the same image, so the run's code location path exists here too), the Dagster instance
(the run's instance configuration, whose PostgreSQL variables resolve here), and the lake and the
registry (PLATFORM_LAKE_URI on S3).

A worker that cannot reach the instance's PostgreSQL cannot load the run nor record a single event
of the step. Its task then fails with an error naming PostgreSQL, the worker and the step, which
the run's executor reports as the run's failure.
"""

from typing import Any

from celery import Task
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import unpack_value
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from resources import settings
from resources.celery_pool import app_args


class InstanceUnreachable(RuntimeError):
    """A worker could not reach the Dagster instance's PostgreSQL database."""


class StepTask(Task):
    """dagster-celery's step task, with a failure to reach the instance named as such."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from dagster_postgres.utils import DagsterPostgresException
        from sqlalchemy.exc import OperationalError

        try:
            return super().__call__(*args, **kwargs)
        except (OperationalError, DagsterPostgresException) as error:
            packed = kwargs.get("execute_step_args_packed") or args[0]
            steps = ", ".join(unpack_value(packed, as_type=ExecuteStepArgs).step_keys_to_execute)
            # dagster-postgres gives up after its retries with the driver's error as the cause.
            cause = getattr(error, "orig", None) or error.__cause__ or error
            raise InstanceUnreachable(
                f"Celery worker {self.request.hostname} cannot reach the Dagster instance's "
                f"PostgreSQL database (DAGSTER_PG_HOST, DAGSTER_PG_PORT of the worker), so step "
                f"{steps} did not run: {str(cause).strip()}"
            ) from None


app = make_app(
    app_args(
        settings.celery_url(settings.celery_broker_variable()),
        settings.celery_url(settings.celery_backend_variable()),
    )
)
execute_plan = create_task(app, base=StepTask)
