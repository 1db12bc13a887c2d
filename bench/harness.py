"""What every benchmark shares: a fresh workspace, the Dagster CLI as a user runs it, the daily
graph read from the definitions, figures with their targets, and the JSON record.

A workspace is a temporary folder holding its own `PLATFORM_DATA_DIR` (lake, warehouse) and
`DAGSTER_HOME` (a copy of `platform/dagster.yaml`, SQLite storage), so every benchmark starts
from nothing and never touches `.data/`. Each `dagster asset materialize` is a child process:
its wall time is measured around it. Its peak resident memory is that of its processes together
(a command may run several at once), sampled every `MEMORY_SAMPLE_SECONDS`; the kernel's
accounting (`os.wait4`) gives its CPU time and the peak of its largest process.
"""

import json
import math
import os
import platform
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path

import dagster as dg
import psutil

from resources.instance_storage import install_instance_config
from resources.settings import REPO_ROOT, data_dir

# Single-run backfill policies are beta in Dagster 1.13; their warnings would bury the figures.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
DEFINITIONS = "platform/definitions.py"
DAGSTER = Path(sys.executable).with_name("dagster")
PYTHON = Path(sys.executable)
BACKFILL = "platform/backfill.py"
# Variables that would point a benchmark at the user's own data or source.
INHERITED_PLATFORM_VARIABLES = ("PLATFORM_", "DAGSTER_HOME")
LOG_TAIL_LINES = 40
# How often a command's memory is read: a peak shorter than this can be missed.
MEMORY_SAMPLE_SECONDS = 0.1
# How busy the machine was when the benchmark started (1-minute load average), for its record.
LOAD_AT_START = os.getloadavg()[0]


class BenchError(RuntimeError):
    """A benchmark step failed; the message names the command and ends with its log."""


def code_location() -> dg.Definitions:
    """The definitions `workspace.yaml` and the CLI load (`platform/definitions.py`)."""
    return runpy.run_path(str(REPO_ROOT / DEFINITIONS))["defs"]


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so workspaces are removed and CLI children stopped."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def bench_dir() -> Path:
    """Where results are written: `<PLATFORM_DATA_DIR>/bench` (`.data/bench` by default)."""
    return data_dir() / "bench"


# --- The graph, read from the definitions ------------------------------------------------------


@dataclass(frozen=True)
class DailyGraph:
    """One dataset's daily graph split where a backfill has to split it.

    `unpartitioned`: the dataset's registers (no partitions; the flights' plane register);
    `raw_tables`, `features`: the daily assets models are trained from;
    `first_cutoffs`: each first training cutoff and the model assets trained for it;
    `after_models`: daily assets that need a champion (predictions, drift, quality).
    Notebooks are left out: they run in runs of their own after what they follow
    (`assets.automation`), and nothing of the daily cycle reads them.
    Read from the asset tags of the definitions (`assets.tags`), so it follows the declarations.
    """

    dataset: str
    first_day: str
    last_day: str
    unpartitioned: tuple[str, ...]
    raw_tables: tuple[str, ...]
    features: tuple[str, ...]
    first_cutoffs: dict[str, tuple[str, ...]]
    after_models: tuple[str, ...]

    @property
    def before_models(self) -> tuple[str, ...]:
        return self.raw_tables + self.features

    @property
    def models(self) -> tuple[str, ...]:
        """Every model asset of the graph."""
        return tuple(sorted(k for keys in self.first_cutoffs.values() for k in keys))

    @property
    def first_cutoff(self) -> str:
        """The first day every model of the graph has a champion: predictions start there."""
        return max(self.first_cutoffs)

    @property
    def daily(self) -> tuple[str, ...]:
        """Every daily asset except the models: what one day of the daily cycle materializes."""
        return self.before_models + self.after_models

    @classmethod
    def from_definitions(cls, dataset: str, models: Sequence[str] | None = None) -> "DailyGraph":
        """The graph of `dataset` with all its models, or only `models` (and the features they
        read, when another model owns them)."""
        from assets import CATALOG
        from assets.ingestion import INGESTION
        from assets.keys import model_key
        from assets.model_pipeline import FEATURES, TRAINING
        from assets.notebooks import NOTEBOOK_STAGE
        from assets.tags import DATASET_TAG, MODEL_TAG, STAGE_TAG

        declared = next((d for d in CATALOG.datasets if d.name == dataset), None)
        if declared is None:
            known = ", ".join(d.name for d in CATALOG.datasets)
            raise BenchError(f"no dataset {dataset!r}; declared: {known}")
        specs = CATALOG.models_of(declared)
        if models is not None:
            unknown = sorted(set(models) - {m.name for m in specs})
            if unknown:
                raise BenchError(f"{dataset} has no model {unknown}")
            specs = [m for m in specs if m.name in models]
        chosen = {m.name for m in specs}
        owners = {CATALOG.features_owner(m).name for m in specs}
        graph = code_location().resolve_asset_graph()
        stages: dict[str, set[str]] = {}
        unpartitioned = set()
        for key in graph.get_all_asset_keys():
            node = graph.get(key)
            tags = node.tags
            if not node.is_materializable or tags.get(DATASET_TAG) != dataset:
                continue
            model, stage = tags.get(MODEL_TAG), tags.get(STAGE_TAG, "")
            if model and model not in chosen and not (stage == FEATURES and model in owners):
                continue
            if node.partitions_def is None:
                unpartitioned.add(key.to_user_string())
            else:
                stages.setdefault(stage, set()).add(key.to_user_string())
        cutoffs: dict[str, list[str]] = {}
        for spec in specs:
            cutoff = CATALOG.first_cutoff(spec).isoformat()
            cutoffs.setdefault(cutoff, []).append(model_key(spec).to_user_string())
        raw, features = stages.pop(INGESTION, set()), stages.pop(FEATURES, set())
        stages.pop(TRAINING, None)
        stages.pop(NOTEBOOK_STAGE, None)
        return cls(
            dataset=dataset,
            first_day=declared.first_day.isoformat(),
            last_day=declared.last_day.isoformat(),
            unpartitioned=tuple(sorted(unpartitioned)),
            raw_tables=tuple(sorted(raw)),
            features=tuple(sorted(features)),
            first_cutoffs={c: tuple(sorted(keys)) for c, keys in sorted(cutoffs.items())},
            after_models=tuple(sorted(set().union(*stages.values()))),
        )


