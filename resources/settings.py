"""The environment, read in one place.

Every variable the platform reads is named here, with the function that reads it. Functions read
the environment when they are called (never at import), so a test or a benchmark that sets a
variable sees it take effect, and loading the code location never creates local state.
`platform/.env.example` documents each variable for operators.
"""

import getpass
import os
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

REPO_ROOT = Path(__file__).resolve().parents[1]

DATA_DIR_ENV = "PLATFORM_DATA_DIR"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
LAKE_URI_ENV = "PLATFORM_LAKE_URI"
# Where a dataset's rows come from: PLATFORM_SOURCE for every dataset, PLATFORM_SOURCE_<DATASET>
# for one of them.
SOURCE_ENV = "PLATFORM_SOURCE"
SOURCE_KINDS = ("bundled", "synthetic", "landing")
DEFAULT_SOURCE_KIND = "bundled"
LANDING_URI_ENV = "PLATFORM_LANDING_URI"
# PLATFORM_SYNTHETIC_<FIELD> sets a field of each dataset's synthetic generator that has it.
SYNTHETIC_PREFIX = "PLATFORM_SYNTHETIC_"
S3_ENDPOINT_ENV = "PLATFORM_S3_ENDPOINT_URL"
# The AWS SDKs' own variables for a custom endpoint, used when PLATFORM_S3_ENDPOINT_URL is unset.
AWS_ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
MODEL_THREADS_ENV = "PLATFORM_MODEL_THREADS"
REPLAY_ENV = "PLATFORM_REPLAY"
REPLAY_SECONDS_ENV = "PLATFORM_REPLAY_SECONDS"
DEFAULT_REPLAY_SECONDS = 20
AUTOMATION_SECONDS_ENV = "PLATFORM_AUTOMATION_SECONDS"
DEFAULT_AUTOMATION_SECONDS = 30
# How long Ctrl-C of `make run` lets the runs in progress finish before canceling them.
STOP_GRACE_ENV = "PLATFORM_STOP_GRACE_SECONDS"
DEFAULT_STOP_GRACE_SECONDS = 30
# The address of the report server: links to reports in materialization metadata start with it.
REPORTS_URL_ENV = "PLATFORM_REPORTS_URL"
DEFAULT_REPORTS_URL = "http://127.0.0.1:3001"
# The MLflow tracking server the registry is mirrored to (resources/mlflow_mirror.py); unset: no
# mirror, and MLflow is never imported. Links back from MLflow to a training's run start with the
# Dagster UI's address.
MLFLOW_TRACKING_URI_ENV = "PLATFORM_MLFLOW_TRACKING_URI"
DAGSTER_URL_ENV = "PLATFORM_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
# Modules holding declarations beside the `datasets` and `models` packages, comma-separated.
DECLARATIONS_ENV = "PLATFORM_DECLARATIONS"
SLACK_WEBHOOK_URL_ENV = "PLATFORM_SLACK_WEBHOOK_URL"
SLACK_BOT_TOKEN_ENV = "PLATFORM_SLACK_BOT_TOKEN"
SLACK_CHANNEL_ENV = "PLATFORM_SLACK_CHANNEL"
# Where the steps of a run execute: in the run's own process, on the Celery worker pool, or each in
# a Kubernetes pod of its own (resources.execution).
EXECUTOR_ENV = "PLATFORM_EXECUTOR"
EXECUTORS = ("in_process", "celery", "kubernetes")
DEFAULT_EXECUTOR = "in_process"
# The Celery pool's broker, and its result backend (the broker's URL when unset): Redis URLs.
CELERY_BROKER_ENV = "PLATFORM_CELERY_BROKER_URL"
CELERY_BACKEND_ENV = "PLATFORM_CELERY_BACKEND_URL"
# Days per run of a backfill of the daily assets; unset: a whole range in one run.
BACKFILL_DAYS_PER_RUN_ENV = "PLATFORM_BACKFILL_DAYS_PER_RUN"
# Monitoring settings of every model (PLATFORM_<SETTING>) or of one (PLATFORM_<MODEL>_<SETTING>);
# the names are the fields of `assets.model_spec.Monitoring`, upper-cased.
MONITORING_PREFIX = "PLATFORM_"


