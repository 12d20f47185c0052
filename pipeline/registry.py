"""Registry of stages and readers by versioned name. Names are unique: registering a name twice is an error.

The registry is filled here, at the top of the import graph, on first use: the built-in stages and readers
listed in ``_builtin_stages`` / ``_builtin_readers``, then third-party stages from installed entry points in
the ``gristmill.stages`` group (``name = "package.module:StageClass"``, the entry point's name equal to the
stage's). Stage modules never import the registry, so a YAML file can never name an import path and
importing a stage registers nothing.
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


def _builtin_stages() -> tuple[type[Stage], ...]:
    from gristmill.dedup.stages import BloomDedup, MinHashDedup
    from gristmill.mixtures.stages import MixturePack
    from gristmill.stages.clean.boilerplate import Boilerplate
    from gristmill.stages.clean.normalize import Normalize
    from gristmill.stages.clean.pii import Pii
    from gristmill.stages.filter import Filter
    from gristmill.stages.lang.fasttext_lid import FastTextLangId
    from gristmill.stages.quality.fasttext_quality import FastTextQuality
    from gristmill.stages.quality.heuristics import QualityHeuristics
    from gristmill.stages.tokenize.encode import TokenizeBbpeV1
    from gristmill.stages.tokenize.train import TrainBbpeV1

    return (Normalize, Boilerplate, Pii, Filter, FastTextLangId, QualityHeuristics, FastTextQuality,
            BloomDedup, MinHashDedup, TrainBbpeV1, TokenizeBbpeV1, MixturePack)


def _builtin_readers() -> tuple[type, ...]:
    from gristmill.stages.ingest.readers import READERS

    return READERS


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for cls in _builtin_stages():
        register_stage(cls)
    for reader in _builtin_readers():
        register_reader(reader)
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
