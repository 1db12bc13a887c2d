"""Throwaway servers for the production-profile tests and benchmarks: an S3-compatible store,
PostgreSQL, Redis, and the Celery workers of the worker pool.

All are real servers on 127.0.0.1 and free ports: moto's standalone S3 server (from the dev
dependencies), a PostgreSQL cluster created with `initdb` in a temporary folder, and Debian's
`redis-server` (the Celery pool's broker and result backend) without persistence. PostgreSQL and
Redis are installed with apt (tests/prod/install_servers.sh) when their binaries are missing.
`initdb` refuses to run as root, so as root the cluster belongs to the `postgres` user (or
`nobody`). Celery workers start the way docs/deployment.md tells an operator, each a process
group of its own.
"""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
INSTALL_SERVERS = HERE / "install_servers.sh"
STARTUP_SECONDS = 60
BIN = Path(sys.executable).parent
WORKER_APP = "resources.celery_worker"
WORKER_READY_SECONDS = 180
WORKER_STOP_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a server, killing it when it does not stop within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class S3Server:
    endpoint_url: str
    process: subprocess.Popen

    def stop(self) -> None:
        stop_process(self.process)


def start_s3_server(log_dir: Path) -> S3Server:
    """moto's S3-compatible server, answering on a free port when this returns."""
    script = Path(sys.executable).with_name("moto_server")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    port = free_port()
    log = open(log_dir / "moto.log", "wb")  # noqa: SIM115 - kept open for the server's lifetime
    process = subprocess.Popen(
        [*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}; see {log.name}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            return S3Server(endpoint, process)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"moto_server did not answer on {endpoint} within {STARTUP_SECONDS}s")


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen

    def url(self, database: int = 0) -> str:
        """A Redis URL of one of the server's numbered databases (0 to 15)."""
        return f"redis://127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        stop_process(self.process)