def _get(variable: str, environ: Mapping[str, str] | None = None) -> str:
    return (os.environ if environ is None else environ).get(variable, "").strip()


def configured(variable: str) -> dg.EnvVar | str:
    """A resource field's value from `variable`: `dg.EnvVar` when it is set, so Dagster resolves
    it where the resource runs and shows the variable's name rather than its value; empty when
    unset, so the resource falls back to its default."""
    return dg.EnvVar(variable) if _get(variable) else ""


def dagster_home() -> Path:
    """Dagster's instance folder: DAGSTER_HOME, else <data>/dagster_home."""
    return Path(_get(DAGSTER_HOME_ENV) or data_dir() / "dagster_home")


def data_dir() -> Path:
    """The root of all local state: `.data` in the repository unless PLATFORM_DATA_DIR says."""
    return Path(_get(DATA_DIR_ENV) or REPO_ROOT / ".data").resolve()


def lake_uri() -> str:
    """The lake's root: PLATFORM_LAKE_URI (a folder or s3://bucket/prefix), else <data>/lake."""
    return _get(LAKE_URI_ENV) or str(data_dir() / "lake")


def source_kind(dataset: str) -> str:
    """Which source delivers `dataset`: PLATFORM_SOURCE_<DATASET>, else PLATFORM_SOURCE, else
    bundled; a value that is not a source kind fails naming the variable."""
    for variable in (f"{SOURCE_ENV}_{dataset.upper()}" if dataset else "", SOURCE_ENV):
        kind = _get(variable).lower() if variable else ""
        if kind:
            if kind not in SOURCE_KINDS:
                raise ValueError(f"{variable}={kind!r}: expected one of {', '.join(SOURCE_KINDS)}")
            return kind
    return DEFAULT_SOURCE_KIND


def source_kinds() -> dict[str, str]:
    """The datasets given a source of their own by PLATFORM_SOURCE_<DATASET>: name -> kind."""
    prefix = f"{SOURCE_ENV}_"
    return {
        name[len(prefix) :].lower(): source_kind(name[len(prefix) :].lower())
        for name, value in os.environ.items()
        if name.startswith(prefix) and value.strip()
    }


def landing_uri() -> str:
    """The landing zone's root (a folder or s3://bucket/prefix); empty when unset."""
    return _get(LANDING_URI_ENV)


def synthetic_settings() -> dict[str, str]:
    """Every PLATFORM_SYNTHETIC_<FIELD> variable that is set, by lower-case field name."""
    return {
        name[len(SYNTHETIC_PREFIX) :].lower(): value.strip()
        for name, value in os.environ.items()
        if name.startswith(SYNTHETIC_PREFIX) and value.strip()
    }


def s3_endpoint(configured: str = "") -> str | None:
    """The S3 endpoint: `configured`, else PLATFORM_S3_ENDPOINT_URL, else the AWS SDK variables;
    None means AWS itself."""
    candidates = [configured, _get(S3_ENDPOINT_ENV), *(_get(name) for name in AWS_ENDPOINT_ENVS)]
    return next((value.strip() for value in candidates if value.strip()), None)


def model_threads() -> int | None:
    """OpenMP threads per fit or scoring chosen by PLATFORM_MODEL_THREADS; None when unset."""
    chosen = _get(MODEL_THREADS_ENV)
    if not chosen:
        return None
    try:
        return max(1, int(chosen))
    except ValueError:
        raise ValueError(f"{MODEL_THREADS_ENV}={chosen!r} is not a number of threads") from None


def replay_on() -> bool:
    """Whether the live replay runs: PLATFORM_REPLAY=on; `off` or unset keeps it stopped."""
    value = _get(REPLAY_ENV).lower() or "off"
    if value not in ("on", "off"):
        raise ValueError(f"{REPLAY_ENV}={value!r}: expected 'on' or 'off'")
    return value == "on"


def _positive_whole(variable: str, what: str, least: str) -> int | None:
    """A whole number of at least 1 from `variable` (None when unset); an error names the
    variable, its value, `what` it must be and the `least` it may be."""
    raw = _get(variable)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{variable}={raw!r} is not {what}") from None
    if value < 1:
        raise ValueError(f"{variable}={raw!r}: {least}")
    return value


