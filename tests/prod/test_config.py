"""The production recipes load and validate: instance config, ECS and Kubernetes launchers, image.

What cannot be checked here, because dagster-k8s, helm and a Docker daemon are not available:
the K8sRunLauncher block rendered by the chart, `helm template` itself, and building the image.
Those are checked for structure and for agreement with the files that do load.
"""

import json
import os
import re
import runpy
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import dagster as dg
import pytest
import yaml

from prod.conftest import PRODUCTION_YAML, Production
from prod.servers import REPO_ROOT, free_port

PRODUCTION = REPO_ROOT / "platform" / "production"
ECS_LAUNCHER = PRODUCTION / "ecs" / "run_launcher.yaml"
HELM_VALUES = PRODUCTION / "k8s" / "values.yaml"
K8S_DEFINITIONS = PRODUCTION / "k8s" / "definitions.py"
DOCKERFILE = PRODUCTION / "Dockerfile"
DAGSTER = Path(sys.executable).with_name("dagster")
# Keys of the official chart's `runLauncher.config.k8sRunLauncher` (chart 1.13 values schema).
CHART_K8S_RUN_LAUNCHER_KEYS = {
    "image",
    "imagePullPolicy",
    "jobNamespace",
    "loadInclusterConfig",
    "kubeconfigFile",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
    "labels",
    "resources",
    "schedulerName",
    "securityContext",
    "runK8sConfig",
    "failPodOnRunFailure",
}


def production_config() -> dict:
    return yaml.safe_load(PRODUCTION_YAML.read_text())