# --- Workspaces and the CLI ---------------------------------------------------------------------


@dataclass
class DagsterRun:
    """One Dagster run of a command: what it selected and how long it and its steps took."""

    run_id: str
    seconds: float  # from the run's start event to its end event
    step_seconds: dict[str, float]
    started: float = 0.0  # the start event's time (seconds since the epoch)

    @property
    def assets(self) -> set[str]:
        """The assets whose steps ran."""
        return set(self.step_seconds)


@dataclass
class CliRun:
    """One command (`dagster asset materialize`, `platform/backfill.py`): what it ran, how long
    it took, its peak memory, and the Dagster runs it launched."""

    label: str
    command: str
    seconds: float
    max_rss_bytes: int  # the largest of its processes, from the kernel
    cpu_seconds: float
    peak_tree_rss_bytes: int  # its processes together, sampled
    runs: list[DagsterRun] = field(default_factory=list)

    @property
    def run_seconds(self) -> float:
        """The runs' durations added up."""
        return sum(r.seconds for r in self.runs)

    @property
    def seconds_in_runs(self) -> float:
        """The time during which at least one of the runs was going: runs of datasets side by
        side overlap."""
        covered, reached = 0.0, float("-inf")
        for run in sorted(self.runs, key=lambda r: r.started):
            end = run.started + run.seconds
            covered += max(0.0, end - max(run.started, reached))
            reached = max(reached, end)
        return covered

    @property
    def step_seconds(self) -> dict[str, float]:
        return per_asset_seconds(self.runs)