def seconds(variable: str, default: int) -> int:
    """A positive number of seconds from `variable`, or `default` when it is unset."""
    value = _positive_whole(variable, "a whole number of seconds", "at least 1 second is required")
    return default if value is None else value


def replay_seconds() -> int:
    return seconds(REPLAY_SECONDS_ENV, DEFAULT_REPLAY_SECONDS)


def automation_seconds() -> int:
    return seconds(AUTOMATION_SECONDS_ENV, DEFAULT_AUTOMATION_SECONDS)


def executor() -> str:
    """How the steps of a run execute: PLATFORM_EXECUTOR, else in the run's own process."""
    kind = _get(EXECUTOR_ENV).lower() or DEFAULT_EXECUTOR
    if kind not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={kind!r}: expected one of {', '.join(EXECUTORS)}")
    return kind


def celery_broker_variable() -> str:
    """The variable holding the Celery broker's URL, which must be set for the Celery pool."""
    if not _get(CELERY_BROKER_ENV):
        raise ValueError(
            f"{EXECUTOR_ENV}=celery needs {CELERY_BROKER_ENV}, the Redis URL of the workers' broker "
            "(e.g. redis://redis.internal:6379/0)"
        )
    return CELERY_BROKER_ENV


def celery_backend_variable() -> str:
    """The variable holding the Celery result backend's URL: its own, else the broker's."""
    return CELERY_BACKEND_ENV if _get(CELERY_BACKEND_ENV) else celery_broker_variable()


def celery_url(variable: str) -> str:
    """The value of a Celery URL variable named by the two functions above."""
    return _get(variable)


def backfill_days_per_run() -> int | None:
    """Days per run of a backfill (PLATFORM_BACKFILL_DAYS_PER_RUN); None: one run per range."""
    return _positive_whole(BACKFILL_DAYS_PER_RUN_ENV, "a number of days", "at least 1 day per run")


def reports_url() -> str:
    """The base URL under which reports are served (PLATFORM_REPORTS_URL), without a final /."""
    url = (_get(REPORTS_URL_ENV) or DEFAULT_REPORTS_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{REPORTS_URL_ENV}={url!r}: expected an http:// or https:// URL")
    return url


def stop_grace_seconds() -> int:
    return seconds(STOP_GRACE_ENV, DEFAULT_STOP_GRACE_SECONDS)


def analyst_name() -> str:
    """Who is asking for an analyst's database: the login name."""
    return getpass.getuser()


def declaration_modules() -> list[str]:
    """Modules named by PLATFORM_DECLARATIONS, in order."""
    return [name.strip() for name in _get(DECLARATIONS_ENV).split(",") if name.strip()]


def monitoring_overrides(
    model: str, fields: list[str], shared: list[str], environ: Mapping[str, str] | None = None
) -> dict[str, tuple[str, str]]:
    """The monitoring `fields` of `model` set by the environment: field -> (variable, raw value).
    PLATFORM_<MODEL>_<FIELD> sets one model's; PLATFORM_<FIELD> sets every model's, for the
    `shared` fields only (those that mean the same whatever a model's metric)."""
    found = {}
    for field in fields:
        variables = [f"{MONITORING_PREFIX}{model.upper()}_{field.upper()}"]
        if field in shared:
            variables.append(f"{MONITORING_PREFIX}{field.upper()}")
        for variable in variables:
            raw = _get(variable, environ)
            if raw:
                found[field] = (variable, raw)
                break
    return found


def slack_secrets() -> dict[str, str]:
    """The Slack webhook URL or bot token that is set, by variable; read when an alert is sent."""
    return {
        variable: value
        for variable in (SLACK_WEBHOOK_URL_ENV, SLACK_BOT_TOKEN_ENV)
        if (value := _get(variable))
    }


def slack_channel(default: str) -> str:
    return _get(SLACK_CHANNEL_ENV) or default


def mlflow_tracking_uri() -> str:
    """The MLflow tracking server to mirror versions to; empty: no mirror."""
    return _get(MLFLOW_TRACKING_URI_ENV)


def dagster_url() -> str:
    """The address of the Dagster UI, where links to runs point."""
    return (_get(DAGSTER_URL_ENV) or DEFAULT_DAGSTER_URL).rstrip("/")
