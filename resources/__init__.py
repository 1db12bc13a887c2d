"""Resources: the flight source, the lake, the model registry and the notifier."""

import dagster as dg

from resources.lake import Lake
from resources.notifier import Notifier
from resources.registry import ModelRegistry
from resources.source_choice import EnvironmentSource
from resources.sources import FlightSource


def platform_resources(source: FlightSource | None = None, lake: Lake | None = None) -> dict:
    """The resources every asset needs; which source and where data lives are read from the
    environment at run time."""
    lake = lake or Lake()
    return {
        "source": source or EnvironmentSource(),
        "lake": lake,
        "registry": ModelRegistry(lake=lake),
        "notifier": Notifier(),
    }


defs = dg.Definitions(resources=platform_resources())
