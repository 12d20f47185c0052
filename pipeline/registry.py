"""Registry of stages and readers by versioned name. Names are unique: registering a name twice is an error.

The registry is filled here, at the top of the import graph, on use: a built-in stage (``BUILTIN_STAGES``)
is imported when its name is first asked for, the readers (``_builtin_readers``) on the first reader asked
for, third-party stages from installed entry points in the ``gristmill.stages`` group on the first name that is
not built in (``name = "package.module:StageClass"``, the entry point's name equal to the
stage's). Stage modules never import the registry, so a YAML file can never name an import path and
importing a stage registers nothing.
"""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from typing import TypeVar

from gristmill.stages.base import Stage

STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*_v[0-9]+$")
ENTRY_POINT_GROUP = "gristmill.stages"

_STAGES: dict[str, type[Stage]] = {}
_entry_points_loaded = False

# Every built-in stage by name, as "module:Class": a run imports only the stages its plan names (importing
# them all costs ~1 s of start-up: pandas, numba kernels, fastText, scipy).
BUILTIN_STAGES = {
    "clean.boilerplate_v1": "gristmill.stages.clean.boilerplate:Boilerplate",
    "clean.normalize_v1": "gristmill.stages.clean.normalize:Normalize",
    "clean.pii_v1": "gristmill.stages.clean.pii:Pii",
    "dedup.bloom_v1": "gristmill.dedup.stages:BloomDedup",
    "dedup.minhash_v1": "gristmill.dedup.stages:MinHashDedup",
    "filter_v1": "gristmill.stages.filter:Filter",
    "lang.fasttext_v1": "gristmill.stages.lang.fasttext_lid:FastTextLangId",
    "mixture.pack_v1": "gristmill.mixtures.stages:MixturePack",
    "quality.fasttext_v1": "gristmill.stages.quality.fasttext_quality:FastTextQuality",
    "quality.heuristics_v1": "gristmill.stages.quality.heuristics:QualityHeuristics",
    "tokenize.bbpe_v1": "gristmill.stages.tokenize.encode:TokenizeBbpeV1",
    "tokenizer.train_bbpe_v1": "gristmill.stages.tokenize.train:TrainBbpeV1",
}

S = TypeVar("S", bound=type[Stage])


class RegistryError(ValueError):
    pass


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register_stage(cls: S) -> S:
    """Class decorator: add a stage under its ``name``; refuse malformed or duplicate names."""
    name = cls.name
    if not STAGE_NAME.match(name):
        raise RegistryError(f"stage name {name!r} must look like 'group.what_v1' (lowercase, versioned)")
    existing = _STAGES.get(name)
    owner = _qualified(existing) if existing is not None else BUILTIN_STAGES.get(name)
    if owner is not None and owner != _qualified(cls):
        raise RegistryError(
            f"stage {name!r} is already registered by {owner.replace(':', '.')}; "
            "bump the version instead of replacing it"
        )
    _STAGES[name] = cls
    return cls


def _builtin_stage(name: str) -> type[Stage]:
    module, _, attr = BUILTIN_STAGES[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if cls.name != name:
        raise RegistryError(f"{BUILTIN_STAGES[name]} is named {cls.name!r}, listed as {name!r}")
    return register_stage(cls)


def _builtin_readers() -> tuple[type, ...]:
    from gristmill.stages.ingest.readers import READERS

    return READERS


def _load_entry_points() -> None:
    """Third-party stages of the ``gristmill.stages`` entry-point group (once, on the first name not built in)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if cls.name != ep.name:
            raise RegistryError(f"entry point {ep.name!r} loads a stage named {cls.name!r}")
        register_stage(cls)


def get_stage(name: str) -> type[Stage]:
    if name in _STAGES:
        return _STAGES[name]
    if name in BUILTIN_STAGES:
        return _builtin_stage(name)
    _load_entry_points()
    try:
        return _STAGES[name]
    except KeyError:
        known = sorted(set(_STAGES) | set(BUILTIN_STAGES))
        raise RegistryError(f"unknown stage {name!r}; known stages: {', '.join(known)}") from None


def all_stages() -> dict[str, type[Stage]]:
    for name in BUILTIN_STAGES:
        get_stage(name)
    _load_entry_points()
    return dict(sorted(_STAGES.items()))


# --- readers (ingest formats) -------------------------------------------------------------------------

_READERS: dict[str, type] = {}
_readers_loaded = False


def register_reader(cls):
    """Class decorator for ingest readers, keyed by their ``format`` (``warc``, ``jsonl``, ...)."""
    fmt = cls.format
    if fmt in _READERS and _READERS[fmt] is not cls:
        raise RegistryError(f"reader for format {fmt!r} is already registered")
    _READERS[fmt] = cls
    return cls


def _load_readers() -> None:
    global _readers_loaded
    if not _readers_loaded:
        _readers_loaded = True
        for reader in _builtin_readers():
            register_reader(reader)


def get_reader(fmt: str):
    _load_readers()
    try:
        return _READERS[fmt]
    except KeyError:
        raise RegistryError(f"unknown input format {fmt!r}; known formats: {', '.join(sorted(_READERS))}") from None


def all_readers() -> dict[str, type]:
    _load_readers()
    return dict(sorted(_READERS.items()))
