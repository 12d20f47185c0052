"""Candidate pairs from LSH buckets and connected components, partitioned so no process sees all edges.

* ``bucket_edges``: one partition of (band key, doc_id) rows; sorting groups equal keys, and each bucket
  becomes a star of edges from its smallest doc_id to the others.
* ``large_star`` / ``small_star``: the two steps of the Large-Star/Small-Star algorithm (Kiveris et al.,
  "Connected Components in MapReduce and Beyond", SoCC 2014). Each step takes the adjacency rows
  (node, neighbour) of the nodes of one partition and emits edges; alternating the two converges in
  O(log^2 n) rounds to stars in which every node is linked to the smallest doc_id of its component.
* ``cluster_rows``: after convergence, each component's root (its smallest doc_id) sees all its members.

Everything is set-based (sort, unique, reduceat), so the result does not depend on partitioning or order.
"""

from __future__ import annotations

import numpy as np

from gristmill.dedup.hashing import fmix64
from gristmill.dedup.parallel import partition_of, split_by_partition

EMPTY = np.zeros(0, dtype=np.uint64)


def node_partition(nodes: np.ndarray, num_partitions: int) -> np.ndarray:
    return partition_of(fmix64(nodes.astype(np.uint64)), num_partitions)


def adjacency_chunks(src: np.ndarray, dst: np.ndarray, num_partitions: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Adjacency rows (node, neighbour) split by the partition of ``node``."""
    return split_by_partition(node_partition(src, num_partitions), num_partitions, src, dst)


def _concat(chunks) -> tuple[np.ndarray, np.ndarray]:
    if not chunks:
        return EMPTY, EMPTY
    a = np.concatenate([c[0] for c in chunks]).astype(np.uint64)
    b = np.concatenate([c[1] for c in chunks]).astype(np.uint64)
    return a, b


def unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (a, b) rows sorted by (a, b)."""
    if len(a) == 0:
        return EMPTY, EMPTY
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[keep], b[keep]


def fingerprint(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(count, order-free 64-bit sum) of a set of distinct rows: equal sets give equal fingerprints."""
    if len(a) == 0:
        return 0, 0
    mixed = fmix64(fmix64(a) ^ (b * np.uint64(0x9E3779B97F4A7C15)))
    return len(a), int(mixed.sum(dtype=np.uint64))


def bucket_edges(keys: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Star edges (smallest doc_id of a bucket -> each other member), distinct, sorted."""
    if len(keys) == 0:
        return EMPTY, EMPTY
    keys, docs = unique_pairs(keys, docs)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    first = np.repeat(docs[starts], sizes)  # docs are sorted within a key: the first is the smallest
    member = np.ones(len(keys), dtype=bool)
    member[starts] = False
    return unique_pairs(first[member], docs[member])


def _groups(nodes: np.ndarray, nbrs: np.ndarray):
    """Distinct sorted rows, group starts, per-row group index and per-group minimum neighbour."""
    nodes, nbrs = unique_pairs(nodes, nbrs)
    starts = np.flatnonzero(np.r_[True, nodes[1:] != nodes[:-1]]) if len(nodes) else np.zeros(0, np.int64)
    group = np.cumsum(np.r_[True, nodes[1:] != nodes[:-1]]) - 1 if len(nodes) else np.zeros(0, np.int64)
    min_nbr = nbrs[starts]  # rows are sorted by (node, neighbour)
    return nodes, nbrs, starts, group, min_nbr


def large_star(nodes: np.ndarray, nbrs: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """For every node u: m = min(u, neighbours); emit (v, m) for each neighbour v > u. Also returns the
    fingerprint of the input set (for the convergence test)."""
    nodes, nbrs, starts, group, min_nbr = _groups(nodes, nbrs)
    fp = fingerprint(nodes, nbrs)
    m = np.minimum(nodes[starts], min_nbr)[group]
    emit = nbrs > nodes
    return nbrs[emit], m[emit], fp


def small_star(nodes: np.ndarray, nbrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows hold only neighbours v <= u. For every node u: m = min(neighbours ∪ {u}); emit (v, m) for each
    v in neighbours ∪ {u}, v != m."""
    nodes, nbrs, starts, group, min_nbr = _groups(nodes, nbrs)
    m_group = np.minimum(nodes[starts], min_nbr)
    m = m_group[group]
    src = np.concatenate([nbrs, nodes[starts]])
    dst = np.concatenate([m, m_group])
    keep = src != dst
    return src[keep], dst[keep]


def large_star_rows(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges -> adjacency rows in both directions (self loops dropped)."""
    keep = src != dst
    src, dst = src[keep], dst[keep]
    return np.concatenate([src, dst]), np.concatenate([dst, src])


def small_star_rows(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges -> rows (larger end, smaller end)."""
    keep = src != dst
    src, dst = src[keep], dst[keep]
    return np.maximum(src, dst), np.minimum(src, dst)


def cluster_rows(nodes: np.ndarray, nbrs: np.ndarray):
    """At convergence (adjacency rows in both directions): for every component root (a node smaller than
    all its neighbours) the members (root included), their cluster id (= root) and the cluster size."""
    nodes, nbrs, starts, group, min_nbr = _groups(nodes, nbrs)
    roots = nodes[starts] < min_nbr
    sizes = np.diff(np.r_[starts, len(nodes)])
    root_rows = roots[group]
    member = np.concatenate([nodes[starts][roots], nbrs[root_rows]])
    cluster = np.concatenate([nodes[starts][roots], nodes[root_rows]])
    size = np.concatenate([sizes[roots] + 1, (sizes + 1)[group][root_rows]])
    order = np.lexsort((member, cluster))
    return member[order], cluster[order], size[order]


# --- the distributed driver (tasks are module-level functions so Ray can ship them) -----------------------


def _large_star_task(num_partitions: int, *chunks):
    src, dst, fp = large_star(*_concat(chunks))
    return (*adjacency_chunks(*small_star_rows(src, dst), num_partitions), fp)


def _small_star_task(num_partitions: int, *chunks):
    src, dst = small_star(*_concat(chunks))
    return (*adjacency_chunks(*large_star_rows(src, dst), num_partitions), None)


def _cluster_task(*chunks):
    return cluster_rows(*_concat(chunks))


def edges_to_chunks(src: np.ndarray, dst: np.ndarray, num_partitions: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Candidate edges -> the first round's input: adjacency rows in both directions, by node partition."""
    return adjacency_chunks(*large_star_rows(src.astype(np.uint64), dst.astype(np.uint64)), num_partitions)


class ComponentsDidNotConverge(RuntimeError):
    pass


def connected_components(runner, chunks: list[list], num_partitions: int, max_rounds: int = 200):
    """Connected components of the edges in ``chunks`` (one list of per-partition adjacency handles per
    producer). Returns one handle per partition of ``cluster_rows`` output, and the number of rounds."""
    prev = None
    for rounds in range(1, max_rounds + 1):
        outs = [
            runner.submit(_large_star_task, num_partitions, *[c[p] for c in chunks], num_returns=num_partitions + 1)
            for p in range(num_partitions)
        ]
        fps = runner.get([o[num_partitions] for o in outs])
        fp = (sum(f[0] for f in fps), sum(f[1] for f in fps) % (1 << 64))
        if fp == prev:  # a whole Large-Star + Small-Star cycle changed nothing: stars reached
            return [runner.submit(_cluster_task, *[c[p] for c in chunks]) for p in range(num_partitions)], rounds
        prev = fp
        mid = [o[:num_partitions] for o in outs]
        outs = [
            runner.submit(_small_star_task, num_partitions, *[c[p] for c in mid], num_returns=num_partitions + 1)
            for p in range(num_partitions)
        ]
        chunks = [o[:num_partitions] for o in outs]
    raise ComponentsDidNotConverge(f"connected components did not converge in {max_rounds} rounds")
