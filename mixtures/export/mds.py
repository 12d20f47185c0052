"""MosaicML Streaming's MDS format (``index.json`` + ``shard.NNNNN.mds``), written without the library.

The layout is that of ``streaming.base.format.mds.MDSWriter`` (mosaicml-streaming 0.13), uncompressed and
without shard hashes:

- a sample is the uint32 sizes of its variable-size columns, then every column's bytes, columns in name order;
- a shard file is the sample count (uint32), the byte offset of each sample and of the end (uint32, counted
  from the start of the file), the writer's JSON config, then the samples;
- ``index.json`` lists the shards (``{"version": 2, "shards": [...]}``) and is written last.

Columns, one sample per packed row in manifest order: ``input_ids`` (``ndarray:int32:SEQ_LEN``), ``source``
(``str``), ``doc_ids`` (``ndarray:uint64``) and ``doc_offsets`` (``ndarray:int32``), the row's documents and
where each starts. The per-sample loop runs over rows, not tokens: each row is a handful of ``tobytes`` calls.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from gristmill.core.storage import Location
from gristmill.mixtures.export.rows import PackedRun, shard_batches, token_matrix

INDEX_FILE = "index.json"
DEFAULT_SIZE_LIMIT = 1 << 26  # MDSWriter's default shard size


def columns(seq_len: int) -> dict[str, str]:
    return {"doc_ids": "ndarray:uint64", "doc_offsets": "ndarray:int32", "input_ids": f"ndarray:int32:{seq_len}",
            "source": "str"}


def _ndarray_dynamic(values: np.ndarray) -> bytes:
    """MDS ``ndarray`` with a fixed dtype and a dynamic 1-d shape: (ndim << 2 | shape dtype code), shape, values."""
    n = len(values)
    for code, shape_dtype in enumerate(("<u1", "<u2", "<u4", "<u8")):
        if n < 1 << (8 << code):
            return bytes([(1 << 2) | code]) + np.array([n], shape_dtype).tobytes() + values.tobytes()
    raise ValueError(f"an array of {n} elements is too long for MDS")


class _ShardWriter:
    """Samples gathered into shard files of at most ``size_limit`` bytes, as MDSWriter cuts them."""

    def __init__(self, out: Location, seq_len: int, size_limit: int):
        self.out = out
        self.size_limit = size_limit
        names = sorted(columns(seq_len))
        encodings = [columns(seq_len)[n] for n in names]
        sizes = [seq_len * 4 if n == "input_ids" else None for n in names]
        self.config = {"version": 2, "format": "mds", "compression": None, "hashes": [],
                       "size_limit": size_limit, "column_names": names, "column_encodings": encodings,
                       "column_sizes": sizes}
        self.config_bytes = json.dumps(self.config, sort_keys=True).encode()
        self.samples: list[bytes] = []
        self.size = 0
        self.shards: list[dict[str, Any]] = []

    def add(self, sample: bytes) -> None:
        extra = 4 + 4 + len(self.config_bytes)  # MDSWriter's per-shard overhead
        if self.samples and self.size + len(sample) + 4 + extra > self.size_limit:
            self.flush()
        self.samples.append(sample)
        self.size += len(sample) + 4

    def flush(self) -> None:
        if not self.samples:
            return
        sizes = np.array([len(s) for s in self.samples], dtype=np.int64)
        head = 4 + 4 * (len(sizes) + 1) + len(self.config_bytes)
        offsets = np.concatenate([[0], np.cumsum(sizes)]) + head
        if offsets[-1] >= 1 << 32:
            raise ValueError(f"an MDS shard of {int(offsets[-1]):,} bytes exceeds uint32 offsets: lower size_limit")
        data = b"".join([np.array([len(sizes)], "<u4").tobytes(), offsets.astype("<u4").tobytes(),
                         self.config_bytes, *self.samples])
        name = f"shard.{len(self.shards):05d}.mds"
        (self.out / name).write_bytes(data)
        self.shards.append({"samples": len(sizes), "raw_data": {"basename": name, "bytes": len(data), "hashes": {}},
                            "zip_data": None, **self.config})
        self.samples, self.size = [], 0


def _list_bounds(lists: pa.ListArray) -> np.ndarray:
    """Where each list starts and ends in ``lists.flatten()``."""
    offsets = lists.offsets.to_numpy()
    return offsets - offsets[0]


def write_mds(run: PackedRun, out: Location, size_limit: int = DEFAULT_SIZE_LIMIT) -> dict[str, Any]:
    """Write the run's rows as an MDS dataset under ``out``; returns what was written."""
    (out / INDEX_FILE).delete()  # an older index must not list shards that are being replaced
    writer = _ShardWriter(out, run.seq_len, size_limit)
    rows = 0
    for _, batch in shard_batches(run):
        ids = token_matrix(batch, run.seq_len).astype("<i4", copy=False)
        doc_ids = batch.column("doc_ids")
        doc_offsets = batch.column("doc_offsets")
        id_values = doc_ids.flatten().to_numpy(zero_copy_only=False).astype("<u8")
        offset_values = doc_offsets.flatten().to_numpy(zero_copy_only=False).astype("<i4")
        id_bounds = _list_bounds(doc_ids)
        offset_bounds = _list_bounds(doc_offsets)
        sources = [s.encode() for s in batch.column("source").to_pylist()]
        for r in range(batch.num_rows):
            ids_part = _ndarray_dynamic(id_values[id_bounds[r]:id_bounds[r + 1]])
            offsets_part = _ndarray_dynamic(offset_values[offset_bounds[r]:offset_bounds[r + 1]])
            head = np.array([len(ids_part), len(offsets_part), len(sources[r])], "<u4").tobytes()
            writer.add(head + ids_part + offsets_part + ids[r].tobytes() + sources[r])
        rows += batch.num_rows
    writer.flush()
    (out / INDEX_FILE).write_text(json.dumps({"version": 2, "shards": writer.shards}, sort_keys=True))
    return {"files": [s["raw_data"]["basename"] for s in writer.shards] + [INDEX_FILE], "rows": rows,
            "tokens": rows * run.seq_len, "mds_shards": len(writer.shards)}