def start_redis(folder: Path) -> RedisServer:
    """Debian's redis-server on a free port, without persistence, answering when this returns;
    installed first when it is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        subprocess.run(["bash", str(INSTALL_SERVERS)], check=True)
        binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(f"{INSTALL_SERVERS} ran, yet redis-server is not on PATH")
    port = free_port()
    log = folder / "redis.log"
    process = subprocess.Popen(
        [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(folder),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(log),
        ],
    )  # fmt: skip
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return RedisServer(port, process)
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"redis-server did not answer on port {port} within {STARTUP_SECONDS}s")


def postgres_bindir() -> Path:
    """The folder of initdb and pg_ctl, installing PostgreSQL when there is none."""
    for attempt in range(2):
        on_path = shutil.which("initdb")
        if on_path:
            return Path(on_path).resolve().parent
        versions = sorted(
            Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
        )
        if versions:
            return versions[-1].parent
        if attempt == 0:
            subprocess.run(["bash", str(INSTALL_SERVERS)], check=True)
    raise RuntimeError(f"{INSTALL_SERVERS} ran, yet no initdb is on PATH or in /usr/lib/postgresql")


@dataclass
class PostgresCluster:
    host: str
    port: int
    username: str
    password: str
    database: str
    folder: Path
    bindir: Path
    owner: str | None

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.owner, "--"] if self.owner else []
        result = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=STARTUP_SECONDS
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")

    def stop(self) -> None:
        try:
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-m",
                "immediate",
                "stop",
            )
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(database: str = "dagster") -> PostgresCluster:
    """A new cluster with password authentication, and an empty `database`, on a free port."""
    bindir = postgres_bindir()
    owner = None
    if os.geteuid() == 0:
        owner = next(name for name in ("postgres", "nobody") if _user_exists(name))
    # Not under pytest's tmp_path: its folders are private to root, and the cluster's owner
    # must be able to enter this one.
    folder = Path(tempfile.mkdtemp(prefix="flightdesk-pg-"))
    password = "flightdesk-test"
    (folder / "pwfile").write_text(password)
    if owner:
        user = pwd.getpwnam(owner)
        for path in (folder, folder / "pwfile"):
            os.chown(path, user.pw_uid, user.pw_gid)
    cluster = PostgresCluster(
        "127.0.0.1", free_port(), "dagster", password, database, folder, bindir, owner
    )
    cluster._run(
        str(bindir / "initdb"),
        "-D", str(folder / "data"),
        "-U", cluster.username,
        f"--pwfile={folder / 'pwfile'}",
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--no-sync",
    )  # fmt: skip
    options = f"-p {cluster.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    cluster._run(
        str(bindir / "pg_ctl"),
        "-D", str(folder / "data"),
        "-o", options,
        "-l", str(folder / "server.log"),
        "-w",
        "-t", str(STARTUP_SECONDS),
        "start",
    )  # fmt: skip
    create_database(cluster, cluster.database)
    return cluster


def create_database(cluster: PostgresCluster, name: str) -> None:
    """An empty database `name` on `cluster`, created from its maintenance database."""
    import psycopg2

    connection = psycopg2.connect(
        host=cluster.host,
        port=cluster.port,
        user=cluster.username,
        password=cluster.password,
        dbname="postgres",
    )
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass
class CeleryWorker:
    name: str
    process: subprocess.Popen
    folder: Path

    @property
    def node(self) -> str:
        """The worker's Celery node name, as step events name it."""
        return f"{self.name}@{socket.gethostname()}"

    @property
    def log(self) -> Path:
        return self.folder / "worker.log"

    def kill(self) -> None:
        """SIGKILL the worker and its processes at once, as a lost machine would stop them."""
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=WORKER_STOP_SECONDS)
        _signal_group(self.process, signal.SIGKILL)  # pool processes may outlive the main one
        self.process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def create_instance_tables(environment: dict[str, str]) -> None:
    """Open the Dagster instance of `environment` (its DAGSTER_HOME and DAGSTER_PG_* variables) in
    one process, which creates its tables in a fresh database. Celery workers open the instance as
    they start, and two opening a fresh database side by side race on creating the tables: one
    exits with `type "run_tags" already exists`. In a deployment the webserver or the daemon has
    created them before any worker starts."""
    opened = subprocess.run(
        [sys.executable, "-c", "import dagster as dg; dg.DagsterInstance.get().dispose()"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )
    if opened.returncode != 0:
        raise RuntimeError(f"the instance could not be opened:\n{opened.stderr[-3000:]}")


def start_celery_worker(
    name: str, environment: dict[str, str], folder: Path, dagster_yaml: Path
) -> CeleryWorker:
    """`dagster-celery worker start -A resources.celery_worker -n <name>`, one step at a time,
    with a DAGSTER_HOME (holding `dagster_yaml`), a data folder and a log of its own in `folder`.
    It runs in the repository, as a worker of the image runs in the image's working directory,
    where the code location's paths resolve alike."""
    folder.mkdir(parents=True)
    home = folder / "dagster_home"
    home.mkdir()
    shutil.copyfile(dagster_yaml, home / "dagster.yaml")
    env = environment | {
        "DAGSTER_HOME": str(home),
        "PLATFORM_DATA_DIR": str(folder / "data"),
        # dagster-celery starts `celery` from PATH.
        "PATH": f"{BIN}{os.pathsep}{environment.get('PATH', '')}",
    }
    with (folder / "worker.log").open("w") as log:
        process = subprocess.Popen(
            [
                str(BIN / "dagster-celery"), "worker", "start",
                "-A", WORKER_APP, "-n", name, "--loglevel", "INFO",
                "--", "--concurrency=1",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return CeleryWorker(name, process, folder)


def wait_for_workers(workers: list[CeleryWorker], broker_url: str) -> None:
    """Return once every worker answers a ping through the broker; raise with their logs."""
    from celery import Celery

    app = Celery(broker=broker_url)
    deadline = time.monotonic() + WORKER_READY_SECONDS
    waiting = {w.node: w for w in workers}
    try:
        while waiting and time.monotonic() < deadline:
            for worker in waiting.values():
                if worker.process.poll() is not None:
                    raise RuntimeError(
                        f"worker {worker.name} exited:\n{worker.log.read_text()[-4000:]}"
                    )
            for reply in app.control.ping(destination=list(waiting), timeout=2.0):
                for node in reply:
                    waiting.pop(node, None)
    finally:
        app.close()
    if waiting:
        logs = "\n".join(f"--- {w.name}\n{w.log.read_text()[-3000:]}" for w in waiting.values())
        raise RuntimeError(
            f"workers {sorted(waiting)} did not answer within {WORKER_READY_SECONDS}s:\n{logs}"
        )