class Workspace:
    """A temporary data folder and Dagster instance, removed on exit unless asked to keep it."""

    def __init__(self, name: str, source: dict[str, str] | None = None, keep: bool = False):
        self.root = Path(tempfile.mkdtemp(prefix=f"flightdesk-bench-{name}-"))
        self.source = dict(source or {})
        self.keep = keep
        install_instance_config(self.home)
        (self.root / "logs").mkdir()
        self.runs: list[CliRun] = []

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def lake_root(self) -> Path:
        return self.data / "lake"

    def lake(self):
        from resources.lake import Lake

        return Lake(uri=str(self.lake_root), warehouse_path=str(self.data / "warehouse.duckdb"))

    def env(self) -> dict[str, str]:
        """The environment of a CLI run: the bench's own, minus any platform setting of the
        user, plus this workspace's folders and source."""
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PLATFORM_VARIABLES)
        }
        return (
            env
            | {
                "DAGSTER_HOME": str(self.home),
                "PLATFORM_DATA_DIR": str(self.data),
                "PYTHONUNBUFFERED": "1",
            }
            | self.source
        )

    @cached_property
    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def materialize(
        self,
        label: str,
        select: Sequence[str],
        partition: str | None = None,
        partition_range: tuple[str, str] | None = None,
        definitions: str = DEFINITIONS,
    ) -> CliRun:
        """`dagster asset materialize` as a user types it; fails with the end of its log."""
        command = [DAGSTER, "asset", "materialize", "-f", definitions, "-d", "."]
        command += ["--select", ",".join(select)]
        if partition is not None:
            command += ["--partition", partition]
        if partition_range is not None:
            command += ["--partition-range", f"{partition_range[0]}...{partition_range[1]}"]
        return self.command(label, command)

    def backfill(self, label: str, arguments: Sequence[str]) -> CliRun:
        """`platform/backfill.py` as a user types it: the whole graph in one process."""
        return self.command(label, [PYTHON, BACKFILL, *arguments])

    def command(self, label: str, command: Sequence[str | Path]) -> CliRun:
        """One child process of the platform's commands, with the Dagster runs it launched;
        fails with the end of its log."""
        command = [str(part) for part in command]
        shown = shlex.join([Path(command[0]).name, *command[1:]])
        log = (
            self.root
            / "logs"
            / f"{len(self.runs):03d}-{label.replace('/', '_').replace(' ', '-')}.log"
        )
        known = {r.dagster_run.run_id for r in self.instance.get_run_records()}
        with open(log, "wb") as output:
            started = time.perf_counter()
            child = subprocess.Popen(
                command, cwd=REPO_ROOT, env=self.env(), stdout=output, stderr=subprocess.STDOUT
            )
            memory = TreeMemory(child.pid)
            try:
                _, status, usage = os.wait4(child.pid, 0)
            except BaseException:  # interrupted: do not leave the run going on its own
                child.kill()
                child.wait()
                raise
            finally:
                peak_tree = memory.stop()
            seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            raise BenchError(
                f"{label}: `{shown}` exited with {child.returncode} "
                f"(DAGSTER_HOME={self.home}); last lines of {log}:\n" + "\n".join(tail)
            )
        launched = [
            record.dagster_run
            for record in reversed(self.instance.get_run_records())
            if record.dagster_run.run_id not in known
        ]
        run = CliRun(
            label=label,
            command=shown,
            seconds=seconds,
            max_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports kilobytes
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            peak_tree_rss_bytes=max(peak_tree, usage.ru_maxrss * 1024),
            runs=[dagster_run(self.instance, launched_run) for launched_run in launched],
        )
        self.runs.append(run)
        print(
            f"  {label}: {seconds:.1f} s ({len(run.runs)} runs {run.run_seconds:.1f} s, "
            f"CPU {run.cpu_seconds:.1f} s, peak {run.peak_tree_rss_bytes / 2**20:.0f} MiB)",
            flush=True,
        )
        return run

    def close(self) -> None:
        if "instance" in self.__dict__:
            self.instance.dispose()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


