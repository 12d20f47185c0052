"""Candidate pairs from LSH buckets and connected components, partitioned so no process sees all edges.

* ``bucket_edges``: one partition of (band key, doc_id) rows; sorting groups equal keys, and every pair of
  documents within a bucket becomes a candidate edge (a stated cap bounds huge buckets).
* ``large_star`` / ``small_star``: the two steps of the Large-Star/Small-Star algorithm (Kiveris et al.,
  "Connected Components in MapReduce and Beyond", SoCC 2014). Each step takes the adjacency rows
  (node, neighbour) of the nodes of one partition and emits edges; alternating the two converges in
  O(log^2 n) rounds to stars in which every node is linked to the smallest doc_id of its component.
* ``cluster_rows``: after convergence, each component's root (its smallest doc_id) sees all its members.
* ``keep_first``: within each component, which documents are removed, and the kept document each one
  nearly duplicates (see its docstring for the rule).

Everything is set-based (sort, unique, reduceat), so the result does not depend on partitioning or order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gristmill.dedup.hashing import fmix64, kernels
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


@dataclasses.dataclass(frozen=True)
class BucketCounts:
    """What ``bucket_edges`` saw: buckets (band keys held by 2+ documents), the buckets over the size cap and
    the pairs of those buckets left unverified because of it."""

    buckets: int = 0
    oversized_buckets: int = 0
    pairs_skipped: int = 0

    def __add__(self, other: "BucketCounts") -> "BucketCounts":
        return BucketCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


def bucket_edges(keys: np.ndarray, docs: np.ndarray, max_bucket_size: int) -> tuple[np.ndarray, np.ndarray, BucketCounts]:
    """Every pair (a < b) of documents sharing a band key, distinct and sorted by (a, b).

    A bucket of s documents holds s(s - 1)/2 pairs. Above ``max_bucket_size`` documents only the pairs among
    its ``max_bucket_size`` smallest doc_ids and those of every further document with each of them are
    produced (``max_bucket_size * s`` pairs at most, linear in s): a flood of copies still has each copy
    paired with the smallest, kept one; the skipped pairs are counted. Vectorized: the document at rank j of
    its bucket (doc_id order) is paired with the ranks below min(j, cap) through one repeat and one ramp."""
    if len(keys) == 0:
        return EMPTY, EMPTY, BucketCounts()
    shared = repeated(keys)  # most keys are held by one document: sort only the others
    keys, docs = unique_pairs(keys[shared], docs[shared])  # sorted by key, then doc_id
    new_key = np.r_[True, keys[1:] != keys[:-1]]
    starts = np.flatnonzero(new_key)
    sizes = np.diff(np.r_[starts, len(keys)])
    rank = np.arange(len(keys)) - np.repeat(starts, sizes)
    partners = np.minimum(rank, max_bucket_size)
    row = np.repeat(np.arange(len(keys)), partners)
    ramp = np.arange(len(row)) - np.repeat(np.cumsum(partners) - partners, partners)
    first = np.repeat(np.repeat(starts, sizes), partners)
    a, b = unique_pairs(docs[first + ramp], docs[row])
    over = sizes > max_bucket_size
    cap = np.minimum(sizes[over], max_bucket_size).astype(np.int64)
    skipped = sizes[over] * (sizes[over] - 1) // 2 - (cap * (cap - 1) // 2 + cap * (sizes[over] - cap))
    return a, b, BucketCounts(int((sizes > 1).sum()), int(over.sum()), int(skipped.sum()))


def repeated(keys: np.ndarray) -> np.ndarray:
    """Where each uint64 key (a hash) occurs more than once in ``keys`` (compiled, one pass, no sort)."""
    table = np.zeros(1 << max(4, (2 * len(keys)).bit_length()), dtype=np.int64)
    shared = np.zeros(len(keys), dtype=bool)
    kernels().mark_repeated(np.asarray(keys, np.uint64), table, shared)
    return shared


def pair_partition(a: np.ndarray, num_partitions: int) -> np.ndarray:
    """Pairs go to the partition of their smaller document: equal pairs from different buckets meet there."""
    return node_partition(a, num_partitions)


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


# --- which documents of a component are removed ----------------------------------------------------------


def keep_first(nodes: np.ndarray, a: np.ndarray, b: np.ndarray, sim: np.ndarray):
    """The removal rule over verified edges (a < b): documents are taken in doc_id order, and a document is
    removed iff it has an edge to an earlier document that is kept; it is then assigned to the smallest
    such kept document (its cluster). Equivalently, the kept documents are the greedy (lexicographically
    first) maximal independent set of the edge graph in doc_id order.

    Why this rule: every removed document is a verified near duplicate (Jaccard >= threshold) of a kept
    one, so no document is lost through a chain of removed documents to a kept one it does not resemble
    (connected components alone remove all but one document of a chain A~B~C even when A and C differ); a
    document is kept whenever none of its near duplicates was kept before it, so no cluster loses all its
    members. The smallest doc_id of every component is kept, as before. A document's fate depends only on
    earlier documents of its own connected component, so each component is decided by the one task holding
    it (components are independent and doc_ids global): the result is that of one sequential pass over all
    documents, whatever the partitioning or the number of workers.

    ``nodes`` are the distinct members of the components the edges belong to. Returns per node (sorted):
    removed, the kept document it duplicates (itself when kept) and the similarity of that edge (1.0 when
    kept). One compiled pass over the edges sorted by (b, a); no per-document Python loop."""
    nodes = np.unique(nodes.astype(np.uint64))
    ia, ib = np.searchsorted(nodes, a), np.searchsorted(nodes, b)
    order = np.lexsort((ia, ib))
    removed = np.zeros(len(nodes), dtype=bool)
    via = np.full(len(nodes), -1, dtype=np.int64)
    if len(order):
        kernels().keep_first_pass(ia[order], ib[order], removed, via)
    cluster = nodes.copy()
    similarity = np.ones(len(nodes), dtype=np.float64)
    cluster[removed] = nodes[ia[order][via[removed]]]
    similarity[removed] = np.asarray(sim, dtype=np.float64)[order][via[removed]]
    return nodes, removed, cluster, similarity


def root_of(members: np.ndarray, roots: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """The component root of each of ``nodes`` (every one must be among ``members``)."""
    order = np.argsort(members, kind="stable")
    idx = np.searchsorted(members[order], nodes)
    return roots[order][idx]
