"""Year backfill of every dataset and model on the Celery worker pool, with one worker and with
two, beside one process, on the production profile's servers.

The servers are started as the tests start them (tests/prod/servers.py): moto as the S3 lake and
registry, PostgreSQL as the Dagster instance, Redis as the pool's broker, and Celery workers as
`dagster-celery worker start` processes. Each profile gets fresh buckets, a database and a Redis
database of its own, and backfills each dataset's bundled year the way a user does after a change:
one `dagster asset materialize` per step over its whole range, in order: the registers and raw
tables, the models' features, each model's first version (its declared cutoff), then its
predictions, drift and quality from that cutoff to the dataset's last day.

- one process: PLATFORM_EXECUTOR=in_process, the datasets one after the other;
- the pool (one worker, then two): PLATFORM_EXECUTOR=celery, each dataset's chain launched at
  once, every step a task of the pool; independent steps (the raw tables, a dataset's models)
  run side by side when there are workers for them.

Printed and recorded (`<PLATFORM_DATA_DIR>/bench/worker_pool.json`): the wall time of each
profile, the ratios, the seconds of every step from the runs' step events, the instance's event
records and the S3 requests each profile made: the per-step costs docs/deployment.md's estimates
start from. On this machine every server, the launcher and the workers share its cores: the load
average is printed with the figures.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

# Beta warnings of the backfill policies would bury the figures.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import CATALOG  # noqa: E402
from assets.keys import features_key, model_key, served_keys  # noqa: E402
from bench.harness import environment  # noqa: E402
from resources import settings  # noqa: E402
from resources.dataset import Dataset  # noqa: E402

# The servers of the production-profile tests, imported as the tests import them (a package of a
# dependency is named `tests`, so not as `tests.prod`).
sys.path.insert(0, str(settings.REPO_ROOT / "tests"))
from prod.servers import (  # noqa: E402
    REPO_ROOT,
    create_database,
    create_instance_tables,
    start_celery_worker,
    start_postgres,
    start_redis,
    start_s3_server,
    wait_for_workers,
)

PRODUCTION_YAML = REPO_ROOT / "platform" / "production" / "dagster.yaml"
DAGSTER = Path(sys.executable).with_name("dagster")
RUN_SECONDS = 3600
S3_METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
QUICK_DAYS = 14


@dataclass
class Step:
    """One `dagster asset materialize` of a dataset's chain."""

    dataset: str
    label: str
    keys: list[str]
    first: date | None = None
    last: date | None = None

    def arguments(self) -> list[str]:
        selection = ["--select", ",".join(self.keys)]
        if self.first is None:
            return selection
        return [*selection, "--partition-range", f"{self.first}...{self.last}"]


def year_chain(dataset: Dataset, quick: bool = False) -> list[Step]:
    """The year backfill of `dataset`: what models are trained from, the models, what they serve
    (`quick`: only until two weeks after the models' cutoffs, to check the benchmark runs)."""
    models = CATALOG.models_of(dataset)
    first, last = dataset.first_day, dataset.last_day
    if quick:
        last = max(CATALOG.first_cutoff(m) for m in models) + timedelta(days=QUICK_DAYS)
    chain = []
    if dataset.registers:
        chain.append(Step(dataset.name, "registers", [t.name for t in dataset.registers]))
    chain.append(
        Step(dataset.name, "raw tables", [t.name for t in dataset.daily_tables], first, last)
    )
    computed = [features_key(m).to_user_string() for m in models if not m.features_from]
    chain.append(Step(dataset.name, "features", computed, first, last))
    for cutoff in sorted({CATALOG.first_cutoff(m) for m in models}):
        starting = [m for m in models if CATALOG.first_cutoff(m) == cutoff]
        keys = [model_key(m).to_user_string() for m in starting]
        chain.append(Step(dataset.name, f"models {cutoff}", keys, cutoff, cutoff))
        served = [k.to_user_string() for m in starting for k in served_keys(m)]
        chain.append(Step(dataset.name, "predictions, drift, quality", served, cutoff, last))
    return chain


@dataclass
class Timed:
    step: Step
    seconds: float
    run_id: str = ""
    step_seconds: dict[str, float] = field(default_factory=dict)
    events: int = 0


