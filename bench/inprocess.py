"""In-process runs of the code location's assets on a workspace, with the bundled sources.

Benchmarks that replay a year day by day (`bench/replay_retraining.py`) or fit many versions
(`bench/model_params.py`, `bench/retraining_ceiling.py`) would spend most of their time starting
CLI processes; `dg.materialize` runs the same assets against the workspace's lake and Dagster
instance in this process, with the same resources the code location binds.
"""

from collections.abc import Sequence

import dagster as dg

from bench.harness import DailyGraph, Workspace, code_location
from sensors.run_tags import RANGE_END_TAG, RANGE_START_TAG

# Gate failures and the like are reported by the benchmarks themselves.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class InProcess:
    """The code location's assets run in this process on `space`, from the bundled data."""

    def __init__(self, space: Workspace):
        from resources import platform_resources
        from resources.sources import Sources

        self.space = space
        self.lake = space.lake()
        self.resources = platform_resources(sources=Sources(kind="bundled"), lake=self.lake)
        self.assets = list(code_location().assets or [])

    def materialize(
        self,
        keys: Sequence[str] | Sequence[dg.AssetKey],
        first: str | None = None,
        last: str | None = None,
        tags: dict[str, str] | None = None,
        ops: dict | None = None,
    ) -> dg.ExecuteInProcessResult:
        """One run of `keys` over first..last (one day when `last` is omitted), with the run
        config `ops` of its steps, if any."""
        span = {} if first is None else {RANGE_START_TAG: first, RANGE_END_TAG: last or first}
        return dg.materialize(
            self.assets,
            selection=list(keys),
            instance=self.space.instance,
            resources=self.resources,
            tags=span | (tags or {}),
            run_config=QUIET | ({"ops": ops} if ops else {}),
            raise_on_error=False,
        )

    def must(
        self,
        label: str,
        keys: Sequence[str] | Sequence[dg.AssetKey],
        first: str | None = None,
        last: str | None = None,
    ) -> dg.ExecuteInProcessResult:
        """`materialize`, failing with the steps' errors when the run fails."""
        result = self.materialize(keys, first, last)
        if not result.success:
            errors = [
                event.event_specific_data.error.to_string()
                for event in result.all_events
                if event.is_step_failure
            ]
            raise RuntimeError(f"{label}: run {result.run_id} failed:\n" + "\n".join(errors))
        return result


def ingest_and_featurize(runner: InProcess, graph: DailyGraph, last: str) -> None:
    """The registers, then the raw tables and features of the graph's first day..`last`, one run
    each: what every day needs before any model (features never depend on a model, so they are
    what the daily cycle would compute day by day)."""
    if graph.unpartitioned:
        runner.must("registers", graph.unpartitioned)
    runner.must("raw tables", graph.raw_tables, graph.first_day, last)
    runner.must("features", graph.features, graph.first_day, last)
