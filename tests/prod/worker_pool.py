"""The worker pool of a test deployment: its environment, and its Celery workers started side by
side (tests/prod/servers.py starts each as an operator would)."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from prod.conftest import PRODUCTION_YAML, Production, environment_of
from prod.servers import (
    CeleryWorker,
    create_instance_tables,
    start_celery_worker,
    wait_for_workers,
)
from resources import settings

# The source every process of a test deployment reads: small synthetic days.
SOURCE = {
    "PLATFORM_SOURCE": "synthetic",
    "PLATFORM_SYNTHETIC_SEED": "7",
    "PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY": "120",
}


def pool_environment(production: Production, broker_url: str, **extra: str) -> dict[str, str]:
    """The environment of every process of the deployment, launcher and workers: the production
    variables, the Celery executor on `broker_url`, the test's source, and `extra`."""
    return (
        environment_of(production)
        | SOURCE
        | {settings.EXECUTOR_ENV: "celery", settings.CELERY_BROKER_ENV: broker_url}
        | extra
    )


def start_worker(name: str, environment: dict[str, str], folder: Path) -> CeleryWorker:
    """A worker of the production instance's deployment."""
    return start_celery_worker(name, environment, folder, PRODUCTION_YAML)


@contextmanager
def worker_pool(
    names: Sequence[str], environment: dict[str, str], folder: Path
) -> Iterator[list[CeleryWorker]]:
    """Workers `names`, started side by side on an instance whose tables exist, and answering;
    stopped on exit."""
    create_instance_tables(environment)
    workers = []
    try:
        for name in names:
            workers.append(start_worker(name, environment, folder / name))
        wait_for_workers(workers, environment[settings.CELERY_BROKER_ENV])
        yield workers
    finally:
        for worker in workers:
            worker.stop()
