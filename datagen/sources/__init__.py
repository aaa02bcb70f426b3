"""The registry of sources: built-in modules here plus plug-ins from entry points.

A plug-in package adds a source with an entry point in group `datagen.sources`
(`myname = "mypkg.module:MySource"`), or by importing a module that uses
`@register_source`.

    >>> sorted(available_sources())[:2]
    ['amazon', 'steam']
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points

from datagen.errors import DataError
from datagen.sources.base import Source

_REGISTRY: dict[str, type[Source]] = {}
NOT_SOURCES = {"base", "download"}  # the contract, and fetching the official files
_loaded = False


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator: make `cls` available as `datagen build <cls.name>`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"two sources are named {cls.name!r}: {_REGISTRY[cls.name]} and {cls}")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in pkgutil.iter_modules(__path__):
        if module.name not in NOT_SOURCES:
            importlib.import_module(f"{__name__}.{module.name}")
    for entry in entry_points(group="datagen.sources"):
        register_source(entry.load())


def available_sources() -> dict[str, type[Source]]:
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get_source(name: str) -> Source:
    sources = available_sources()
    if name not in sources:
        raise DataError(f"unknown source {name!r}; the sources are: {', '.join(sources)} (see `datagen sources`)")
    return sources[name]()
