"""The registered dedup stages: ``dedup.minhash_v1`` (near duplicates) and ``dedup.bloom_v1`` (exact
duplicates of documents, paragraphs or URLs). Both are global stages: ``build`` fans the work out over the
input parts (Ray tasks and actors, or in-process calls: same functions, same result) and returns the
doc_ids to drop; ``apply`` is a vectorized anti-join on doc_id per part."""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from gristmill.dedup import bloom as bloom_mod
from gristmill.dedup.components import (
    BucketCounts, bucket_edges, connected_components, edges_to_chunks, keep_first, node_partition, pair_partition,
    root_of, unique_pairs,
)
from gristmill.dedup.hashing import hash_ranges64, hash_strings64
from gristmill.dedup.lsh import band_keys, optimal_param
from gristmill.dedup.minhash import (
    ShingleSpec, concat_ragged, csr_take, empty_value, estimated_jaccard, exact_jaccard, signature_dtype,
    signatures, signatures_and_shingles, sorted_sets,
)
from gristmill.dedup.normalize import Normalization, normalize_batch
from gristmill.dedup.parallel import partition_of, split_by_partition
from gristmill.core.runtime import ActorHandle, Runtime
from gristmill.core.storage import BackgroundWrites, Location, written_known
from gristmill.stages.base import GlobalContext, GlobalStage, StageOutput, StageParams

READ_BATCH_ROWS = 8192  # rows read from a part at a time: bounds the memory of one task
BLOOM_KEY_HASH = "gristmill-block64-v1"


def _npy_header(array: np.ndarray) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    return header.getvalue()


def _save_npy(location: Location, array: np.ndarray, writes: BackgroundWrites) -> Location:
    """``np.save``'s bytes of ``array``. Locally streamed from the array's own memory (not copied into a buffer
    first); elsewhere uploaded in the background (``writes`` is joined before the file is handed on) and returned
    as a ``KnownFile``, which this process reads back from memory."""
    array = np.ascontiguousarray(array)
    data = pa.py_buffer(array.reshape(-1).view(np.uint8)) if array.nbytes else None
    if location.is_local:
        def write(sink):
            sink.write(_npy_header(array))
            if data is not None:
                sink.write(data)

        location.write_stream(write)
        return location
    whole = _npy_header(array) + (data.to_pybytes() if data is not None else b"")
    writes.write_bytes(location, whole)
    return written_known(location, whole)


def _load_npy(location: Location) -> np.ndarray:
    """Memory-mapped on a local disk (only the rows looked up are read), read whole elsewhere."""
    if location.is_local:
        return np.load(location.path, mmap_mode="r")
    return np.load(io.BytesIO(location.read_bytes()))


# Files of a step's state read or written at once on an object store, where each is a round trip or two.
STATE_IO_THREADS = 16


def _load_npys(locations: list[Location]) -> list[np.ndarray]:
    """``_load_npy`` of each; on an object store concurrently, so that the round trips overlap."""
    if len(locations) < 2 or all(loc.is_local for loc in locations):
        return [_load_npy(loc) for loc in locations]
    with ThreadPoolExecutor(min(STATE_IO_THREADS, len(locations))) as pool:
        return list(pool.map(_load_npy, locations))


# Arrays are built from their buffers: ``pa.array`` imports pandas on its first call (pyarrow 26), about 0.2 CPU s
# of a process that has no other use for it.
_NUMPY_DTYPE = {pa.uint64(): np.uint64, pa.int64(): np.int64, pa.float64(): np.float64}


def _validity(valid: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _numbers(values: np.ndarray, type: pa.DataType, nulls: np.ndarray | None = None) -> pa.Array:
    """A numeric Arrow array of ``values`` (null where ``nulls``)."""
    data = np.ascontiguousarray(values, dtype=_NUMPY_DTYPE[type])
    has_nulls = nulls is not None and bool(nulls.any())
    validity = _validity(~nulls) if has_nulls else None
    return pa.Array.from_buffers(type, len(data), [validity, pa.py_buffer(data)],
                                 null_count=int(nulls.sum()) if has_nulls else 0)


def _reject_where(mask: np.ndarray, reason: str) -> pa.Array | None:
    """``reason`` where ``mask``, else null."""
    if not mask.any():
        return None
    value = reason.encode()
    offsets = np.zeros(len(mask) + 1, dtype=np.int32)
    np.cumsum(mask * len(value), out=offsets[1:])
    return pa.StringArray.from_buffers(len(mask), pa.py_buffer(offsets), pa.py_buffer(value * int(mask.sum())),
                                       _validity(mask), null_count=int((~mask).sum()))


def _isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if len(sorted_set) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    idx = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[idx] == values


def uint64_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An integer column without nulls as a uint64 numpy array, read from its data buffer: pyarrow's
    ``to_numpy`` imports pandas on its first call (pyarrow 26)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.uint64())
    if column.null_count:
        raise ValueError(f"integer column of {len(column)} rows has {column.null_count} nulls")
    column = column.cast(pa.uint64())
    if len(column) == 0:
        return np.zeros(0, dtype=np.uint64)
    return np.frombuffer(column.buffers()[1], dtype=np.uint64, count=len(column), offset=column.offset * 8)


def _doc_ids(table: pa.Table | pa.RecordBatch) -> np.ndarray:
    return uint64_values(table.column("doc_id"))


# ==== MinHash ================================================================================================


