"""The repository layout users and deployments rely on: `platform/` never shadows the stdlib."""

import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import REPO_ROOT

VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


def test_platform_folder_is_not_a_python_package():
    # A `platform` package would shadow the standard library module that dagster and pandas import.
    assert (REPO_ROOT / "platform" / "definitions.py").is_file()
    assert not (REPO_ROOT / "platform" / "__init__.py").exists()


def test_stdlib_platform_is_importable_from_the_repository_root():
    python = VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable)
    code = (
        "import platform, dagster, pandas, sysconfig; platform.system(); "
        "print(platform.__file__); print(sysconfig.get_paths()['stdlib'])"
    )
    result = subprocess.run(
        [str(python), "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded_from, stdlib = (Path(line).resolve() for line in result.stdout.splitlines()[-2:])
    assert not loaded_from.is_relative_to(REPO_ROOT / "platform")
    assert loaded_from.parent == stdlib, f"platform was imported from {loaded_from}"


def test_pyproject_names_the_packages_and_never_platform():
    """Packages are found by name only: never `platform/` (it would shadow the standard
    library), `tests/` or `bench/`."""
    from setuptools import find_packages

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    found = find_packages(str(REPO_ROOT), include=include)
    assert {p.split(".")[0] for p in found} == {
        "assets",
        "resources",
        "sensors",
        "datasets",
        "models",
    }
    assert "datasets.flights" in found and "models.flight_delay" in found
