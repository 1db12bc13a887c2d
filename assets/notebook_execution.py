"""Executing one notebook through a Jupyter kernel, with papermill, and rendering the executed copy.

papermill injects the parameters in a cell after the one tagged `parameters`, runs every cell in
a fresh kernel (the `python3` kernel of this environment, so the notebook imports the platform
as the run does) and records each cell's outputs as it goes. A cell that raises stops the run:
the executed copy keeps every output up to it, with papermill's marker at the failing cell, and
the failure names that cell as the author counts it (the injected cell left out) and its error.
Both the copy and its HTML page (nbconvert's `lab` template, figures inline) come back as bytes
for the caller to store.
"""

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.notebook_spec import PARAMETERS_TAG

KERNEL = "python3"
# Seconds a kernel may take to start on a busy machine.
KERNEL_START_SECONDS = 120


@dataclass(frozen=True)
class CellFailure:
    """The cell that raised: its number in the declared notebook (1-based, every cell counted;
    0 for the injected parameters), its execution count, and the error."""

    cell: int
    execution_count: int | None
    error: str
    message: str

    def describe(self, path: Path) -> str:
        where = (
            "the injected parameters cell"
            if self.cell == 0
            else f"cell {self.cell} (In [{self.execution_count}])"
        )
        return f"{path.name} failed at {where}: {self.error}: {self.message}"


@dataclass(frozen=True)
class ExecutedNotebook:
    """An executed copy (whole, or up to the failing cell) and its HTML page."""

    ipynb: bytes
    html: bytes
    seconds: float
    code_cells: int
    failure: CellFailure | None


def execute_notebook(path: Path, parameters: dict[str, Any]) -> ExecutedNotebook:
    """Run the notebook at `path` with `parameters` injected, in a temporary working folder."""
    import nbformat
    import papermill
    from jupyter_client.manager import KernelManager
    from papermill.exceptions import PapermillExecutionError

    started = time.perf_counter()
    failure = None
    with tempfile.TemporaryDirectory(prefix="notebook-") as folder:
        output = Path(folder) / path.name
        # Talk to the kernel over sockets in the private temporary folder, not over TCP ports of
        # the machine that any local process could reach. A kernel manager handed to papermill
        # is the caller's to shut down.
        kernel = KernelManager(kernel_name=KERNEL, transport="ipc", ip=f"{folder}/kernel")
        try:
            papermill.execute_notebook(
                str(path),
                str(output),
                parameters=parameters,
                kernel_name=KERNEL,
                language="python",
                cwd=folder,
                progress_bar=False,
                start_timeout=KERNEL_START_SECONDS,
                km=kernel,
            )
        except PapermillExecutionError as error:
            failure = CellFailure(
                cell=declared_cell(nbformat.read(str(path), as_version=4), error.cell_index),
                execution_count=error.exec_count,
                error=error.ename,
                message=str(error.evalue),
            )
        finally:
            if kernel.has_kernel:
                kernel.shutdown_kernel(now=True)
        executed = nbformat.read(str(output), as_version=4)
    return ExecutedNotebook(
        ipynb=nbformat.writes(executed).encode(),
        html=render_html(executed),
        seconds=time.perf_counter() - started,
        code_cells=sum(c.cell_type == "code" for c in executed.cells),
        failure=failure,
    )


def declared_cell(declared, executed_index: int) -> int:
    """The 1-based number, in the declared notebook, of the cell at `executed_index` of its
    parameterized copy (0 when that is the injected cell): papermill inserts one cell after the
    one tagged `parameters`, or at the top when none is."""
    tagged = [
        i for i, c in enumerate(declared.cells) if PARAMETERS_TAG in c.metadata.get("tags", [])
    ]
    injected_at = tagged[0] + 1 if tagged else 0
    if executed_index == injected_at:
        return 0
    return executed_index + (0 if executed_index < injected_at else -1) + 1


def render_html(notebook) -> bytes:
    """The executed notebook as one HTML page, as JupyterLab shows it."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    return body.encode()