class MinHashParams(StageParams):
    text_column: str = "text"
    ngram: int = Field(5, ge=1, le=64, description="tokens per shingle")
    unit: Literal["word", "char"] = "word"
    normalization: Normalization = Normalization()
    num_perm: int = Field(128, ge=2, le=4096)
    seed: int = Field(1, ge=0, lt=2**32, description="permutation seed, as datasketch.MinHash(seed=...)")
    scheme: Literal["affine32", "legacy"] = "affine32"
    threshold: float = Field(0.8, gt=0.0, lt=1.0, description="target Jaccard similarity")
    bands: Optional[int] = Field(None, ge=1)
    rows: Optional[int] = Field(None, ge=1)
    false_positive_weight: Optional[float] = Field(
        None, ge=0.0,
        description="weight of LSH false positives when choosing bands x rows; default 0.1 when verifying "
        "(verification drops them: they cost only its time), else 0.5 (datasketch's)",
    )
    false_negative_weight: Optional[float] = Field(
        None, ge=0.0, description="weight of LSH false negatives; default 0.9 when verifying, else 0.5"
    )
    verify: bool = Field(True, description="keep only candidate pairs whose Jaccard >= threshold")
    verify_with: Literal["signatures", "shingles"] = Field(
        "shingles",
        description="signatures: the Jaccard estimated from the MinHash signatures (share of equal slots); "
        "shingles: the exact Jaccard of the documents' shingle-hash sets (stored per part, 4 bytes per "
        "shingle): no estimation error around the threshold",
    )
    partitions: int = Field(4, ge=1, le=4096, description="shuffle partitions of band keys and edges")
    memory_staging_bytes: int = Field(
        64 << 20, ge=0,
        description="exact verification: the parts' shingle hashes, and then the candidates' sets, up to this "
        "size in all (an equal share per part) pass between the build's tasks in memory, through the runtime, "
        "instead of through state files; 0: always files",
    )
    max_bucket_size: int = Field(
        256, ge=2,
        description="a bucket with more documents pairs each of them only with its max_bucket_size smallest "
        "doc_ids (at most max_bucket_size pairs per document); counted as oversized_buckets and "
        "candidate_pairs_skipped",
    )

    @model_validator(mode="after")
    def _check(self):
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither (then they follow from threshold)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        if sum(self.banding_weights()) <= 0:
            raise ValueError("false_positive_weight + false_negative_weight must be positive")
        return self

    def banding(self) -> tuple[int, int]:
        if self.bands is not None:
            return self.bands, self.rows
        return optimal_param(self.threshold, self.num_perm, *self.banding_weights())

    def banding_weights(self) -> tuple[float, float]:
        """(false positive, false negative) weights: a verified candidate below the threshold is dropped by
        verification, a missed pair is lost for good, so with verification the banding favours recall."""
        fp_default, fn_default = (0.1, 0.9) if self.verify else (0.5, 0.5)
        fp = fp_default if self.false_positive_weight is None else self.false_positive_weight
        fn = fn_default if self.false_negative_weight is None else self.false_negative_weight
        return fp, fn

    def shingles(self) -> ShingleSpec:
        return ShingleSpec(ngram=self.ngram, unit=self.unit, normalization=self.normalization)


def _sign_part(path: Location, params: MinHashParams, banding: tuple[int, int], sig_prefix: Location | None,
               shingle_prefix: Location | None, num_partitions: int, part_index: int, memory_bytes: int = 0):
    """Signatures and band keys of one part; (key, doc_id, part index) rows split by key partition, then the
    part's shingle hashes, then stats. The signatures are kept (``sig_prefix``) only when verification compares
    them; the shingle hashes of every document only when verification compares shingle sets, until the
    candidates' sets are taken from them (``_shingle_candidates``): returned as arrays when they take at most
    ``memory_bytes``, else written under ``shingle_prefix`` and returned as those files."""
    bands, rows = banding
    file = path.parquet_file()
    doc_chunks, sig_chunks, key_chunks, keyed_docs, shingle_chunks, all_docs = [], [], [], [], [], []
    n_docs = n_bytes = n_empty = 0
    for batch in file.iter_batches(batch_size=READ_BATCH_ROWS, columns=["doc_id", params.text_column]):
        docs = _doc_ids(batch)
        text = batch.column(params.text_column)
        if shingle_prefix is None:
            sig = signatures(text, params.shingles(), params.num_perm, params.seed, params.scheme)
        else:
            sig, sh_off, hashes = signatures_and_shingles(text, params.shingles(), params.num_perm, params.seed,
                                                          params.scheme)
            shingle_chunks.append((sh_off, hashes))
            all_docs.append(docs)
        n_docs += len(docs)
        n_bytes += pc.sum(pc.binary_length(text)).as_py() or 0
        # A document without shingles has the empty signature: it would collide with every other empty one.
        has = (sig != empty_value(params.scheme)).any(axis=1)
        n_empty += int((~has).sum())
        keys = band_keys(sig[has], bands, rows)
        key_chunks.append(keys.ravel())
        keyed_docs.append(np.repeat(docs[has], bands))
        if sig_prefix is not None:
            doc_chunks.append(docs[has])
            sig_chunks.append(sig[has])
    keys = np.concatenate(key_chunks) if key_chunks else np.zeros(0, np.uint64)
    kdocs = np.concatenate(keyed_docs) if keyed_docs else np.zeros(0, np.uint64)
    kparts = np.full(len(kdocs), part_index, dtype=np.int32)
    sig_files = None
    if sig_prefix is not None:
        all_docs = np.concatenate(doc_chunks) if doc_chunks else np.zeros(0, np.uint64)
        all_sig = np.concatenate(sig_chunks) if sig_chunks else np.zeros((0, params.num_perm), np.uint32)
        order = np.argsort(all_docs, kind="stable")
        with BackgroundWrites() as writes:
            sig_files = (_save_npy(sig_prefix.with_name(sig_prefix.name + ".docs.npy"), all_docs[order], writes),
                         _save_npy(sig_prefix.with_name(sig_prefix.name + ".sig.npy"), all_sig[order], writes))
    shingles = shingle_files = None
    if shingle_prefix is not None:
        shingles = (np.concatenate(all_docs) if all_docs else np.zeros(0, np.uint64), *concat_ragged(shingle_chunks))
        if not _held(shingles, memory_bytes):
            shingles = shingle_files = _save_npys(_part_shingle_files(shingle_prefix), shingles)
    chunks = split_by_partition(partition_of(keys, num_partitions), num_partitions, keys, kdocs, kparts)
    stats = {"docs": n_docs, "bytes": int(n_bytes), "docs_without_shingles": n_empty, "sig_files": sig_files,
             "shingle_files": shingle_files}
    return (*chunks, shingles, stats)


