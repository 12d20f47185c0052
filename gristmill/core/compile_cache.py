"""Where compiled kernels are cached: ``NUMBA_CACHE_DIR`` when the user set it, else
``$XDG_CACHE_HOME/gristmill/numba`` (``~/.cache/gristmill/numba``).

numba's own default is a ``__pycache__`` folder beside each source file, which is read-only in an installed
package, a container image or a Ray job's unpacked working directory; then every process recompiles (seconds
per kernel module). A fixed, user-writable folder lets every later process, and every Ray worker on the node,
load the kernels instead. numba reads the variable when first imported; when it was imported before, its setting
is changed directly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def numba_cache_dir() -> Path:
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gristmill" / "numba"


def use_numba_cache_dir() -> Path:
    """Point numba's cache at ``numba_cache_dir()``; call before the kernels' decorators run."""
    path = numba_cache_dir()
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    numba = sys.modules.get("numba")
    if numba is not None:  # imported already (``require("numba", ...)``): its settings were read then
        numba.config.CACHE_DIR = str(path)
    return path