def test_the_production_instance_runs_on_postgres_with_compute_logs_on_s3(production: Production):
    from dagster._core.instance.config import PoolGranularity
    from dagster._core.launcher import DefaultRunLauncher
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    instance = dg.DagsterInstance.from_config(str(production.dagster_home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert instance.get_runs_count() == 0  # a query on the PostgreSQL server
        logs = instance.compute_log_manager
        assert isinstance(logs, S3ComputeLogManager)
        assert logs._s3_bucket == production.logs_bucket
        assert isinstance(instance.run_launcher, DefaultRunLauncher)
        concurrency = instance.get_concurrency_config()
        queue = concurrency.run_queue_config
        assert queue.max_concurrent_runs == 12
        assert {"key": "dagster/backfill", "limit": 8} in queue.tag_concurrency_limits
        assert concurrency.pool_config.default_pool_limit == 1  # one training run per model
        assert concurrency.pool_config.pool_granularity == PoolGranularity.RUN
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
    finally:
        instance.dispose()


def test_a_missing_connection_variable_is_named(
    production: Production, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(Exception, match="DAGSTER_PG_HOST"):
        dg.DagsterInstance.from_config(str(production.dagster_home)).run_storage  # noqa: B018


def test_the_ecs_launcher_block_validates_and_builds_the_launcher(
    production: Production, tmp_path: Path
):
    from dagster_aws.ecs import EcsRunLauncher

    fragment = yaml.safe_load(ECS_LAUNCHER.read_text())
    assert set(fragment) == {"run_launcher"}, "the ECS file must only add the run launcher"
    home = tmp_path / "ecs_home"
    home.mkdir()
    # Exactly the command of docs/deployment.md: the two files concatenated.
    (home / "dagster.yaml").write_text(PRODUCTION_YAML.read_text() + ECS_LAUNCHER.read_text())
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        launcher = instance.run_launcher
        assert isinstance(launcher, EcsRunLauncher)
        assert launcher.run_resources == {"cpu": "2048", "memory": "8192"}
        # Every variable a run needs to reach the lake, the instance and its logs is passed on.
        passed = set(launcher.env_vars)
        needed = {name for name in production.env if name.startswith(("DAGSTER_PG_", "DAGSTER_C"))}
        assert needed - {"DAGSTER_PG_PASSWORD"} <= passed
        assert "PLATFORM_LAKE_URI" in passed
        assert "DAGSTER_PG_PASSWORD" not in passed, "the password comes from Secrets Manager"
    finally:
        instance.dispose()


@pytest.fixture(scope="module")
def helm_values() -> dict:
    return yaml.safe_load(HELM_VALUES.read_text())


def test_helm_values_use_the_k8s_run_launcher_and_the_production_settings(helm_values: dict):
    production = production_config()
    launcher = helm_values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert set(launcher["config"]) == {"k8sRunLauncher"}
    assert set(launcher["config"]["k8sRunLauncher"]) <= CHART_K8S_RUN_LAUNCHER_KEYS

    # The same instance settings as platform/production/dagster.yaml.
    assert helm_values["postgresql"]["enabled"] is False
    assert helm_values["generatePostgresqlPasswordSecret"] is False
    assert helm_values["global"]["postgresqlSecretName"]
    assert helm_values["postgresql"]["postgresqlPassword"] == "", "no password in the values"
    logs = helm_values["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager"
    assert (
        logs["config"]["s3ComputeLogManager"]["prefix"]
        == production["compute_logs"]["config"]["prefix"]
    )
    coordinator = helm_values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    queue = coordinator["config"]["queuedRunCoordinator"]
    assert queue["maxConcurrentRuns"] == production["concurrency"]["runs"]["max_concurrent_runs"]
    assert (
        queue["tagConcurrencyLimits"] == production["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    daemon = helm_values["dagsterDaemon"]
    assert daemon["runMonitoring"]["enabled"] is production["run_monitoring"]["enabled"]
    assert daemon["runRetries"]["maxRetries"] == production["run_retries"]["max_retries"]


def test_helm_user_deployment_runs_the_kubernetes_code_location_of_the_image(helm_values: dict):
    (deployment,) = helm_values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    python_file = args[args.index("--python-file") + 1]
    working_directory = args[args.index("--working-directory") + 1]
    assert f"WORKDIR {working_directory}" in DOCKERFILE.read_text()
    assert REPO_ROOT / Path(python_file).relative_to(working_directory) == K8S_DEFINITIONS
    assert isinstance(deployment["port"], int)
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True


def _summary(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    repository = defs.get_repository_def()
    return {
        "assets": sorted(key.to_user_string() for key in graph.get_all_asset_keys()),
        "checks": sorted(str(key) for key in graph.asset_check_keys),
        "jobs": sorted(job.name for job in repository.get_all_jobs()),
        "sensors": sorted(sensor.name for sensor in repository.sensor_defs),
        "schedules": sorted(schedule.name for schedule in repository.schedule_defs),
        "resources": sorted(defs.resources or {}),
    }


def test_the_kubernetes_code_location_matches_the_platform_but_for_the_executor(
    monkeypatch: pytest.MonkeyPatch,
):
    # dagster-k8s is not installed here: its executor is stood in for by one with the same
    # `max_concurrent` setting, so the rest of the file is what is checked.
    stand_in = types.ModuleType("dagster_k8s")
    stand_in.k8s_job_executor = dg.multiprocess_executor
    monkeypatch.setitem(sys.modules, "dagster_k8s", stand_in)
    kubernetes = runpy.run_path(str(K8S_DEFINITIONS))["defs"]
    platform = runpy.run_path(str(REPO_ROOT / "platform" / "definitions.py"))["defs"]
    assert _summary(kubernetes) == _summary(platform)
    assert kubernetes.executor.name == dg.multiprocess_executor.name


def _accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _dockerfile_command() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    (command,) = re.findall(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    return json.loads(command)


def test_the_image_copies_what_exists_and_its_command_serves_the_code_location(tmp_path: Path):
    sources = re.findall(r"^COPY (.+) \S+$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    for line in sources:
        for source in line.split():
            assert (REPO_ROOT / source).exists(), (
                f"the Dockerfile copies {source}, which is missing"
            )

    command = _dockerfile_command()
    assert command[:3] == ["dagster", "api", "grpc"]
    # The image's paths mapped onto this checkout, and a free port on the loopback interface.
    workdir = command[command.index("--working-directory") + 1]
    command = [str(DAGSTER), *(arg.replace(workdir, str(REPO_ROOT)) for arg in command[1:])]
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    env = os.environ | {"PLATFORM_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path)}
    # Its stderr goes to a file: a pipe nobody reads while it runs could fill and block it.
    log = tmp_path / "code_server.log"
    with open(log, "w") as errors:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=errors, text=True)
    try:
        # The server opens its port once the definitions have loaded.
        deadline = time.monotonic() + 120
        while not _accepts_connections(port):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the code server did not start listening"
            time.sleep(0.5)
        check = subprocess.run(
            [str(DAGSTER), "api", "grpc-health-check", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        # How fast Dagster's code server winds down on SIGTERM is Dagster's (it waits for open
        # calls); once in a while it outlasts the wait, so the test does not leave it running.
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