def _held(arrays: tuple[np.ndarray, ...], memory_bytes: int) -> bool:
    """Whether ``arrays`` are small enough to pass to the next task as a task result rather than as files."""
    return memory_bytes > 0 and sum(a.nbytes for a in arrays) <= memory_bytes  # 0: always files


def _save_npys(locations: tuple[Location, ...], arrays: tuple[np.ndarray, ...]) -> tuple[Location, ...]:
    with BackgroundWrites() as writes:
        return tuple(_save_npy(location, array, writes) for location, array in zip(locations, arrays))


def _arrays(source: tuple) -> list[np.ndarray]:
    """A task's arrays, handed over as they are (held) or as the files holding them."""
    if all(isinstance(item, np.ndarray) for item in source):
        return list(source)
    return _load_npys(list(source))


def _part_shingle_files(prefix: Location) -> tuple[Location, Location, Location]:
    """A part's (doc_ids in file order, shingle offsets, shingle hashes) files."""
    return tuple(prefix.with_name(prefix.name + suffix) for suffix in (".part_docs.npy", ".part_off.npy",
                                                                       ".part_hashes.npy"))


def _shingle_candidates(part_shingles: tuple, part_index: int, prefix: Location, memory_bytes: int, *chunks):
    """The shingle sets (sorted, distinct) of this part's candidate documents, those in a candidate pair, taken
    from the shingle hashes ``_sign_part`` kept of every document of the part (``part_shingles``: the arrays,
    or their files, which the build deletes once all parts are done): the state holds no shingles of the other
    documents. ``chunks``: (doc_id, part index) rows of candidates. Returns (the files (doc_ids, set offsets,
    set values), or None where the sets are held, and the doc_ids, so that a verify task looks only in the
    parts holding its documents; or None without candidates) and the held (doc_ids, set offsets, set values):
    those up to ``memory_bytes`` are handed to the verify tasks as this task's result, not written."""
    docs = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, np.uint64)
    parts = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.int64)
    wanted = np.unique(docs[parts == part_index])
    if not len(wanted):
        return None, None
    part_docs, part_off, part_hashes = _arrays(part_shingles)
    order = np.argsort(part_docs, kind="stable")
    rows = order[np.searchsorted(part_docs[order], wanted)]  # every candidate is a document of this part
    arrays = (wanted, *sorted_sets(*csr_take(part_off, part_hashes, rows)))
    if _held(arrays, memory_bytes):
        return (None, wanted), arrays
    names = tuple(prefix.with_name(prefix.name + suffix) for suffix in (".docs.npy", ".set_off.npy", ".sets.npy"))
    return (_save_npys(names, arrays), wanted), None


def lookup_shingle_sets(sig_files, docs: np.ndarray, held=()) -> tuple[np.ndarray, np.ndarray]:
    """The shingle sets of ``docs`` (sorted, every one present) as one ragged array of sorted distinct
    hashes, from the per-part sets and doc_ids of ``_shingle_candidates``: each part's (files, doc_ids), or
    (index into ``held``, doc_ids) where its sets were handed over as arrays. Only the sets of the parts holding
    some of ``docs`` are used; their files are read together."""
    hits = []
    for source, part_docs in sig_files:
        if len(part_docs) == 0:
            continue
        idx = np.minimum(np.searchsorted(part_docs, docs), len(part_docs) - 1)
        hit = np.flatnonzero(part_docs[idx] == docs)
        if len(hit):
            hits.append((source, hit, idx[hit]))
    files = [f for source, _, _ in hits if not isinstance(source, int) for f in source[1:]]
    loaded = iter(_load_npys(files))
    pieces = []
    for source, hit, rows in hits:
        set_off, values = held[source][1:] if isinstance(source, int) else (next(loaded), next(loaded))
        off, values = csr_take(set_off, values, rows)
        pieces.append((hit, off, values))
    found = np.concatenate([h for h, _, _ in pieces]) if pieces else np.zeros(0, np.int64)
    if len(found) != len(docs):
        raise RuntimeError(f"shingle sets of {len(docs) - len(found)} candidate documents are missing from "
                           f"{[source for source, _ in sig_files]}")
    off, values = concat_ragged([(o, v) for _, o, v in pieces])
    return csr_take(off, values, np.argsort(found))


