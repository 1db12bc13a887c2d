"""Shared fixtures: a synthetic source, a temporary lake and data folder, a real Dagster instance."""

import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

warnings.filterwarnings("ignore", category=dg.BetaWarning)

from assets import CATALOG  # noqa: E402
from assets import defs as asset_defs  # noqa: E402
from resources import defs as resource_defs  # noqa: E402
from resources import platform_resources  # noqa: E402
from resources.instance_storage import PLATFORM_INSTANCE_CONFIG  # noqa: E402
from resources.lake import Lake  # noqa: E402
from resources.sources import Sources  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Small but enough for a model: 60+ days of 120 flights train in about a second.
SYNTHETIC_FLIGHTS_PER_DAY = 120
DAGSTER = Path(sys.executable).with_name("dagster")
# The instance storage `make run` configures (platform/dagster.yaml), for the tests' instances.
PLATFORM_STORAGE = yaml.safe_load(PLATFORM_INSTANCE_CONFIG.read_text())["storage"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for `make test`'s two pytest-xdist workers (`--dist loadgroup`): a module's tests
    stay on one worker, so its module-scoped lake and servers are built once, and the
    production profile's modules share one worker and its one set of servers (tests/prod)."""
    prod = REPO_ROOT / "tests" / "prod"
    for item in items:
        path = Path(item.path)
        group = "prod" if prod in path.parents else str(path.relative_to(REPO_ROOT))
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """All local state of the test under a temporary PLATFORM_DATA_DIR."""
    folder = tmp_path / "data"
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(folder))
    monkeypatch.delenv("PLATFORM_LAKE_URI", raising=False)
    return folder


@pytest.fixture
def lake(data_dir: Path) -> Lake:
    return Lake()


def synthetic_sources(
    seed: int = 7, flights_per_day: int = SYNTHETIC_FLIGHTS_PER_DAY, **extra
) -> Sources:
    """Every dataset from its synthetic generator, with these fields."""
    fields = {"seed": seed, "flights_per_day": flights_per_day, **extra}
    return Sources(kind="synthetic", synthetic={k: str(v) for k, v in fields.items()})


@pytest.fixture
def synthetic_source() -> Sources:
    return synthetic_sources()


def platform_instance():
    """A temporary Dagster instance with the storage `make run` configures, removed on exit."""
    return dg.instance_for_test(overrides={"storage": PLATFORM_STORAGE})


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with platform_instance() as test_instance:
        yield test_instance


class Platform:
    """Materializes assets of the real definitions against a test source, lake and instance."""

    def __init__(self, instance: dg.DagsterInstance, sources: Sources, lake: Lake):
        self.instance = instance
        self.lake = lake
        self.resources = platform_resources(sources=sources, lake=lake)

    def materialize(
        self, keys: Sequence[str], first: str | None = None, last: str | None = None
    ) -> dg.ExecuteInProcessResult:
        """One run over `keys` for the partitions first..last (one day when `last` is omitted)."""
        tags = {}
        if first is not None:
            tags = {
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last or first,
            }
        return dg.materialize(
            list(asset_defs.assets),
            selection=list(keys),
            instance=self.instance,
            resources=self.resources,
            tags=tags,
            run_config=QUIET,
        )

    def train(self, model: str, cutoff: str, **config) -> dg.ExecuteInProcessResult:
        """One run of `model`'s version for `cutoff`, with `config` as the model asset's run
        config (gate settings, search budget, rollout)."""
        return dg.materialize(
            list(asset_defs.assets),
            selection=[f"{model}/model"],
            instance=self.instance,
            resources=self.resources,
            partition_key=cutoff,
            run_config={**QUIET, "ops": {f"{model}__model": {"config": config}}},
        )


def asset_graph():
    """The graph of the code location's assets, as the UI and the daemon see it."""
    return dg.Definitions.merge(asset_defs, resource_defs).resolve_asset_graph()


@pytest.fixture
def platform(instance, synthetic_source, lake) -> Platform:
    return Platform(instance, synthetic_source, lake)


# --- Shared, longer-lived fixtures -------------------------------------------------------------
# Function-scoped fixtures above point the lake at the environment; the fixtures below pass every
# location explicitly instead, so one materialized lake can serve a whole module or session.


