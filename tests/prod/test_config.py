"""The production recipes load and validate: instance config, ECS and Kubernetes launchers, the
executors of the profiles, the image.

What cannot be checked here, because neither helm, a Docker daemon nor a cluster is available:
`helm template` itself, building the image, and launching Jobs. The launcher block the chart
renders from the values is rebuilt as the chart's template writes it and loaded by dagster-k8s's
own K8sRunLauncher; the rest is checked for structure and for agreement with the files that load.
"""

import json
import os
import re
import runpy
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from prod.conftest import PRODUCTION_YAML, Production
from prod.servers import REPO_ROOT, free_port
from resources import defs as resource_defs
from resources import settings

PRODUCTION = REPO_ROOT / "platform" / "production"
ECS_LAUNCHER = PRODUCTION / "ecs" / "run_launcher.yaml"
HELM_VALUES = PRODUCTION / "k8s" / "values.yaml"
DEFINITIONS = REPO_ROOT / "platform" / "definitions.py"
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


def test_helm_user_deployment_serves_the_platform_code_location_with_the_kubernetes_executor(
    helm_values: dict,
):
    (deployment,) = helm_values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    python_file = args[args.index("--python-file") + 1]
    working_directory = args[args.index("--working-directory") + 1]
    assert f"WORKDIR {working_directory}" in DOCKERFILE.read_text()
    assert REPO_ROOT / Path(python_file).relative_to(working_directory) == DEFINITIONS
    assert {"name": settings.EXECUTOR_ENV, "value": "kubernetes"} in deployment["env"]
    assert isinstance(deployment["port"], int)
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True


def chart_run_launcher(values: dict, kubeconfig: Path) -> dict:
    """The K8sRunLauncher block the chart (1.13, `dagsterYaml.runLauncher.k8s`) writes into the
    instance from `values`, for the keys the values set; outside a cluster the launcher reads
    `kubeconfig` instead of the in-cluster configuration."""
    given = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert given["loadInclusterConfig"] is True
    config = {
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
        "job_namespace": given.get("jobNamespace", "flightdesk"),
        "image_pull_policy": given["imagePullPolicy"],
        "service_account_name": values["serviceAccount"]["name"],
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [
            {"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"},
            *(m["name"] for m in given.get("envConfigMaps", [])),
        ],
        "env_secrets": [s["name"] for s in given.get("envSecrets", [])],
        "env_vars": given.get("envVars", []),
        "run_k8s_config": snake_case(given.get("runK8sConfig", {})),
    }
    return config


def snake_case(value):
    """Keys of nested mappings in snake_case, as the chart's `snakeCaseDictRecursive` writes them."""
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): snake_case(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_case(item) for item in value]
    return value


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: offline, user: {token: unused}}]
contexts: [{name: offline, context: {cluster: offline, user: offline}}]
current-context: offline
"""


def test_the_chart_s_run_launcher_block_builds_dagster_k8s_s_launcher(
    helm_values: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from dagster._config import process_config, resolve_to_config_type
    from dagster_k8s import K8sRunLauncher

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    for name, value in {
        "DAGSTER_HOME": "/opt/dagster/dagster_home",
        "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "flightdesk-instance",
        "DAGSTER_K8S_PG_PASSWORD_SECRET": helm_values["global"]["postgresqlSecretName"],
        "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "flightdesk-pipeline-env",
    }.items():
        monkeypatch.setenv(name, value)
    block = chart_run_launcher(helm_values, kubeconfig)
    processed = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), block)
    assert processed.success, processed.errors
    launcher = K8sRunLauncher.from_config_value(None, processed.value)
    assert launcher.env_config_maps[1:] == ["flightdesk-env"]
    assert launcher.env_secrets == ["flightdesk-aws"]
    requests = launcher.run_k8s_config["container_config"]["resources"]["requests"]
    assert requests == {"cpu": "1", "memory": "4Gi"}


@pytest.mark.parametrize(
    ("days", "complaint"), [("month", "'month' is not a number of days"), ("0", "at least 1 day")]
)
def test_an_unusable_number_of_days_per_run_is_named(
    monkeypatch: pytest.MonkeyPatch, days: str, complaint: str
):
    from assets import CATALOG, build_asset_definitions

    monkeypatch.setenv(settings.BACKFILL_DAYS_PER_RUN_ENV, days)
    with pytest.raises(ValueError, match=rf"PLATFORM_BACKFILL_DAYS_PER_RUN=.*{complaint}"):
        build_asset_definitions(CATALOG)


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


def _code_location(monkeypatch: pytest.MonkeyPatch, **variables: str) -> dg.Definitions:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(DEFINITIONS))["defs"]


def test_every_profile_loads_the_same_code_location_with_its_own_executor(
    monkeypatch: pytest.MonkeyPatch,
):
    from dagster_k8s import k8s_job_executor

    monkeypatch.delenv(settings.EXECUTOR_ENV, raising=False)
    local = _code_location(monkeypatch)
    assert local.executor is dg.in_process_executor
    kubernetes = _code_location(monkeypatch, **{settings.EXECUTOR_ENV: "kubernetes"})
    assert kubernetes.executor.name == k8s_job_executor.name
    assert kubernetes.executor.executor_creation_fn is k8s_job_executor.executor_creation_fn
    celery = _code_location(
        monkeypatch,
        **{settings.EXECUTOR_ENV: "celery", settings.CELERY_BROKER_ENV: "redis://127.0.0.1:9/0"},
    )
    assert celery.executor.name == "celery"
    for defs in (kubernetes, celery):
        assert _summary(defs) == _summary(local)
        job = defs.resolve_implicit_global_asset_job_def()
        assert dg.validate_run_config(job, {}) is not None  # the executor's settings validate


def test_backfills_split_into_runs_of_the_declared_days_on_every_daily_asset(
    monkeypatch: pytest.MonkeyPatch,
):
    from assets import CATALOG, build_asset_definitions

    monkeypatch.setenv(settings.BACKFILL_DAYS_PER_RUN_ENV, "31")
    assets = build_asset_definitions(CATALOG)
    graph = dg.Definitions.merge(assets, resource_defs).resolve_asset_graph()
    policies = {
        key.to_user_string(): graph.get(key).backfill_policy
        for key in graph.materializable_asset_keys
    }
    daily = {k for k in policies if graph.get(dg.AssetKey.from_user_string(k)).partitions_def}
    assert daily and {policies[k] for k in daily} == {dg.BackfillPolicy.multi_run(31)}
    # A register has no days to split: one run, as before.
    assert {policies[k] for k in set(policies) - daily} == {dg.BackfillPolicy.single_run()}


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ({"PLATFORM_EXECUTOR": "dask"}, "PLATFORM_EXECUTOR='dask': expected one of"),
        ({"PLATFORM_EXECUTOR": "celery"}, "needs PLATFORM_CELERY_BROKER_URL"),
    ],
)
def test_an_unusable_executor_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, variables: dict, complaint: str
):
    monkeypatch.delenv(settings.CELERY_BROKER_ENV, raising=False)
    with pytest.raises(ValueError, match=re.escape(complaint)):
        _code_location(monkeypatch, **variables)


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
