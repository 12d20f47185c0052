"""Partitioned Large-Star/Small-Star components agree with scipy's connected components."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components as scipy_components

from gristmill.dedup.components import bucket_edges, connected_components, edges_to_chunks
from gristmill.core.runtime import LocalRuntime


def components(src, dst, num_partitions, producers=1):
    """Split the edges over several producers, as the bucket tasks do, and collect the clusters."""
    chunks = [edges_to_chunks(s, d, num_partitions) for s, d in zip(np.array_split(src, producers), np.array_split(dst, producers))]
    handles, _ = connected_components(LocalRuntime(), chunks, num_partitions)
    member, cluster, size = (np.concatenate([h[i] for h in handles]) for i in range(3))
    return {int(m): (int(c), int(s)) for m, c, s in zip(member, cluster, size)}


def expected(ids, u, v):
    n = len(ids)
    labels = scipy_components(sp.coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n)), directed=False)[1]
    linked = np.unique(np.r_[u[u != v], v[u != v]])
    out = {}
    for label in np.unique(labels[linked]):
        members = [i for i in linked if labels[i] == label]
        for i in members:
            out[int(ids[i])] = (int(ids[min(members)]), len(members))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_random_graphs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    ids = np.unique(rng.integers(0, 2**64, n, dtype=np.uint64))  # the full uint64 range
    n = len(ids)
    m = int(rng.integers(1, 500))
    u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    assert components(ids[u], ids[v], int(rng.integers(1, 6)), producers=3) == expected(ids, u, v)


def test_long_chain_in_shuffled_order_and_partition_count_does_not_matter():
    rng = np.random.default_rng(1)
    ids = np.arange(1000, dtype=np.uint64) * 7 + 3
    order = rng.permutation(999)
    u, v = order, order + 1
    got = components(ids[u], ids[v], 4)
    assert got == expected(ids, u, v)
    assert set(c for c, _ in got.values()) == {3} and got[3] == (3, 1000)
    assert components(ids[u], ids[v], 1) == got


def test_bucket_edges_are_stars_from_the_smallest_doc():
    keys = np.array([5, 5, 5, 9, 9, 7], dtype=np.uint64)
    docs = np.array([30, 10, 20, 40, 10, 99], dtype=np.uint64)
    src, dst = bucket_edges(keys, docs)
    assert sorted(zip(src.tolist(), dst.tolist())) == [(10, 20), (10, 30), (10, 40)]