def free_port() -> int:
    """A TCP port of this host that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_lake(folder: Path) -> Lake:
    """A lake (and warehouse) under `folder`, independent of PLATFORM_DATA_DIR."""
    return Lake(uri=str(folder / "lake"), warehouse_path=str(folder / "warehouse.duckdb"))


FLIGHTS = "raw_flights"
# The rolling statistics of flight_delay's features: outcomes of the days before D, never of D.
ROLLING_FEATURES = [f for f in CATALOG.model("flight_delay").numeric_features if f.endswith("_7d")]


def flights_frame(rows: list[tuple[date, str, int]]) -> pd.DataFrame:
    """A minimal raw_flights table (date, carrier, flight) for the lake's own tests."""
    return pd.DataFrame(rows, columns=["flight_date", "carrier", "flight"]).astype(
        {"flight_date": "date32[pyarrow]", "carrier": "string", "flight": "int32"}
    )


def flight_rows(lake: Lake, days: list[date]) -> list[tuple]:
    """The rows of raw_flights stored for `days`, as sorted plain tuples."""
    read = lake.read(FLIGHTS, days)
    read["flight_date"] = pd.to_datetime(read["flight_date"]).dt.date
    return sorted(read.itertuples(index=False, name=None))


PIPELINE_FIRST, PIPELINE_LAST = "2013-01-01", "2013-03-10"
PIPELINE_MODEL_CUTOFF = "2013-03-01"
FLIGHT_MODELS = CATALOG.models_of(CATALOG.tables["raw_flights"][0])
# The flights' graph the way `make run` builds it, every model of the dataset included: each
# step one run over its whole partition range.
PIPELINE_STEPS: list[tuple[list[str], str | None, str | None]] = [
    (["raw_planes"], None, None),
    (["raw_flights", "raw_weather", "flight_outcomes"], PIPELINE_FIRST, PIPELINE_LAST),
    (
        [f"{m.name}/features" for m in FLIGHT_MODELS if not m.features_from],
        PIPELINE_FIRST,
        PIPELINE_LAST,
    ),
    ([f"{m.name}/model" for m in FLIGHT_MODELS], PIPELINE_MODEL_CUTOFF, None),
    ([f"{m.name}/predictions" for m in FLIGHT_MODELS], PIPELINE_MODEL_CUTOFF, PIPELINE_LAST),
]


@dataclass
class BuiltPipeline:
    """A synthetic lake materialized through predictions, and the runs that built it."""

    platform: Platform
    results: list[dg.ExecuteInProcessResult]
    run_ids_after_build: list[str]


@pytest.fixture(scope="session")
def synthetic_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltPipeline]:
    """PIPELINE_STEPS materialized once per session (about 25 s); tests must not alter its content."""
    folder = tmp_path_factory.mktemp("synthetic_pipeline")
    with platform_instance() as test_instance:
        built = Platform(test_instance, synthetic_sources(), make_lake(folder))
        results = [built.materialize(keys, first, last) for keys, first, last in PIPELINE_STEPS]
        run_ids = [record.dagster_run.run_id for record in test_instance.get_run_records()]
        yield BuiltPipeline(built, results, run_ids)


def platform_env(folder: Path) -> dict[str, str]:
    """The environment of `make run` with all state under `folder` and the test's synthetic data,
    and its instance created as `make instance` creates it, before runs start in parallel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    env |= {
        "DAGSTER_HOME": str(folder / "dagster_home"),
        "PLATFORM_DATA_DIR": str(folder),
        "PLATFORM_SOURCE": "synthetic",
        "PLATFORM_SYNTHETIC_SEED": "7",
        "PLATFORM_SYNTHETIC_FLIGHTS_PER_DAY": str(SYNTHETIC_FLIGHTS_PER_DAY),
    }
    subprocess.run(
        [sys.executable, "platform/bootstrap.py", "--instance-only"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def start_materialize(
    env: dict[str, str], select: str, *partition: str, log: Path | None = None
) -> subprocess.Popen:
    """`dagster asset materialize` of the code location, as a user or the daemon runs it; its
    output is piped, or written to `log` (for a run that is killed rather than read to its end)."""
    command = [str(DAGSTER), "asset", "materialize", "-f", "platform/definitions.py", "-d", "."]

    def start(output) -> subprocess.Popen:
        return subprocess.Popen(
            [*command, "--select", select, *partition],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )

    if log is None:
        return start(subprocess.PIPE)
    with log.open("w") as output:
        return start(output)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """One MLflow tracking server for every test that mirrors to MLflow (a few seconds to start)."""
    from mlflow_support import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    yield server
    server.stop()
