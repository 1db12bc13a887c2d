"""Servers started once per session, and the production environment each module runs in.

The environment is exactly what docs/deployment.md tells an operator to set: the lake on S3, the
Dagster instance from platform/production/dagster.yaml on PostgreSQL, compute logs on S3, and AWS
credentials and endpoint through the standard AWS variables.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from prod.servers import (
    REPO_ROOT,
    PostgresCluster,
    RedisServer,
    S3Server,
    create_database,
    start_postgres,
    start_redis,
    start_s3_server,
)

PRODUCTION_YAML = REPO_ROOT / "platform" / "production" / "dagster.yaml"
# Variables of a developer's shell that would send the tests to another store or account.
FOREIGN_AWS_VARIABLES = [
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "PLATFORM_S3_ENDPOINT_URL",
]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = start_postgres()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the session: each module's Celery pool uses a database of its own."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@dataclass
class Production:
    """One production deployment: its own buckets, database and DAGSTER_HOME."""

    env: dict[str, str]
    lake_bucket: str
    logs_bucket: str
    dagster_home: Path

    def s3_client(self):
        import boto3

        return boto3.client("s3")


@pytest.fixture(scope="module")
def production(
    s3_server: S3Server, postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Production]:
    """The production environment variables set for the module, with fresh buckets and database."""
    suffix = uuid.uuid4().hex[:8]
    folder = tmp_path_factory.mktemp("production")
    home = folder / "dagster_home"
    home.mkdir()
    shutil.copyfile(PRODUCTION_YAML, home / "dagster.yaml")
    database = f"dagster_{suffix}"
    create_database(postgres, database)
    lake_bucket, logs_bucket = f"flightdesk-lake-{suffix}", f"flightdesk-logs-{suffix}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "PLATFORM_LAKE_URI": f"s3://{lake_bucket}/lake",
        "PLATFORM_DATA_DIR": str(folder / "data"),
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USERNAME": postgres.username,
        "DAGSTER_PG_PASSWORD": postgres.password,
        "DAGSTER_PG_DB": database,
        "DAGSTER_COMPUTE_LOGS_BUCKET": logs_bucket,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in FOREIGN_AWS_VARIABLES:
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        deployment = Production(env, lake_bucket, logs_bucket, home)
        client = deployment.s3_client()
        for bucket in (lake_bucket, logs_bucket):
            client.create_bucket(Bucket=bucket)
        yield deployment


def environment_of(production: Production) -> dict[str, str]:
    """The full environment of a subprocess: the current one with the production variables."""
    base = {k: v for k, v in os.environ.items() if k not in FOREIGN_AWS_VARIABLES}
    return base | production.env
