"""Where local state lives: `.data/` at the repository root unless PLATFORM_DATA_DIR says otherwise."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The root of all local state, read from the environment at call time (never at import)."""
    return Path(os.environ.get("PLATFORM_DATA_DIR") or REPO_ROOT / ".data").resolve()
