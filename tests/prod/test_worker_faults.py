"""Faults of the worker pool: a worker killed mid-step, and workers cut off from S3 or PostgreSQL.

A worker killed with SIGKILL while its step writes partitions leaves every partition whole (its
previous content or the new one, nothing in between); the executor notices the silent worker,
submits the step again, the other worker runs it and the run completes. A worker that cannot
reach S3, or PostgreSQL, fails the step with a message naming the server it misses, and the run
fails naming the step. Each pool uses a Redis database of its own, so each run reaches only the
workers meant for it.
"""

import selectors
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import Platform, start_materialize, synthetic_sources

from prod.conftest import Production
from prod.servers import CeleryWorker, PostgresCluster, RedisServer, free_port, wait_for_workers
from prod.worker_pool import pool_environment, start_worker
from resources.days import days_between
from resources.lake import Lake
from sensors.run_tags import PARTITION_TAG, RANGE_START_TAG

TABLE = "raw_flights"
# Days big enough that the step reads and writes them in two pieces (four days, then one): the
# kill, as soon as the first new partition is stored, lands before the second piece is written.
DAYS = days_between(date(2013, 1, 1), date(2013, 1, 5))
FLIGHTS_PER_DAY = 250_000
OLD_SEED, NEW_SEED = 1, 2
RUN_SECONDS = 600
WORKER_METADATA = "Celery worker"


def span(days: list[date]) -> str:
    return f"{days[0]}...{days[-1]}"


def latest_run(instance: dg.DagsterInstance, tag: str, day: date) -> dg.DagsterRun | None:
    """The newest run whose `tag` is `day`: a range's first day, or a run's partition."""
    records = instance.get_run_records(dg.RunsFilter(tags={tag: day.isoformat()}), limit=1)
    return records[0].dagster_run if records else None


def step_workers(instance: dg.DagsterInstance, run_id: str, step: str) -> list[str]:
    """The workers that started `step` in a run, in order."""
    return [
        record.event_log_entry.dagster_event.engine_event_data.metadata[WORKER_METADATA].value
        for record in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=10_000
        ).records
        if record.event_log_entry.dagster_event.step_key == step
        and WORKER_METADATA in record.event_log_entry.dagster_event.engine_event_data.metadata
    ]


def messages(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every message and error of a run's events, as one text."""
    texts = []
    for entry in instance.all_logs(run_id):
        texts.append(entry.user_message or "")
        event = entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        if error is not None:
            texts.append(error.to_string())
    return "\n".join(texts)


def partitions(lake: Lake, days: list[date]) -> dict[date, pd.DataFrame]:
    """Each day's stored rows: reading a partition fails if its object is not whole Parquet."""
    return {day: lake.read(TABLE, [day]) for day in days}


@pytest.fixture(scope="module")
def instance(production: Production) -> dg.DagsterInstance:
    return dg.DagsterInstance.get()


def test_a_worker_killed_mid_step_leaves_partitions_whole_and_another_worker_completes_it(
    production: Production,
    redis_server: RedisServer,
    instance: dg.DagsterInstance,
    tmp_path: Path,
):
    lake = Lake()
    old_source = synthetic_sources(OLD_SEED, FLIGHTS_PER_DAY)
    Platform(instance, old_source, lake).materialize(
        [TABLE], DAYS[0].isoformat(), DAYS[-1].isoformat()
    )
    old = partitions(lake, DAYS)
    environment = pool_environment(
        production,
        redis_server.url(1),
        PLATFORM_SYNTHETIC_SEED=str(NEW_SEED),
        PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY=str(FLIGHTS_PER_DAY),
    )
    workers = [start_worker(n, environment, tmp_path / n) for n in ("worker-c", "worker-d")]
    try:
        wait_for_workers(workers, redis_server.url(1))
        log = tmp_path / "run.log"
        started = time.time()
        command = start_materialize(environment, TABLE, "--partition-range", span(DAYS), log=log)
        victim = kill_while_writing(instance, lake, workers, started, command, log)
        # Killed mid-write: every partition is whole, with its previous or its new content.
        at_kill = partitions(lake, DAYS)
        renewed = [d for d in DAYS if not at_kill[d].equals(old[d])]

        assert command.wait(timeout=RUN_SECONDS) == 0, log.read_text()[-5000:]
        run = latest_run(instance, RANGE_START_TAG, DAYS[0])
        assert run.status == dg.DagsterRunStatus.SUCCESS
        survivor = next(w for w in workers if w is not victim)
        assert step_workers(instance, run.run_id, TABLE) == [victim.node, survivor.node]
        assert f"Celery worker {victim.node} stopped answering" in messages(instance, run.run_id)
        new = partitions(lake, DAYS)
        for day in DAYS:
            assert not new[day].equals(old[day]), f"{day} still holds the previous content"
            assert at_kill[day].equals(old[day]) or at_kill[day].equals(new[day]), day
        assert len(renewed) < len(DAYS), "the kill came after every partition was written"

        # A rerun on the surviving worker completes and rewrites the same rows.
        rerun = start_materialize(environment, TABLE, "--partition-range", span(DAYS), log=log)
        assert rerun.wait(timeout=RUN_SECONDS) == 0, log.read_text()[-5000:]
        assert all(partitions(lake, DAYS)[d].equals(new[d]) for d in DAYS)
    finally:
        for worker in workers:
            worker.stop()


def kill_while_writing(
    instance: dg.DagsterInstance,
    lake: Lake,
    workers: list[CeleryWorker],
    started: float,
    command,
    log: Path,
) -> CeleryWorker:
    """SIGKILL the worker running the step as soon as its first new partition is stored."""
    deadline = time.monotonic() + RUN_SECONDS
    victim = None
    client, bucket = lake.store.client, lake.store.bucket
    prefix = lake.store._key(TABLE) + "/"
    while time.monotonic() < deadline:
        assert command.poll() is None, log.read_text()[-5000:]
        run = latest_run(instance, RANGE_START_TAG, DAYS[0])
        if victim is None and run is not None:
            named = step_workers(instance, run.run_id, TABLE)
            victim = next((w for w in workers if named and w.node == named[0]), None)
        if victim is not None:
            listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            if any(item["LastModified"].timestamp() >= started for item in listed):
                victim.kill()
                return victim
        time.sleep(0.05)
    pytest.fail(f"the step never wrote a partition within {RUN_SECONDS}s")


class Blackhole:
    """A TCP forwarder to a server, which can be cut: then it refuses every connection, as a
    network partition between a worker and that server would."""

    def __init__(self, port: int):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=_pipe, args=(client, upstream, self.cut), daemon=True).start()

    def close(self) -> None:
        self.cut.set()
        self.listener.close()


