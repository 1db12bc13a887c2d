"""evidently's page renderer (its widgets and HTML template), loaded without the rest of evidently.

`import evidently`, or of any module inside it, first runs the package's `__init__`, which imports
its whole SDK: the UI service, the LLM descriptors and nltk, every legacy metric and test. That
takes about 3 s on two cores, more than rendering a year of drift reports, and a daily run pays
it in every process. The modules a report page needs import in a fraction of that on their own.

So when evidently is not imported yet, those modules are imported under its package module with
the `__init__` not run, and the package then defers its `__init__` (PEP 562's module
`__getattr__`) to the first lookup of a name the `__init__` binds (`evidently.Report`, `from
evidently import Dataset`) or of the `__path__` through which any other module inside it is
imported. The rest of the process sees the whole package, initialised before it is used, as
without this module. A name the `__init__` does not bind is missing either way: probes of every
loaded module for a name (`pickle.whichmodule`, which skops copies, looks for each numpy
function's home this way) find it missing without paying for the `__init__`.
"""

import ast
import importlib
import importlib.util
import sys
import threading
from functools import cache
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType, SimpleNamespace

PACKAGE = "evidently"
# What a report page uses, by the name `renderer()` gives it.
MODULES = {
    "colors": "evidently.legacy.options.color_scheme",
    "widgets": "evidently.legacy.renderers.html_widgets",
    "dashboard": "evidently.legacy.model.dashboard",
    "template": "evidently.legacy.utils.dashboard",
    "version": "evidently._version",
}
_loading = threading.RLock()


@cache
def renderer() -> SimpleNamespace:
    """The modules of `MODULES`, as attributes named by its keys; looked up once, as every
    report of a year's run asks for them."""
    with _loading:
        if PACKAGE in sys.modules:
            return _imported()
        spec = importlib.util.find_spec(PACKAGE)
        package = importlib.util.module_from_spec(spec)  # its `__init__` not run
        sys.modules[PACKAGE] = package
        try:
            return _imported()
        finally:
            _defer_init(package, spec)


def _imported() -> SimpleNamespace:
    return SimpleNamespace(
        **{name: importlib.import_module(module) for name, module in MODULES.items()}
    )


def _defer_init(package: ModuleType, spec: ModuleSpec) -> None:
    """Runs the package's `__init__` when a name it binds is first looked up. Without `__path__`,
    the import of any module inside it not imported yet looks that name up first."""
    path = package.__path__
    del package.__path__
    bound = names_bound(Path(spec.origin).read_text())
    initialised = False

    def complete(name: str) -> object:
        nonlocal initialised
        with _loading:
            if not initialised and (name == "__path__" or bound is None or name in bound):
                initialised = True  # names missing while `__init__` runs are missing, as usual
                package.__path__ = path
                spec.loader.exec_module(package)
                return getattr(package, name)
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")

    package.__getattr__ = complete


def names_bound(source: str) -> frozenset[str] | None:
    """The names a module's top level may bind (imports, definitions, any name stored outside a
    function or class body), or None when a star import makes them unknowable. A name too many
    only initialises the package for a lookup it did not need."""
    bound: set[str] = set()
    pending: list[ast.AST] = [ast.parse(source)]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.ImportFrom | ast.Import):
            for alias in node.names:
                if alias.name == "*":
                    return None
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)  # what its body binds is its own
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        else:
            pending += ast.iter_child_nodes(node)
    return frozenset(bound)