class TreeMemory:
    """The peak of the resident memory of a process and its descendants together, sampled on a
    thread until `stop`."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self.peak = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        while not self.stopping.wait(MEMORY_SAMPLE_SECONDS):
            total = 0
            try:
                for process in [self.root, *self.root.children(recursive=True)]:
                    total += process.memory_info().rss
            except psutil.Error:  # a process ended between the listing and the reading
                continue
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self.stopping.set()
        self.thread.join()
        return self.peak


@contextmanager
def workspace(
    name: str, source: dict[str, str] | None = None, keep: bool = False
) -> Iterator[Workspace]:
    space = Workspace(name, source, keep)
    try:
        yield space
    finally:
        space.close()


def dagster_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> DagsterRun:
    """A run's duration from its start and end events, and each asset's step time from its step
    events (an op is named after its asset key with `__` for `/`)."""
    stats = instance.get_run_stats(run.run_id)
    steps = {
        step.step_key.replace("__", "/"): step.end_time - step.start_time
        for step in instance.get_run_step_stats(run.run_id)
        if step.start_time is not None and step.end_time is not None
    }
    return DagsterRun(
        run_id=run.run_id,
        seconds=stats.end_time - stats.start_time if stats.start_time and stats.end_time else 0.0,
        step_seconds=steps,
        started=stats.start_time or 0.0,
    )


def per_asset_seconds(runs: Iterable[CliRun | DagsterRun]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for run in runs:
        for asset, seconds in run.step_seconds.items():
            totals[asset] = totals.get(asset, 0.0) + seconds
    return dict(sorted(totals.items()))


def days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def spread(candidates: Sequence[str], count: int) -> list[str]:
    """`count` days spread evenly over `candidates`, first and last included."""
    if count >= len(candidates):
        return list(candidates)
    if count == 1:
        return [candidates[len(candidates) // 2]]
    step = (len(candidates) - 1) / (count - 1)
    return [candidates[round(i * step)] for i in range(count)]


# --- Figures, the table and the record ---------------------------------------------------------


@dataclass
class Figure:
    """One measured figure; `target` and `within` say what it must meet, if anything."""

    name: str
    value: float | bool | str
    unit: str = ""
    target: str = ""
    within: bool | None = None
    note: str = ""

    def verdict(self) -> str:
        if self.within is None:
            return ""
        return "met" if self.within else "MISSED"


def at_most(name: str, value: float, limit: float, unit: str, note: str = "") -> Figure:
    return Figure(name, value, unit, f"<= {limit:g} {unit}".strip(), value <= limit, note)


def at_least(name: str, value: float, limit: float, unit: str, note: str = "") -> Figure:
    return Figure(name, value, unit, f">= {limit:g} {unit}".strip(), value >= limit, note)


def info(name: str, value: float | str | bool, unit: str = "", note: str = "") -> Figure:
    return Figure(name, value, unit, note=note)


def time_figures(run: CliRun, note: str = "") -> list[Figure]:
    """Where a command's wall time went: each asset's steps, Dagster inside its runs around
    them, and the command outside its runs (with `note`)."""
    steps = run.step_seconds
    return [
        *[info(f"  step {asset}", seconds, "s") for asset, seconds in steps.items()],
        info(
            "  Dagster inside the runs, outside the steps",
            run.run_seconds - sum(steps.values()),
            "s",
        ),
        info(
            "  the command's start-up and exit, outside the runs",
            run.seconds - run.seconds_in_runs,
            "s",
            note,
        ),
    ]


def render(value: float | bool | str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, figures: Sequence[Figure]) -> str:
    """The figures as an aligned plain-text table with their targets and verdicts."""
    header = ("figure", "value", "target", "", "note")
    rows = [
        (f.name, f"{render(f.value)} {f.unit}".strip(), f.target, f.verdict(), f.note)
        for f in figures
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [title, "-" * len(title)]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def machine() -> dict[str, str | int | float]:
    """The machine the figures were measured on, how busy it was, and the code measured."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    one, five, fifteen = os.getloadavg()
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "memory_gib": round(memory / 2**30, 1),
        "load_average_1m_at_start": round(LOAD_AT_START, 2),
        "load_average_1m_at_end": round(one, 2),
        "load_average_5m_at_end": round(five, 2),
        "load_average_15m_at_end": round(fifteen, 2),
        "python": platform.python_version(),
        "dagster": dg.__version__,
        "commit": commit(),
    }


def commit() -> str:
    """The checkout's commit, marked `+changes` when files differ from it."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{head}+changes" if git("status", "--porcelain", "--untracked-files=no") else head


def measured_on(about: dict) -> str:
    """One line saying where figures were measured (`machine()`): they are only as quiet as the
    machine's load."""
    return (
        f"measured at commit {about.get('commit', 'unknown')} on {about['cores']} cores "
        f"({about['cpu']}); load average {about.get('load_average_1m_at_start', '?')} (1 min) "
        f"at the start, {about['load_average_1m_at_end']} / "
        f"{about.get('load_average_5m_at_end', '?')} / {about.get('load_average_15m_at_end', '?')}"
        " (1 / 5 / 15 min) at the end"
    )


def record(name: str, figures: Sequence[Figure], details: dict, started: float) -> Path:
    """Write the figures and details to `<bench dir>/<name>.json` (and a timestamped copy)."""
    folder = bench_dir()
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    content = {
        "benchmark": name,
        "finished_at": now.isoformat(timespec="seconds"),
        "bench_seconds": round(time.perf_counter() - started, 1),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "figures": [asdict(f) for f in figures],
        "details": details,
    }
    text = json.dumps(content, indent=2, default=str)
    latest = folder / f"{name}.json"
    latest.write_text(text)
    (folder / f"{name}-{now.strftime('%Y%m%dT%H%M%SZ')}.json").write_text(text)
    return latest


def report(name: str, title: str, figures: Sequence[Figure], details: dict, started: float) -> Path:
    """Print the figures' table with where they were measured, and record them as `name`."""
    about = machine()
    print()
    print(table(title, figures))
    print(measured_on(about))
    path = record(name, figures, details, started)
    print(f"recorded in {path}")
    return path


@contextmanager
def environment(**variables: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the duration."""
    saved = {name: os.environ.get(name) for name in variables}
    try:
        set_environment(variables)
        yield
    finally:
        set_environment(saved)


def set_environment(variables: dict[str, str | None]) -> None:
    """Set each variable to its value, or unset it where the value is None."""
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
