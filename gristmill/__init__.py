"""gristmill: pretraining data pipelines on Ray.

Installed, the repository's top-level folders are subpackages of this one (``gristmill.pipeline``,
``gristmill.stages``, ``gristmill.dedup``, ``gristmill.mixtures``; pyproject's package-dir). A source checkout
used without installing, such as the working directory a Ray job uploads, has them beside this folder, so
they are looked up there too.
"""

import os as _os

__version__ = "0.1.0"

_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "pipeline")) and _os.path.isfile(
        _os.path.join(_root, "pipeline", "__init__.py")):
    __path__.append(_root)  # noqa: F821  (a package's own __path__)