def lookup_signatures(sig_files: list[tuple[Location, ...]], docs: np.ndarray, num_perm: int, dtype) -> np.ndarray:
    """Signature rows of ``docs`` from the per-part files (memory-mapped; every doc must be present)."""
    out = np.zeros((len(docs), num_perm), dtype=dtype)
    found = np.zeros(len(docs), dtype=bool)
    # The doc_ids of every part read together; each part's signatures (the large files) one at a time.
    for (_, sig_path, *_), part_docs in zip(sig_files, _load_npys([files[0] for files in sig_files])):
        if len(part_docs) == 0:
            continue
        idx = np.minimum(np.searchsorted(part_docs, docs), len(part_docs) - 1)
        hit = part_docs[idx] == docs
        if hit.any():
            sig = _load_npy(sig_path)
            out[hit] = sig[idx[hit]]
            found |= hit
    if not found.all():
        raise RuntimeError(f"signatures of {int((~found).sum())} candidate documents are missing from {sig_files}")
    return out


VERIFY_CHUNK_PAIRS = 1 << 16  # pairs compared at a time: bounds the gathered signature rows of a task


def pair_similarity(sig_files, a: np.ndarray, b: np.ndarray, params: MinHashParams, held=()) -> np.ndarray:
    """Jaccard of every pair (a[i], b[i]), exact over the shingle sets or estimated from the signatures:
    each document's set or signature is looked up once, then the pairs are compared (a chunk at a time)."""
    docs = np.unique(np.concatenate([a, b]))
    ia, ib = np.searchsorted(docs, a), np.searchsorted(docs, b)
    if params.verify_with == "shingles":
        return exact_jaccard(*lookup_shingle_sets(sig_files, docs, held), ia, ib)
    sig = lookup_signatures(sig_files, docs, params.num_perm, signature_dtype(params.scheme))
    sim = np.empty(len(a), dtype=np.float64)
    for lo in range(0, len(a), VERIFY_CHUNK_PAIRS):
        hi = lo + VERIFY_CHUNK_PAIRS
        sim[lo:hi] = estimated_jaccard(sig[ia[lo:hi]], sig[ib[lo:hi]])
    return sim


def _bucket_task(params: MinHashParams, num_partitions: int, *chunks):
    """Group one partition of band keys into buckets -> every pair within a bucket (capped) -> pairs split
    by the partition of their smaller document, where equal pairs of different buckets meet; and the
    documents in those pairs as (doc_id, part index) rows split by part index modulo the partitions."""
    keys = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, np.uint64)
    docs = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.uint64)
    parts = np.concatenate([c[2] for c in chunks]) if chunks else np.zeros(0, np.int64)
    a, b, counts = bucket_edges(keys, docs, params.max_bucket_size)
    known, first = np.unique(docs, return_index=True)
    candidates = np.unique(np.concatenate([a, b]))
    candidate_parts = parts[first][np.searchsorted(known, candidates)]
    return (*split_by_partition(pair_partition(a, num_partitions), num_partitions, a, b),
            *split_by_partition(candidate_parts % num_partitions, num_partitions, candidates, candidate_parts),
            counts)


def _verify_task(params: MinHashParams, sig_files, num_partitions: int, num_held: int, *held_and_chunks):
    """The distinct candidate pairs of one partition, verified (Jaccard >= threshold) -> the
    components' adjacency chunks, the verified edges (a, b, similarity) and the pair counts. The first
    ``num_held`` of ``held_and_chunks`` are the candidates' sets handed over as arrays (top-level arguments, so
    that the runtime resolves them), the others the partition's pair chunks."""
    held, chunks = held_and_chunks[:num_held], held_and_chunks[num_held:]
    a, b = unique_pairs(*_concat_pairs(chunks))
    candidates = len(a)
    sim = np.full(len(a), np.nan)
    if params.verify and len(a):
        sim = pair_similarity(sig_files, a, b, params, held)
        keep = sim >= params.threshold
        a, b, sim = a[keep], b[keep], sim[keep]
    counts = {"candidate_pairs": candidates, "verified_pairs": len(a)}
    return (*edges_to_chunks(a, b, num_partitions), (a, b, sim), counts)


def _concat_pairs(chunks):
    if not chunks:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    return (np.concatenate([c[0] for c in chunks]).astype(np.uint64),
            np.concatenate([c[1] for c in chunks]).astype(np.uint64))


def _membership_task(num_partitions: int, rows):
    """One partition's component rows (member, root, size), split by the partition of the member (and the
    number of rows: a last value, so that one partition still gives a list of handles)."""
    member, root, _ = rows
    return (*split_by_partition(node_partition(member, num_partitions), num_partitions, member, root), len(member))


def _route_task(num_partitions: int, edges, *membership):
    """Verified edges (held by the partition of their smaller end) -> split by the partition of their
    component's root, where the component's documents are decided together."""
    a, b, sim = edges
    member, root = _concat_pairs(membership)
    edge_root = root_of(member, root, a) if len(a) else np.zeros(0, np.uint64)
    return (*split_by_partition(node_partition(edge_root, num_partitions), num_partitions, a, b, sim), len(a))


