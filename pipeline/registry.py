"""Registry of stages and readers by versioned name. Names are unique: registering a name twice is an error.

Built-in stages register when the ``stages`` package is imported; third-party stages come only from installed
entry points in the ``gristmill.stages`` group, so a YAML file can never name an import path.
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import TypeVar

from gristmill.stages.base import Stage

STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*_v[0-9]+$")
ENTRY_POINT_GROUP = "gristmill.stages"

_STAGES: dict[str, type[Stage]] = {}
_loaded = False

S = TypeVar("S", bound=type[Stage])


class RegistryError(ValueError):
    pass


def register_stage(cls: S) -> S:
    """Class decorator: add a stage under its ``name``; refuse malformed or duplicate names."""
    name = cls.name
    if not STAGE_NAME.match(name):
        raise RegistryError(f"stage name {name!r} must look like 'group.what_v1' (lowercase, versioned)")
    existing = _STAGES.get(name)
    if existing is not None and existing is not cls:
        raise RegistryError(
            f"stage {name!r} is already registered by {existing.__module__}.{existing.__qualname__}; "
            "bump the version instead of replacing it"
        )
    _STAGES[name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import gristmill.stages.builtin  # noqa: F401  (registers the built-in stages and readers)

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if cls.name != ep.name:
            raise RegistryError(f"entry point {ep.name!r} loads a stage named {cls.name!r}")
        register_stage(cls)


def get_stage(name: str) -> type[Stage]:
    _load()
    try:
        return _STAGES[name]
    except KeyError:
        raise RegistryError(f"unknown stage {name!r}; known stages: {', '.join(sorted(_STAGES))}") from None


def all_stages() -> dict[str, type[Stage]]:
    _load()
    return dict(sorted(_STAGES.items()))


# --- readers (ingest formats) -------------------------------------------------------------------------

_READERS: dict[str, type] = {}


def register_reader(cls):
    """Class decorator for ingest readers, keyed by their ``format`` (``warc``, ``jsonl``, ...)."""
    fmt = cls.format
    if fmt in _READERS and _READERS[fmt] is not cls:
        raise RegistryError(f"reader for format {fmt!r} is already registered")
    _READERS[fmt] = cls
    return cls


def get_reader(fmt: str):
    _load()
    try:
        return _READERS[fmt]
    except KeyError:
        raise RegistryError(f"unknown input format {fmt!r}; known formats: {', '.join(sorted(_READERS))}") from None


def all_readers() -> dict[str, type]:
    _load()
    return dict(sorted(_READERS.items()))
