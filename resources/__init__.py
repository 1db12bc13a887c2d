"""Resources: the datasets' sources, the lake, the model registry and the notifier."""

import dagster as dg

from resources.lake import Lake
from resources.notifier import Notifier
from resources.registry import ModelRegistry
from resources.sources import Sources, sources_from_settings


def platform_resources(sources: Sources | None = None, lake: Lake | None = None) -> dict:
    """The resources every asset needs: the sources the settings name unless `sources` is
    given, and the lake where the settings put it unless `lake` is."""
    lake = lake or Lake()
    return {
        "sources": sources or sources_from_settings(),
        "lake": lake,
        "registry": ModelRegistry(lake=lake),
        "notifier": Notifier(),
    }


defs = dg.Definitions(resources=platform_resources())