def _write_clusters(path: Location, rows, *edge_chunks):
    """Decide one partition's components (``keep_first``), write each member's cluster (doc_id, cluster_id:
    the kept document it duplicates or itself, cluster_size, jaccard: the verified similarity to cluster_id,
    component_id, component_size); return its removed documents, cluster sizes and component sizes."""
    member, component, component_size = rows
    a = np.concatenate([c[0] for c in edge_chunks]) if edge_chunks else np.zeros(0, np.uint64)
    b = np.concatenate([c[1] for c in edge_chunks]) if edge_chunks else np.zeros(0, np.uint64)
    sim = np.concatenate([c[2] for c in edge_chunks]) if edge_chunks else np.zeros(0)
    nodes, removed, cluster, similarity = keep_first(member, a, b, sim)
    order = np.argsort(member, kind="stable")
    component, component_size = component[order], component_size[order]  # aligned with the sorted nodes
    ids, inverse, counts = np.unique(cluster, return_inverse=True, return_counts=True)
    table = pa.table(
        {"doc_id": _numbers(nodes, pa.uint64()), "cluster_id": _numbers(cluster, pa.uint64()),
         "cluster_size": _numbers(counts[inverse], pa.int64()),
         "jaccard": _numbers(similarity, pa.float64(), nulls=np.isnan(similarity)),
         "component_id": _numbers(component, pa.uint64()), "component_size": _numbers(component_size, pa.int64())}
    ).sort_by([("cluster_id", "ascending"), ("doc_id", "ascending")])
    path.write_parquet(table)
    return np.sort(nodes[removed]), counts, component_size[nodes == component]


class MinHashDedup(GlobalStage):
    """Near-duplicate removal: MinHash-LSH candidates (every pair of documents sharing a band bucket), each
    verified by its Jaccard similarity (exact over the documents' shingle sets by default, or estimated from
    the signatures), connected components of the verified pairs, then within each
    component the documents in doc_id order, a document removed iff it nearly duplicates an earlier kept one
    (``components.keep_first``). The statistics and the output do not depend on the partitioning.
    Writes ``RUN_DIR/dedup/NN-minhash/`` (clusters Parquet, signatures when verifying); its statistics go to
    ``ctx.stats``."""

    name = "dedup.minhash_v1"
    Params = MinHashParams
    REASON = "near_duplicate"

    def build(self, ctx: GlobalContext) -> np.ndarray:
        p: MinHashParams = self.params
        runner = ctx.runtime
        bands, rows = p.banding()
        P = p.partitions
        out_dir = ctx.state
        parts = sorted(ctx.input_parts, key=lambda loc: loc.path)
        compare_signatures = p.verify and p.verify_with == "signatures"
        compare_shingles = p.verify and p.verify_with == "shingles"
        # Each part's share of the state held in memory: all of it together stays within the threshold.
        memory_bytes = p.memory_staging_bytes // max(len(parts), 1)
        signed = [
            runner.submit(
                _sign_part, path, p, (bands, rows),
                out_dir / "signatures" / f"part-{i:06d}" if compare_signatures else None,
                out_dir / "shingle_hashes" / f"part-{i:06d}" if compare_shingles else None, P, i, memory_bytes,
                num_returns=P + 2,
            )
            for i, path in enumerate(parts)
        ]
        part_stats = runner.get([s[P + 1] for s in signed])
        buckets = [
            runner.submit(_bucket_task, p, P, *[s[q] for s in signed], num_returns=2 * P + 1)
            for q in range(P)
        ]
        bucket_counts = sum(runner.get([b[2 * P] for b in buckets]), BucketCounts())
        held = []
        if compare_signatures:
            sig_files = [s["sig_files"] for s in part_stats if s["sig_files"]]
        elif compare_shingles:
            shingled = [
                runner.submit(_shingle_candidates, signed[i][P], i, out_dir / "shingles" / f"part-{i:06d}",
                              memory_bytes, *[b[P + i % P] for b in buckets], num_returns=2)
                for i in range(len(parts))
            ]
            sig_files = self._candidate_sets(runner.get([s[0] for s in shingled]), [s[1] for s in shingled], held)
            if any(s["shingle_files"] for s in part_stats):
                # Every part's shingle hashes at once: file by file would cost two requests each on an object store.
                (out_dir / "shingle_hashes").delete_tree()
        else:
            sig_files = []
        verified = [
            runner.submit(_verify_task, p, sig_files, P, len(held), *held, *[b[q] for b in buckets],
                          num_returns=P + 2)
            for q in range(P)
        ]
        pair_counts = runner.get([v[P + 1] for v in verified])
        components, rounds = connected_components(runner, [v[:P] for v in verified], P)
        membership = [runner.submit(_membership_task, P, c, num_returns=P + 1) for c in components]
        routed = [
            runner.submit(_route_task, P, v[P], *[m[q] for m in membership], num_returns=P + 1)
            for q, v in enumerate(verified)
        ]
        written = runner.get([
            runner.submit(_write_clusters, out_dir / "clusters" / f"part-{q:04d}.parquet", c, *[r[q] for r in routed])
            for q, c in enumerate(components)
        ])
        drop = np.sort(np.concatenate([w[0] for w in written])) if written else np.zeros(0, np.uint64)
        sizes = np.concatenate([w[1] for w in written]) if written else np.zeros(0, np.int64)
        component_sizes = np.concatenate([w[2] for w in written]) if written else np.zeros(0, np.int64)
        sizes = sizes[sizes > 1]  # clusters: a kept document with the documents removed as its near duplicates
        docs_in = sum(s["docs"] for s in part_stats)
        stats = ctx.stats
        for name, n in (("docs_in", docs_in), ("docs_out", docs_in - len(drop)), ("near_duplicates", len(drop)),
                        ("bytes_in", sum(s["bytes"] for s in part_stats)),
                        ("docs_without_shingles", sum(s["docs_without_shingles"] for s in part_stats)),
                        ("clusters", len(sizes)), ("components", len(component_sizes)),
                        ("buckets", bucket_counts.buckets), ("oversized_buckets", bucket_counts.oversized_buckets),
                        ("candidate_pairs_skipped", bucket_counts.pairs_skipped),
                        ("candidate_pairs", sum(c["candidate_pairs"] for c in pair_counts)),
                        ("verified_pairs", sum(c["verified_pairs"] for c in pair_counts))):
            stats.count(name, n)
        stats.histogram("cluster_size", dict(enumerate(np.bincount(sizes))))
        stats.histogram("component_size", dict(enumerate(np.bincount(component_sizes))))
        for name, value in (("largest_cluster", sizes.max() if len(sizes) else 0),
                            ("largest_component", component_sizes.max() if len(component_sizes) else 0),
                            ("components_rounds", rounds), ("bands", bands), ("rows", rows), ("partitions", P)):
            stats.figure(name, value)
        return drop

    @staticmethod
    def _candidate_sets(found: list, held_handles: list, held: list) -> list:
        """Each part with candidates as (files, doc_ids), or (index into ``held``, doc_ids) where its sets are
        held: their task result's handle is appended to ``held``."""
        sig_files = []
        for entry, handle in zip(found, held_handles):
            if entry is None:
                continue
            files, wanted = entry
            if files is None:
                sig_files.append((len(held), wanted))
                held.append(handle)
            else:
                sig_files.append((files, wanted))
        return sig_files

    def apply(self, table: pa.Table, state: np.ndarray) -> StageOutput:
        return StageOutput(table, _reject_where(_isin_sorted(_doc_ids(table), state), self.REASON))


