"""The Celery worker pool's side of a run: dagster-celery's executor, configured from the settings,
watching the workers that run its steps.

Each step of a run becomes a Celery task on the broker (Redis, PLATFORM_CELERY_BROKER_URL); any
worker of the pool takes it (`resources.celery_worker`), runs the step against the lake and the
registry on S3 and the Dagster instance on PostgreSQL, and hands its events back through the
result backend. The run's own process only submits steps and collects their events.

A worker that dies mid-step (its machine lost, its process killed) answers nothing: Celery does
not notice, and dagster-celery's executor would wait for the step forever. So while a step runs,
the executor pings the worker its task names, every `WATCH_SECONDS`; after `MISSED_PINGS`
unanswered pings in a row the step is lost. Its task is revoked (a worker that ever receives that
message again drops it) and the step is submitted again, for another worker to run from the
start: every asset replaces its partitions whole, so a step cut short and run again leaves the
same rows. A step lost `STEP_ATTEMPTS` times fails the run, naming the step and the worker.
"""

import time
from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster._core.execution.retries import RetryMode
from dagster_celery.config import DEFAULT_CONFIG
from dagster_celery.core_execution_loop import core_celery_execution_loop
from dagster_celery.defaults import broker_transport_options
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor, _submit_task

from resources import settings

# Settings of the Celery app, the same in the executor and in every worker (dagster-celery's
# defaults are kept for the rest).
CELERY_SETTINGS: dict[str, Any] = {
    # A worker takes a step only when one of its processes is free, and acknowledges it once the
    # step ended: the broker never gives a worker a step it is not running.
    "worker_prefetch_multiplier": 1,
    "task_acks_late": True,
    # The task's STARTED state names the worker that runs it: the executor watches that worker.
    "task_track_started": True,
    # dagster-celery's retries of the broker connection, and the time after which Redis hands a
    # step not acknowledged to another worker: longer than any step. A step whose worker died is
    # submitted again by the executor long before.
    "broker_transport_options": broker_transport_options | {"visibility_timeout": 12 * 3600},
}
WATCH_SECONDS = 5.0
PING_SECONDS = 3.0
MISSED_PINGS = 3
STEP_ATTEMPTS = 2


class StepLost(RuntimeError):
    """A step's worker stopped answering while it ran the step, as often as a step may be tried."""


def app_args(broker: str, backend: str) -> dict[str, Any]:
    """The arguments of the Celery app (dagster-celery's `make_app`) on a broker and backend."""
    return {
        "broker": broker,
        "backend": backend,
        "include": [],
        "config_source": DEFAULT_CONFIG | CELERY_SETTINGS,
    }


def pool_executor() -> dg.ExecutorDefinition:
    """The Celery executor with the broker and backend of the settings, resolved where a run
    executes, and the app settings the workers use."""
    return watched_celery_executor.configured(
        {
            "broker": {"env": settings.celery_broker_variable()},
            "backend": {"env": settings.celery_backend_variable()},
            "config_source": CELERY_SETTINGS,
        }
    )


class WatchedCeleryExecutor(CeleryExecutor):
    """dagster-celery's executor, resubmitting the steps of workers that stop answering."""

    def execute(self, plan_context, execution_plan):
        return core_celery_execution_loop(
            plan_context, execution_plan, step_execution_fn=submit_watched
        )


@dg.executor(
    name="celery",
    config_schema=CELERY_CONFIG,
    requirements=dg.multiple_process_executor_requirements(),
)
def watched_celery_executor(init_context: dg.InitExecutorContext) -> WatchedCeleryExecutor:
    """dagster-celery's executor (same configuration), watching its workers."""
    config = init_context.executor_config
    return WatchedCeleryExecutor(
        retries=RetryMode.from_config(config["retries"]),
        broker=config.get("broker"),
        backend=config.get("backend"),
        include=config.get("include"),
        config_source=config.get("config_source"),
    )


def submit_watched(app, plan_context, step, queue: str, priority: int, known_state) -> "Watched":
    """Submit `step` as dagster-celery submits it, watched (the executor's step function)."""

    def submit():
        return _submit_task(app, plan_context, step, queue, priority, known_state)

    return Watched(app, plan_context.log, step.key, submit)


class Watched:
    """The Celery result of one step, submitted again when the worker running it goes silent.

    It answers what dagster-celery's execution loop asks of a result: `ready`, `get`, `revoke`.
    """

    def __init__(self, app, log: dg.DagsterLogManager, step_key: str, submit: Callable[[], Any]):
        self.app = app
        self.log = log
        self.step_key = step_key
        self.submit = submit
        self.result = submit()
        self.attempt = 1
        self.silent = 0
        self.next_check = time.monotonic() + WATCH_SECONDS
        self.lost: str | None = None

    def ready(self) -> bool:
        if self.lost is not None or self.result.ready():
            return True
        if time.monotonic() >= self.next_check:
            self.next_check = time.monotonic() + WATCH_SECONDS
            self._watch()
        return self.lost is not None

    def get(self) -> Any:
        if self.lost is not None:
            raise StepLost(self.lost)
        return self.result.get()

    def revoke(self) -> None:
        self.result.revoke()

    def _watch(self) -> None:
        """Ping the worker that runs the step; resubmit the step (or give up) when it is lost."""
        # One read of the task's state and info: read apart, the step may end between them, and
        # the info is then its result (the step's events), not the worker that holds it.
        meta = self.result.backend.get_task_meta(self.result.id)
        if meta.get("status") != "STARTED":  # still queued (no worker holds it yet), or ended
            return
        info = meta.get("result")
        worker = info.get("hostname") if isinstance(info, dict) else None
        if not worker or self.app.control.ping(destination=[worker], timeout=PING_SECONDS):
            self.silent = 0
            return
        self.silent += 1
        if self.silent < MISSED_PINGS:
            return
        self.result.revoke()
        lost = (
            f'Celery worker {worker} stopped answering while it ran step "{self.step_key}" '
            f"({MISSED_PINGS} pings {WATCH_SECONDS:g} s apart went unanswered)"
        )
        if self.attempt >= STEP_ATTEMPTS:
            self.lost = (
                f"{lost}; the step was tried {self.attempt} times. Its partitions keep their "
                "previous content: rerun the failed steps once the pool is healthy"
            )
            return
        self.attempt += 1
        self.log.warning(
            f"{lost}; submitting it again for another worker (attempt {self.attempt} of "
            f"{STEP_ATTEMPTS})"
        )
        self.result = self.submit()
        self.silent = 0
