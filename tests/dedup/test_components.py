"""Partitioned Large-Star/Small-Star components agree with scipy's connected components."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components as scipy_components

from gristmill.dedup.components import (
    BucketCounts, bucket_edges, connected_components, edges_to_chunks, keep_first, unique_pairs,
)
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


def test_bucket_edges_pair_every_two_documents_of_a_bucket():
    keys = np.array([5, 5, 5, 9, 9, 7, 5], dtype=np.uint64)
    docs = np.array([30, 10, 20, 40, 10, 99, 20], dtype=np.uint64)
    a, b, counts = bucket_edges(keys, docs, max_bucket_size=8)
    assert list(zip(a.tolist(), b.tolist())) == [(10, 20), (10, 30), (10, 40), (20, 30)]
    assert counts == BucketCounts(buckets=2, oversized_buckets=0, pairs_skipped=0)


def test_bucket_edges_cap_pairs_a_huge_bucket_with_its_smallest_documents_only():
    rng = np.random.default_rng(0)
    docs = rng.permutation(np.arange(100, 120, dtype=np.uint64))
    a, b, counts = bucket_edges(np.full(20, 3, dtype=np.uint64), docs, max_bucket_size=4)
    pairs = set(zip(a.tolist(), b.tolist()))
    head = range(100, 104)
    assert pairs == {(x, y) for x in head for y in range(x + 1, 120)}
    assert len(pairs) == 4 * 3 // 2 + 4 * 16
    assert counts == BucketCounts(buckets=1, oversized_buckets=1, pairs_skipped=20 * 19 // 2 - len(pairs))


@pytest.mark.parametrize("seed", range(6))
def test_bucket_edges_equal_every_pair_sharing_a_key(seed):
    # Keys from a small range collide in the low bits the buckets are found by, and repeat within a document.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    keys = rng.integers(0, int(rng.choice([3, 50, 2**64 - 1])), n, dtype=np.uint64) * np.uint64(1 << 20)
    docs = rng.integers(0, 400, n).astype(np.uint64)
    members: dict[int, set[int]] = {}
    for k, d in zip(keys.tolist(), docs.tolist()):
        members.setdefault(k, set()).add(d)
    pairs = {(x, y) for m in members.values() for x in m for y in m if x < y}
    a, b, counts = bucket_edges(keys, docs, max_bucket_size=10**6)
    assert list(zip(a.tolist(), b.tolist())) == sorted(pairs)
    assert counts.buckets == sum(len(m) > 1 for m in members.values())


def keep_first_reference(a, b):
    """The rule as one sequential pass over the documents in doc_id order."""
    kept, cluster = [], {}
    for doc in sorted(set(a) | set(b)):
        earlier_kept = sorted(x for x, y in zip(a, b) if y == doc and x in kept)
        if earlier_kept:
            cluster[doc] = earlier_kept[0]
        else:
            kept.append(doc)
            cluster[doc] = doc
    return cluster


@pytest.mark.parametrize("seed", range(8))
def test_keep_first_removes_only_neighbours_of_kept_documents(seed):
    rng = np.random.default_rng(seed)
    ids = np.unique(rng.integers(0, 2**64, 60, dtype=np.uint64))
    u, v = rng.integers(0, len(ids), 120), rng.integers(0, len(ids), 120)
    x, y = np.minimum(ids[u], ids[v]), np.maximum(ids[u], ids[v])
    x, y = unique_pairs(x[x != y], y[x != y])
    sim = rng.random(len(x))
    nodes, removed, cluster, similarity = keep_first(np.r_[x, y], x, y, sim)
    expected = keep_first_reference(x.tolist(), y.tolist())
    assert dict(zip(nodes.tolist(), cluster.tolist())) == expected
    assert removed.tolist() == [expected[n] != n for n in nodes.tolist()]
    edge_sim = {(int(p), int(q)): s for p, q, s in zip(x, y, sim)}
    for n, c, s in zip(nodes.tolist(), cluster.tolist(), similarity.tolist()):
        assert s == (1.0 if c == n else edge_sim[(c, n)])


def test_keep_first_breaks_a_chain_where_neighbours_two_apart_differ():
    chain = np.arange(10, 17, dtype=np.uint64)
    nodes, removed, cluster, _ = keep_first(chain, chain[:-1], chain[1:], np.ones(6))
    assert nodes[~removed].tolist() == [10, 12, 14, 16]
    assert cluster.tolist() == [10, 10, 12, 12, 14, 14, 16]