# ==== Bloom ==================================================================================================


class BloomParams(StageParams):
    granularity: Literal["document", "paragraph", "url"] = "document"
    text_column: str = "text"
    url_column: str = "url"
    normalization: Normalization = Normalization()
    capacity: Optional[int] = Field(None, ge=1, description="keys the filter is sized for; default: this run's")
    fp_rate: float = Field(0.001, gt=0.0, lt=0.5, description="target false-positive rate at capacity")
    partitions: int = Field(4, ge=1, le=4096, description="filter partitions (Ray actors), by key hash")
    load: Optional[str] = Field(None, description="directory of a saved filter to start from")
    read_only: bool = Field(False, description="only test against the loaded filter (decontamination)")
    save: bool = True
    paragraph_separator: str = Field("\n", min_length=1)
    min_remaining_fraction: float = Field(
        0.5, ge=0.0, le=1.0,
        description="paragraph mode: drop a document keeping less than this share of its characters",
    )
    reason: Optional[str] = None

    @model_validator(mode="after")
    def _check(self):
        if self.read_only and not self.load:
            raise ValueError("read_only needs load: PATH (a filter saved by an earlier run)")
        return self

    def reject_reason(self) -> str:
        if self.reason:
            return self.reason
        return {"document": "exact_duplicate", "paragraph": "duplicate_paragraphs", "url": "duplicate_url"}[
            self.granularity
        ]

    def key_spec(self) -> dict:
        """What a saved filter's keys mean; a filter loads only into a stage with the same spec."""
        return {"hash": BLOOM_KEY_HASH, "layout": bloom_mod.LAYOUT, "granularity": self.granularity,
                "normalization": self.normalization.model_dump(),
                "paragraph_separator": self.paragraph_separator if self.granularity == "paragraph" else None}


