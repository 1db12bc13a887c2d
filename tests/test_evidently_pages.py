"""evidently's page renderer loads without the package's `__init__`, which still runs before any
other use of evidently in the process."""

import subprocess
import sys

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