def _pipe(one: socket.socket, other: socket.socket, cut: threading.Event) -> None:
    """Copy bytes both ways until either side closes or the forwarder is cut."""
    selector = selectors.DefaultSelector()
    for sock, peer in ((one, other), (other, one)):
        selector.register(sock, selectors.EVENT_READ, peer)
    try:
        while not cut.is_set():
            for key, _ in selector.select(timeout=0.5):
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        one.close()
        other.close()


@pytest.fixture
def postgres_link(postgres: PostgresCluster) -> Iterator[Blackhole]:
    link = Blackhole(postgres.port)
    yield link
    link.close()


def test_workers_cut_off_from_s3_or_postgres_fail_the_step_naming_the_server(
    production: Production,
    redis_server: RedisServer,
    instance: dg.DagsterInstance,
    postgres_link: Blackhole,
    tmp_path: Path,
):
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    cases = {
        # name: (Redis database, worker environment, the day its run materializes)
        "no-s3": (2, {"AWS_ENDPOINT_URL": nothing_listens}, date(2013, 2, 1)),
        "no-postgres": (3, {"DAGSTER_PG_PORT": str(postgres_link.port)}, date(2013, 2, 2)),
    }
    workers, runs = [], {}
    try:
        for name, (database, own, _) in cases.items():
            environment = pool_environment(production, redis_server.url(database))
            workers.append(start_worker(name, environment | own, tmp_path / name))
        for worker, (database, _, _) in zip(workers, cases.values(), strict=True):
            wait_for_workers([worker], redis_server.url(database))
        postgres_link.close()  # the worker started with PostgreSQL reachable; now it is not
        for name, (database, _, day) in cases.items():
            environment = pool_environment(production, redis_server.url(database))
            log = tmp_path / f"{name}.log"
            runs[name] = (
                start_materialize(environment, TABLE, "--partition", str(day), log=log),
                log,
            )
        for command, log in runs.values():
            assert command.wait(timeout=RUN_SECONDS) != 0, log.read_text()[-3000:]
        said = {}
        for name, (_, _, day) in cases.items():
            run = latest_run(instance, PARTITION_TAG, day)
            assert run.status == dg.DagsterRunStatus.FAILURE, name
            said[name] = messages(instance, run.run_id)
        assert f"S3 cannot be reached at {nothing_listens}" in said["no-s3"]
        assert f'Execution of step "{TABLE}" failed' in said["no-s3"]
        no_postgres = workers[1].node
        assert (
            f"Celery worker {no_postgres} cannot reach the Dagster instance's PostgreSQL"
            in said["no-postgres"]
        )
        assert f"step {TABLE} did not run" in said["no-postgres"]
    finally:
        for worker in workers:
            worker.stop()