def _paragraphs(text: pa.Array, separator: str) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(paragraph strings, row index of each, index within its row)."""
    lists = pc.split_pattern(pc.fill_null(text, ""), separator)
    flat = lists.flatten()
    parent = pc.list_parent_indices(lists).to_numpy()
    offsets = np.asarray(lists.offsets)
    para_idx = np.arange(len(flat)) - (offsets[parent] - offsets[0])
    return flat, parent, para_idx.astype(np.int64)


def bloom_keys(table: pa.Table | pa.RecordBatch, params: BloomParams):
    """(key, doc_id, paragraph index) rows of a batch, in doc_id then paragraph order."""
    docs = _doc_ids(table)
    if params.granularity == "url":
        url = table.column(params.url_column)
        trimmed = pc.utf8_trim_whitespace(pc.fill_null(url, ""))
        present = pc.and_(pc.is_valid(url), pc.greater(pc.utf8_length(trimmed), 0)).to_numpy(zero_copy_only=False)
        keys = hash_strings64(trimmed)
        return keys[present], docs[present], np.zeros(int(present.sum()), np.int64)
    if params.granularity == "document":
        norm = normalize_batch(table.column(params.text_column), params.normalization)
        return hash_ranges64(norm.data, norm.offsets[:-1], norm.offsets[1:]), docs, np.zeros(len(docs), np.int64)
    text = table.column(params.text_column)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks() if text.num_chunks else pa.array([], pa.large_string())
    flat, parent, para_idx = _paragraphs(text, params.paragraph_separator)
    norm = normalize_batch(flat, params.normalization)
    nonempty = np.diff(norm.offsets) > 0  # blank paragraphs are no keys: they never count as repeats
    keys = hash_ranges64(norm.data, norm.offsets[:-1], norm.offsets[1:])
    return keys[nonempty], docs[parent][nonempty], para_idx[nonempty]


def _bloom_key_task(path: Location, params: BloomParams, num_partitions: int):
    columns = ["doc_id", params.url_column if params.granularity == "url" else params.text_column]
    file = path.parquet_file()
    out = [bloom_keys(b, params) for b in file.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns)]
    keys = np.concatenate([o[0] for o in out]) if out else np.zeros(0, np.uint64)
    docs = np.concatenate([o[1] for o in out]) if out else np.zeros(0, np.uint64)
    paras = np.concatenate([o[2] for o in out]) if out else np.zeros(0, np.int64)
    part = bloom_mod.partition_of_keys(keys, num_partitions)
    chunks = split_by_partition(part, num_partitions, keys, docs, paras)
    n_rows = file.metadata.num_rows
    info = {
        "docs": n_rows, "keys_per_partition": np.bincount(part, minlength=num_partitions).tolist(),
        "min_doc": int(docs.min()) if len(docs) else None, "max_doc": int(docs.max()) if len(docs) else None,
    }
    return (*chunks, info)


class BloomPartition:
    """One partition of a partitioned Bloom filter (a Ray actor on the Ray executor)."""

    def __init__(self, num_bits: int, num_hashes: int, load_path: Location | None, read_only: bool):
        if load_path:
            self.filter = bloom_mod.BloomFilter.load(load_path)
        else:
            self.filter = bloom_mod.BloomFilter(num_bits, num_hashes)
        self.read_only = read_only
        self.expected_false_positives = 0.0

    def process(self, *chunks):
        """First occurrences in (doc_id, paragraph) order over the chunks of one batch of parts; returns the
        (doc_id, paragraph) of the repeated keys."""
        keys = np.concatenate([c[0] for c in chunks]) if chunks else np.zeros(0, np.uint64)
        docs = np.concatenate([c[1] for c in chunks]) if chunks else np.zeros(0, np.uint64)
        paras = np.concatenate([c[2] for c in chunks]) if chunks else np.zeros(0, np.int64)
        order = np.lexsort((paras, docs))
        keys, docs, paras = keys[order], docs[order], paras[order]
        new = self.filter.first_occurrences(keys, read_only=self.read_only)
        self.expected_false_positives += self.filter.expected_false_positives(int(new.sum()), self.read_only)
        return docs[~new], paras[~new]

    def save(self, path: Location) -> dict:
        self.filter.save(path)
        return self.info()

    def info(self) -> dict:
        return {"bits": self.filter.num_bits, "hashes": self.filter.num_hashes, "inserted": self.filter.inserted,
                "fill_ratio": self.filter.fill_ratio(), "estimated_fp_rate": self.filter.estimated_fp_rate(),
                "expected_false_positives": self.expected_false_positives}


def _doc_batches(infos: list[dict]) -> list[list[int]]:
    """Parts grouped into batches processed in doc_id order; parts whose doc_id ranges overlap share a batch
    (the partition sorts a batch's rows by doc_id, so the first occurrence in doc_id order wins exactly)."""
    ranged = sorted((i for i, inf in enumerate(infos) if inf["min_doc"] is not None), key=lambda i: infos[i]["min_doc"])
    batches: list[list[int]] = []
    hi = None
    for i in ranged:
        if batches and infos[i]["min_doc"] <= hi:
            batches[-1].append(i)
            hi = max(hi, infos[i]["max_doc"])
        else:
            batches.append([i])
            hi = infos[i]["max_doc"]
    return batches


class BloomDedup(GlobalStage):
    """Exact dedup with a partitioned Bloom filter over a 64-bit hash of normalized text (document or
    paragraph) or of the URL; the first occurrence in doc_id order wins. Writes
    ``RUN_DIR/dedup/NN-bloom-GRANULARITY/`` (the saved filter); its statistics go to ``ctx.stats``."""

    name = "dedup.bloom_v1"
    Params = BloomParams

    def build(self, ctx: GlobalContext):
        p: BloomParams = self.params
        runner = ctx.runtime
        out_dir = ctx.state
        loaded_meta = self._check_loadable(p) if p.load else None
        P = loaded_meta["partitions"] if loaded_meta else p.partitions
        parts = sorted(ctx.input_parts, key=lambda loc: loc.path)
        keyed = [runner.submit(_bloom_key_task, path, p, P, num_returns=P + 1) for path in parts]
        infos = runner.get([k[P] for k in keyed])
        per_partition = np.sum([inf["keys_per_partition"] for inf in infos], axis=0) if infos else np.zeros(P, int)
        actors = [self._partition(runner, p, q, int(per_partition[q]), P) for q in range(P)]
        results = []
        for batch in _doc_batches(infos):
            for q in range(P):
                results.append(actors[q].call("process", *[keyed[i][q] for i in batch]))
        dups = runner.get(results)
        dup_docs = np.concatenate([d[0] for d in dups]) if dups else np.zeros(0, np.uint64)
        dup_paras = np.concatenate([d[1] for d in dups]) if dups else np.zeros(0, np.int64)
        if p.save and not p.read_only:
            filters = runner.get([
                a.call("save", bloom_mod.partition_path(out_dir, q)) for q, a in enumerate(actors)
            ])
            bloom_mod.meta_path(out_dir).write_json(dict(p.key_spec(), partitions=P, filters=filters))
        else:
            filters = runner.get([a.call("info") for a in actors])
        self._record_stats(ctx.stats, p, sum(inf["docs"] for inf in infos), int(per_partition.sum()), dup_docs,
                           filters, P)
        order = np.lexsort((dup_paras, dup_docs))
        if p.granularity == "paragraph":
            return dup_docs[order], dup_paras[order]
        return np.unique(dup_docs)

    @staticmethod
    def _record_stats(stats, p: BloomParams, docs_in: int, keys: int, dup_docs: np.ndarray, filters: list[dict],
                      partitions: int) -> None:
        with_repeats = len(np.unique(dup_docs))
        stats.count("docs_in", docs_in)
        stats.count("keys", keys)
        stats.count("repeated_keys", len(dup_docs))
        stats.count("documents_with_repeats", with_repeats)
        if p.granularity != "paragraph":
            stats.count("docs_out", docs_in - with_repeats)
        expected = sum(f["expected_false_positives"] for f in filters)
        # One key per document (or URL): each false positive is a unique document wrongly removed.
        unit = "paragraphs" if p.granularity == "paragraph" else "documents"
        stats.figure(f"expected_unique_{unit}_removed", expected)
        stats.figure("expected_false_positives", expected)
        stats.figure("estimated_fp_rate", max((f["estimated_fp_rate"] for f in filters), default=0.0))
        stats.figure("partitions", partitions)
        for q, f in enumerate(filters):  # each partition's filter: its size, fill and expected error
            for name in ("bits", "hashes", "inserted", "estimated_fp_rate", "expected_false_positives"):
                stats.figure(f"partition_{q}.{name}", f[name])

    @staticmethod
    def _check_loadable(p: BloomParams) -> dict:
        meta = bloom_mod.load_meta(p.load)
        spec = p.key_spec()
        for key, want in spec.items():
            if meta.get(key) != want:
                raise ValueError(f"{p.load}: saved filter has {key}={meta.get(key)!r}, this stage needs {want!r}")
        return meta

    @staticmethod
    def _partition(runtime: Runtime, p: BloomParams, q: int, keys: int, num_partitions: int) -> ActorHandle:
        load_path = bloom_mod.partition_path(p.load, q) if p.load else None
        capacity = math.ceil(p.capacity / num_partitions) if p.capacity else max(keys, 1)
        bits, hashes = bloom_mod.optimal_size(capacity, p.fp_rate)
        return runtime.actor(BloomPartition, bits, hashes, load_path, p.read_only)

    def apply(self, table: pa.Table, state) -> StageOutput:
        p: BloomParams = self.params
        if p.granularity != "paragraph":
            return StageOutput(table, _reject_where(_isin_sorted(_doc_ids(table), state), p.reject_reason()))
        return self._apply_paragraphs(table, *state)

    def _apply_paragraphs(self, table: pa.Table, dup_docs: np.ndarray, dup_paras: np.ndarray) -> StageOutput:
        """Drop the repeated paragraphs; reject a document left with too small a share of its characters."""
        p: BloomParams = self.params
        docs = _doc_ids(table)
        touched = _isin_sorted(docs, dup_docs)
        if len(table) == 0 or not touched.any():
            return StageOutput(table, None)
        text = table.column(p.text_column)
        text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
        flat, parent, para_idx = _paragraphs(text, p.paragraph_separator)
        # (doc, paragraph) membership: rank the doc among the repeated docs, then search rank*2^32 + paragraph.
        uniq = np.unique(dup_docs)
        rank = np.searchsorted(uniq, docs[parent])
        in_uniq = _isin_sorted(docs[parent], uniq)
        state_key = np.searchsorted(uniq, dup_docs).astype(np.uint64) << np.uint64(32) | dup_paras.astype(np.uint64)
        row_key = rank.astype(np.uint64) << np.uint64(32) | para_idx.astype(np.uint64)
        repeated = in_uniq & _isin_sorted(row_key, np.sort(state_key))
        length = pc.utf8_length(flat).to_numpy(zero_copy_only=False).astype(np.int64)
        total = np.bincount(parent, weights=length, minlength=len(table))
        kept = np.bincount(parent, weights=np.where(repeated, 0, length), minlength=len(table))
        share = np.divide(kept, total, out=np.ones(len(table)), where=total > 0)
        reject = touched & ((share < p.min_remaining_fraction) | (kept == 0))
        keep_para = ~repeated
        counts = np.bincount(parent[keep_para], minlength=len(table))
        offsets = np.zeros(len(table) + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        lists = pa.ListArray.from_arrays(pa.array(offsets), flat.filter(pa.array(keep_para)))
        joined = pc.binary_join(lists, pa.scalar(p.paragraph_separator, flat.type))
        # Kept documents lose their repeated paragraphs; rejected ones keep their text (for rejects/).
        new_text = pc.if_else(pa.array(touched & ~reject), joined.cast(text.type), text)
        idx = table.schema.get_field_index(p.text_column)
        table = table.set_column(idx, table.schema.field(idx), new_text)
        return StageOutput(table, _reject_where(reject, p.reject_reason()))
