"""Registry of stages by versioned name. Names are unique: registering a name twice is an error.

Every kind of stage is here: head stages that read the pipeline's inputs (``ingest.warc_v1``), streaming and
global steps. The registry is filled here, at the top of the import graph, on use: a built-in stage
(``BUILTIN_STAGES``) is imported when its name is first asked for, third-party stages from installed entry points
in the ``gristmill.stages`` group on the first name that is not built in (``name = "package.module:StageClass"``,
the entry point's name equal to the stage's); ``register_stage`` is what the entry points go through. Stage
modules never import the registry, so a YAML file can never name an import path and importing a stage registers
nothing.

``inputs[].format`` names a head stage: by its versioned name, or by the short ``format`` it declares
(``warc`` is ``ingest.warc_v1``; ``BUILTIN_FORMATS`` for the built-in ones, a third-party head stage's when it
is registered).
"""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from typing import TypeVar

from gristmill.stages.base import HeadStage, Stage

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
    "ingest.hf_v1": "gristmill.stages.ingest.hf:HfReader",
    "ingest.jsonl_v1": "gristmill.stages.ingest.jsonl:JsonlReader",
    "ingest.parquet_v1": "gristmill.stages.ingest.parquet:ParquetReader",
    "ingest.text_v1": "gristmill.stages.ingest.text:TextReader",
    "ingest.warc_v1": "gristmill.stages.ingest.warc:WarcReader",
    "ingest.wet_v1": "gristmill.stages.ingest.warc:WetReader",
    "lang.fasttext_v1": "gristmill.stages.lang.fasttext_lid:FastTextLangId",
    "mixture.pack_v1": "gristmill.mixtures.stages:MixturePack",
    "quality.fasttext_v1": "gristmill.stages.quality.fasttext_quality:FastTextQuality",
    "quality.heuristics_v1": "gristmill.stages.quality.heuristics:QualityHeuristics",
    "tokenize.bbpe_v1": "gristmill.stages.tokenize.encode:TokenizeBbpeV1",
    "tokenizer.train_bbpe_v1": "gristmill.stages.tokenize.train:TrainBbpeV1",
}

# The short ``inputs[].format`` of each built-in head stage.
BUILTIN_FORMATS = {
    "hf": "ingest.hf_v1",
    "jsonl": "ingest.jsonl_v1",
    "parquet": "ingest.parquet_v1",
    "text": "ingest.text_v1",
    "warc": "ingest.warc_v1",
    "wet": "ingest.wet_v1",
}
# Short formats of the head stages registered so far (third-party ones included): format -> stage name.
_FORMATS: dict[str, str] = {}

S = TypeVar("S", bound=type[Stage])


class RegistryError(ValueError):
    pass


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register_stage(cls: S) -> S:
    """Add a stage under its ``name`` (and a head stage under its ``format``, if it has one); refuse malformed or
    duplicate names and formats. The ``gristmill.stages`` entry points are registered through this; a class
    decorator too."""
    name = cls.name
    if not STAGE_NAME.match(name):
        raise RegistryError(f"stage name {name!r} must look like 'group.what_v1' (lowercase, versioned)")
    if cls.kind == "head" and not issubclass(cls, HeadStage):
        raise RegistryError(f"stage {name!r} is of kind 'head' but not a gristmill.stages.base.HeadStage")
    existing = _STAGES.get(name)
    owner = _qualified(existing) if existing is not None else BUILTIN_STAGES.get(name)
    if owner is not None and owner != _qualified(cls):
        raise RegistryError(
            f"stage {name!r} is already registered by {owner.replace(':', '.')}; "
            "bump the version instead of replacing it"
        )
    fmt = getattr(cls, "format", "") if cls.kind == "head" else ""
    if fmt:
        format_owner = _FORMATS.get(fmt) or BUILTIN_FORMATS.get(fmt)
        if format_owner is not None and format_owner != name:
            raise RegistryError(f"stage {name!r}: input format {fmt!r} is already the format of stage {format_owner}")
        if STAGE_NAME.match(fmt) and fmt != name:
            raise RegistryError(f"stage {name!r}: input format {fmt!r} looks like a stage name; give a short name")
        _FORMATS[fmt] = name
    _STAGES[name] = cls
    return cls


def _builtin_stage(name: str) -> type[Stage]:
    module, _, attr = BUILTIN_STAGES[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if cls.name != name:
        raise RegistryError(f"{BUILTIN_STAGES[name]} is named {cls.name!r}, listed as {name!r}")
    return register_stage(cls)


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


# --- head stages by input format ------------------------------------------------------------------------

def _format_stage_name(fmt: str) -> str | None:
    if fmt in BUILTIN_FORMATS:
        return BUILTIN_FORMATS[fmt]
    if fmt in _FORMATS:
        return _FORMATS[fmt]
    if fmt in _STAGES or fmt in BUILTIN_STAGES:
        return fmt
    _load_entry_points()
    return _FORMATS.get(fmt) or (fmt if fmt in _STAGES else None)


def canonical_format(fmt: str) -> str:
    """The short format an input's ``format`` stands for (``ingest.warc_v1`` -> ``warc``), so that both spellings of
    one reader hash alike; a head stage without a short format keeps its stage name."""
    name = _format_stage_name(fmt)
    if name is None:
        return fmt
    shorts = sorted(short for short, stage in {**BUILTIN_FORMATS, **_FORMATS}.items() if stage == name)
    return shorts[0] if shorts else name


def head_stage(fmt: str) -> type[HeadStage]:
    """The head stage an input's ``format`` names: its short format (``warc``) or its stage name
    (``ingest.warc_v1``)."""
    name = _format_stage_name(fmt)
    if name is None:
        raise RegistryError(f"unknown input format {fmt!r}; known formats: {', '.join(sorted(formats()))} "
                            "(or a reader stage's name, such as ingest.warc_v1)")
    cls = get_stage(name)
    if cls.kind != "head":
        raise RegistryError(f"input format {fmt!r} names the {cls.kind} stage {name}, which reads no input; "
                            f"known formats: {', '.join(sorted(formats()))}")
    return cls  # type: ignore[return-value]


def formats() -> dict[str, str]:
    """Every short input format and the head stage it names (built-in, then registered and entry-point ones)."""
    _load_entry_points()
    return dict(sorted({**BUILTIN_FORMATS, **_FORMATS}.items()))
