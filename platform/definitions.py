"""The code location: loaded by workspace.yaml as a file, because `platform/` is not a package."""

import gc
import warnings

import dagster as dg

# Single-run backfill policies and tolerant partition mappings are marked beta in Dagster 1.13;
# they are the documented way to backfill set-wise, so their warnings are noise for our users.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

import assets  # noqa: E402
import resources  # noqa: E402
import sensors  # noqa: E402
from resources import execution  # noqa: E402

# Every profile loads this file: the executor alone differs (PLATFORM_EXECUTOR: the run's own
# process by default, the Celery worker pool, or Kubernetes pods).
defs = dg.Definitions.merge(
    assets.defs,
    resources.defs,
    sensors.defs,
    dg.Definitions(executor=execution.executor()),
)

# The definitions and the modules they loaded live as long as the process: frozen, the collector
# no longer walks them in every full collection of a run, nor in those of the interpreter's exit
# (about half a second of each `dagster asset materialize`). Once per process: a reloaded
# location's new objects stay collectable.
if gc.get_freeze_count() == 0:
    gc.freeze()
