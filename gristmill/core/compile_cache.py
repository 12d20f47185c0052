"""Where compiled kernels are cached: ``NUMBA_CACHE_DIR`` when the user set it, else
``$XDG_CACHE_HOME/gristmill/numba`` (``~/.cache/gristmill/numba``).

numba's own default is a ``__pycache__`` folder beside each source file, which is read-only in an installed
package, a container image or a Ray job's unpacked working directory; then every process recompiles (seconds
per kernel module). A fixed, user-writable folder lets every later process, and every Ray worker on the node,
load the kernels instead. numba reads the variable when first imported; when it was imported before, its setting
is changed directly.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable


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


def tables_cache_dir() -> Path:
    """Where lookup tables derived from the Unicode database and the regex engine are kept (with the kernels)."""
    return numba_cache_dir() / "tables"


def cached_bytes(name: str, key: str, build: Callable[[], bytes]) -> bytes:
    """``build()``'s bytes, kept in ``tables_cache_dir()`` under ``name`` and a hash of ``key``, so that a table
    that takes a process a noticeable part of a second to derive is derived once per machine.

    ``key`` must name everything the bytes depend on (library versions, the source that builds them): another
    key is another file. The file is written whole under a temporary name and renamed, so a reader never sees a
    partial one; a cache folder that cannot be written is no error (the bytes are built every time then)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    path = tables_cache_dir() / f"{name}-{digest}.bin"
    try:
        return path.read_bytes()
    except OSError:
        pass
    data = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
    except OSError:
        pass
    return data