@dataclass
class Profile:
    name: str
    workers: int
    seconds: float = 0.0
    steps: list[Timed] = field(default_factory=list)
    s3_requests: dict[str, int] = field(default_factory=dict)
    load_before: float = 0.0
    load_after: float = 0.0


class Servers:
    """moto, PostgreSQL and Redis for the whole benchmark, stopped on exit."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.s3 = start_s3_server(folder)
        self.postgres = start_postgres()
        self.redis = start_redis(folder)

    def s3_log_counts(self) -> Counter:
        """Requests moto served so far, by HTTP method, from its request log."""
        text = (self.folder / "moto.log").read_text(errors="replace")
        return Counter(
            method for line in text.splitlines() for method in S3_METHODS if f'"{method} /' in line
        )

    def stop(self) -> None:
        self.redis.stop()
        self.s3.stop()
        self.postgres.stop()


def profile_environment(servers: Servers, profile: Profile, number: int) -> dict[str, str]:
    """Everything a process of the profile needs: the production variables on fresh buckets, a
    fresh database and DAGSTER_HOME, the executor, and the pool's Redis database."""
    import boto3

    suffix = f"{profile.name.replace(' ', '-')}-{uuid.uuid4().hex[:6]}"
    lake_bucket, logs_bucket = f"bench-lake-{suffix}", f"bench-logs-{suffix}"
    database = f"bench_{uuid.uuid4().hex[:8]}"
    create_database(servers.postgres, database)
    home = servers.folder / suffix / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(PRODUCTION_YAML, home / "dagster.yaml")
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("PLATFORM_", "DAGSTER_", "AWS_"))
    }
    env = base | {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": servers.s3.endpoint_url,
        "PLATFORM_LAKE_URI": f"s3://{lake_bucket}/lake",
        "PLATFORM_DATA_DIR": str(servers.folder / suffix / "data"),
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": servers.postgres.host,
        "DAGSTER_PG_PORT": str(servers.postgres.port),
        "DAGSTER_PG_USERNAME": servers.postgres.username,
        "DAGSTER_PG_PASSWORD": servers.postgres.password,
        "DAGSTER_PG_DB": database,
        "DAGSTER_COMPUTE_LOGS_BUCKET": logs_bucket,
        "PYTHONUNBUFFERED": "1",
        settings.EXECUTOR_ENV: "celery" if profile.workers else "in_process",
        settings.CELERY_BROKER_ENV: servers.redis.url(number),
    }
    client = boto3.client(
        "s3",
        endpoint_url=servers.s3.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    for bucket in (lake_bucket, logs_bucket):
        client.create_bucket(Bucket=bucket)
    return env


def run_chain(chain: list[Step], env: dict[str, str], logs: Path, timed: list[Timed]) -> None:
    """The steps of one dataset, in order; each timed around its CLI process."""
    for step in chain:
        log = logs / f"{len(timed):02d}-{step.dataset}-{step.label.replace(' ', '_')}.log"
        command = [str(DAGSTER), "asset", "materialize", "-f", "platform/definitions.py", "-d", "."]
        started = time.perf_counter()
        with log.open("w") as output:
            result = subprocess.run(
                [*command, *step.arguments()],
                cwd=REPO_ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=RUN_SECONDS,
            )
        if result.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise RuntimeError(f"{step.dataset} {step.label} failed; end of {log}:\n{tail}")
        timed.append(Timed(step, time.perf_counter() - started))
        print(f"  {step.dataset}: {step.label}: {timed[-1].seconds:.1f} s", flush=True)


def measure(servers: Servers, profile: Profile, number: int, quick: bool) -> Profile:
    env = profile_environment(servers, profile, number)
    logs = Path(env["PLATFORM_DATA_DIR"]).parent / "logs"
    logs.mkdir()
    if profile.workers:  # workers opening a fresh database side by side race on its tables
        create_instance_tables(env)
    workers = [
        start_celery_worker(
            f"bench-{number}-{i}", env, logs.parent / f"worker-{i}", PRODUCTION_YAML
        )
        for i in range(profile.workers)
    ]
    chains = [year_chain(dataset, quick) for dataset in CATALOG.datasets]
    requests_before = servers.s3_log_counts()
    try:
        if workers:
            wait_for_workers(workers, env[settings.CELERY_BROKER_ENV])
        print(f"{profile.name}:", flush=True)
        profile.load_before = os.getloadavg()[0]
        started = time.perf_counter()
        if workers:  # every dataset's chain at once: the pool takes their steps side by side
            threads = [
                threading.Thread(target=run_chain, args=(c, env, logs, profile.steps))
                for c in chains
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if sum(len(c) for c in chains) != len(profile.steps):
                raise RuntimeError(f"{profile.name}: a chain failed; see the logs in {logs}")
        else:
            for chain in chains:
                run_chain(chain, env, logs, profile.steps)
        profile.seconds = time.perf_counter() - started
        profile.load_after = os.getloadavg()[0]
    finally:
        for worker in workers:
            worker.stop()
    profile.s3_requests = dict(servers.s3_log_counts() - requests_before)
    record_runs(env, profile)
    return profile


def record_runs(env: dict[str, str], profile: Profile) -> None:
    """Each step's run: its id, the seconds of its steps and its event records, from the
    instance on PostgreSQL."""
    with environment(**env):
        instance = dg.DagsterInstance.get()
        records = instance.get_run_records()
        by_selection = {
            frozenset(k.to_user_string() for k in (r.dagster_run.asset_selection or [])): r
            for r in records
        }
        for timed in profile.steps:
            record = by_selection[frozenset(timed.step.keys)]
            timed.run_id = record.dagster_run.run_id
            timed.step_seconds = {
                s.step_key: s.end_time - s.start_time
                for s in instance.get_run_step_stats(timed.run_id)
                if s.start_time and s.end_time
            }
            timed.events = len(instance.all_logs(timed.run_id))
        instance.dispose()


def report(profiles: list[Profile]) -> str:
    single, *pools = profiles
    lines = [f"{'profile':<14}{'wall s':>9}{'vs one process':>16}{'events':>9}{'S3 requests':>13}"]
    for p in profiles:
        events = sum(t.events for t in p.steps)
        lines.append(
            f"{p.name:<14}{p.seconds:>9.1f}{single.seconds / p.seconds:>15.2f}x"
            f"{events:>9}{sum(p.s3_requests.values()):>13}"
        )
    one, two = pools
    lines.append(f"two workers against one: {one.seconds / two.seconds:.2f}x faster")
    lines.append("")
    lines.append("seconds of each step (one process / one worker / two workers):")
    names = sorted({k for p in profiles for t in p.steps for k in t.step_seconds})
    for name in names:
        values = [sum(t.step_seconds.get(name, 0.0) for t in p.steps) for p in profiles]
        lines.append(f"  {name:<40}" + "".join(f"{v:>9.1f}" for v in values))
    lines.append(
        "load average (1 min) before/after: "
        + ", ".join(f"{p.name} {p.load_before:.1f}/{p.load_after:.1f}" for p in profiles)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the servers' folder")
    parser.add_argument(
        "--quick", action="store_true", help="two weeks after the cutoffs instead of the year"
    )
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="flightdesk-bench-pool-"))
    servers = Servers(folder)
    started = time.perf_counter()
    try:
        profiles = [
            measure(servers, Profile("one process", 0), 1, args.quick),
            measure(servers, Profile("one worker", 1), 2, args.quick),
            measure(servers, Profile("two workers", 2), 3, args.quick),
        ]
    finally:
        servers.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    text = report(profiles)
    span = "two weeks after the cutoffs" if args.quick else "the year"
    print(f"\nBackfill of every dataset and model, {span} ({os.cpu_count()} cores)\n{text}")
    out = settings.data_dir() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("worker_pool-quick.json" if args.quick else "worker_pool.json")
    path.write_text(
        json.dumps(
            {
                "benchmark": "worker_pool",
                "span": span,
                "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "bench_seconds": round(time.perf_counter() - started, 1),
                "profiles": [asdict(p) for p in profiles],
            },
            indent=2,
            default=str,
        )
    )
    print(f"\nrecorded in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
