"""gristmill: pretraining data pipelines on Ray.

Installed, the repository's top-level folders are subpackages of this one (``gristmill.pipeline``,
``gristmill.stages``, ``gristmill.dedup``, ``gristmill.mixtures``; pyproject's package-dir). A source checkout
used without installing, such as the working directory a Ray job uploads, has them beside this folder, so
they are looked up there too.

The Python API (``gristmill.run``, ``gristmill.ShardReader``, ``gristmill.ShardDataset``, ...) loads on first
use (PEP 562): ``import gristmill`` stays cheap, and torch is imported only when ``ShardDataset`` is used.
"""

import os as _os
from importlib import import_module as _import_module

__version__ = "0.1.0"

_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "pipeline")) and _os.path.isfile(
        _os.path.join(_root, "pipeline", "__init__.py")):
    __path__.append(_root)  # noqa: F821  (a package's own __path__)

# name -> module; the module is imported by the first access to the name.
_EXPORTS = {
    "run": "gristmill.pipeline.api",
    "PipelineRun": "gristmill.pipeline.api",
    "ShardReader": "gristmill.mixtures.shards",
    "load_manifest": "gristmill.mixtures.shards",
    "ShardDataset": "gristmill.mixtures.dataset",
    "ShardLoader": "gristmill.mixtures.dataset",
    "export_run": "gristmill.mixtures.export.exporter",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(_import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gristmill' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
