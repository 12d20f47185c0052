"""A minimal task runner for the dedup shuffles: Ray tasks (results stay in the object store and flow from
task to task as references, never through the driver) or plain in-process calls; the same functions run in
both, so the local and the Ray executor give identical results."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable

import numpy as np


class Runner:
    def __init__(self, executor: str):
        if executor not in ("local", "ray"):
            raise ValueError(f"unknown executor {executor!r}; expected 'local' or 'ray'")
        self.use_ray = executor == "ray"
        self._remote: dict[Any, Any] = {}

    def submit(self, fn: Callable, *args, num_returns: int = 1, num_cpus: float = 1) -> Any:
        """Run ``fn(*args)``; with ``num_returns > 1`` gives a list of handles, one per returned value.
        Arguments may be handles of earlier calls (resolved before ``fn`` runs)."""
        if not self.use_ray:
            out = fn(*args)
            return list(out) if num_returns > 1 else out
        import ray

        key = (fn, num_returns, num_cpus)
        if key not in self._remote:
            self._remote[key] = ray.remote(num_returns=num_returns, num_cpus=num_cpus)(fn)
        out = self._remote[key].remote(*args)
        return list(out) if num_returns > 1 else out

    def get(self, handles: Any) -> Any:
        if not self.use_ray:
            return handles
        import ray

        return ray.get(handles)


def partition_of(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """Partition index of already well-mixed 64-bit keys (hashes)."""
    return (keys % np.uint64(num_partitions)).astype(np.int64)


def split_by_partition(part: np.ndarray, num_partitions: int, *columns: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Rows grouped by partition (stable: each group keeps the rows' order)."""
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(num_partitions + 1))
    return [tuple(c[order[bounds[p] : bounds[p + 1]]] for c in columns) for p in range(num_partitions)]


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write through ``write(tmp_path)`` into a temporary file next to ``path``, then rename it into place."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
