"""Resources: the datasets' sources, the lake, the model registry and the notifier."""

import dagster as dg

from resources import settings
from resources.lake import Lake
from resources.notifier import Notifier
from resources.registry import ModelRegistry
from resources.sources import Sources, sources_from_settings


def platform_resources(sources: Sources | None = None, lake: Lake | None = None) -> dict:
    """The resources every asset needs: the sources the settings name unless `sources` is
    given, and the lake where the settings put it unless `lake` is. Their values are resolved,
    so scripts and tests can use them directly."""
    lake = lake or Lake()
    return {
        "sources": sources or sources_from_settings(),
        "lake": lake,
        "registry": ModelRegistry(lake=lake),
        "notifier": Notifier(),
    }


def location_resources() -> dict:
    """The code location's resources: locations set by the environment are `dg.EnvVar`s, which
    Dagster resolves where a run executes and shows by name in the UI."""
    return platform_resources(
        sources=sources_from_settings(settings.configured(settings.LANDING_URI_ENV)),
        lake=Lake(uri=settings.configured(settings.LAKE_URI_ENV)),
    )


defs = dg.Definitions(resources=location_resources())
