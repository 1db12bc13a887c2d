"""evidently's page renderer loads without the package's `__init__`, which still runs before any
other use of evidently in the process."""

import subprocess
import sys

from assets.evidently_pages import names_bound
from resources import settings

# Each check starts a fresh interpreter: the test process may have imported evidently whole.
RENDERER_FIRST = """
import sys
from assets.evidently_pages import renderer
pages = renderer()
assert "evidently.ui" not in sys.modules, "the package's __init__ ran"
assert "nltk" not in sys.modules, "the package's __init__ ran"
"""


def run_python(code: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_renderer_leaves_out_the_rest_of_evidently():
    run_python(
        RENDERER_FIRST
        + """
assert pages.widgets.__name__ == "evidently.legacy.renderers.html_widgets"
assert pages.template.file_html_template
"""
    )


def test_a_name_looked_up_on_the_package_initialises_it():
    run_python(
        RENDERER_FIRST
        + """
from evidently import Report, DataDefinition
import evidently
assert evidently.Report is Report and "evidently.ui" in sys.modules
assert evidently.legacy.renderers.html_widgets is pages.widgets  # one copy of each module
"""
    )


def test_importing_another_module_of_evidently_initialises_the_package_first():
    run_python(
        RENDERER_FIRST
        + """
from evidently.presets import DataDriftPreset
assert "evidently.ui" in sys.modules and "evidently._registry" in sys.modules
import evidently
assert evidently.Report and evidently.__version__
"""
    )


def test_a_probe_for_a_name_the_package_lacks_does_not_initialise_it():
    """`pickle.whichmodule` (copied by skops, run when skops is imported) looks for a name in
    every loaded module."""
    run_python(
        RENDERER_FIRST
        + """
import pickle
import numpy
assert getattr(sys.modules["evidently"], "agm", None) is None
assert pickle.whichmodule(numpy.add, "add") == "numpy"
import skops.io
assert "evidently.ui" not in sys.modules, "a probe ran the package's __init__"
import evidently
assert evidently.__version__ and "evidently.ui" in sys.modules
"""
    )


def test_the_names_a_module_binds_are_read_from_its_source():
    source = """
import a.b as c, d.e
try:
    from x import y
except ImportError:
    y = None
for i in range(3):
    pass
def f():
    local = 1
class K:
    attr = 2
"""
    assert names_bound(source) == {"c", "d", "y", "i", "f", "K"}
    assert names_bound("from m import *") is None, "unknowable: every name initialises"
