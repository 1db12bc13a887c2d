"""evidently's page renderer (its widgets and HTML template), loaded without the rest of evidently.

`import evidently`, or of any module inside it, first runs the package's `__init__`, which imports
its whole SDK: the UI service, the LLM descriptors and nltk, every legacy metric and test. That
takes about 3 s on two cores, more than rendering a year of drift reports, and a daily run pays
it in every process. The modules a report page needs import in a fraction of that on their own.

So when evidently is not imported yet, those modules are imported under its package module with
the `__init__` not run, and the package then defers its `__init__` (PEP 562's module
`__getattr__`) to the first name looked up on it: `evidently.Report`, `from evidently import
Dataset`, or the `__path__` through which any other module inside it is imported. The rest of
the process sees the whole package, initialised before it is used, as without this module.
"""

import importlib
import importlib.util
import sys
import threading
from importlib.machinery import ModuleSpec
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


def renderer() -> SimpleNamespace:
    """The modules of `MODULES`, as attributes named by its keys."""
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
    """Runs the package's `__init__` when a name is first missing on it. Without `__path__`, the
    import of any module inside it not imported yet looks that name up first."""
    path = package.__path__
    del package.__path__
    initialised = False

    def complete(name: str) -> object:
        nonlocal initialised
        with _loading:
            if not initialised:
                initialised = True  # names missing while `__init__` runs are missing, as usual
                package.__path__ = path
                spec.loader.exec_module(package)
                return getattr(package, name)
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")

    package.__getattr__ = complete
