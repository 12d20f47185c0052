"""Helpers of the dedup shuffles: partitioning well-mixed keys and grouping rows by partition."""

from __future__ import annotations

import numpy as np


def partition_of(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """Partition index of already well-mixed 64-bit keys (hashes)."""
    return (keys % np.uint64(num_partitions)).astype(np.int64)


def split_by_partition(part: np.ndarray, num_partitions: int, *columns: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Rows grouped by partition (stable: each group keeps the rows' order)."""
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(num_partitions + 1))
    return [tuple(c[order[bounds[p] : bounds[p + 1]]] for c in columns) for p in range(num_partitions)]
