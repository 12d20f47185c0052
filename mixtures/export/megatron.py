"""A Megatron-LM indexed dataset (``PREFIX.bin`` + ``PREFIX.idx``) of a run's shards.

The format, as megatron-core's ``megatron/core/datasets/indexed_dataset.py`` reads it (``_IndexReader``):

``.bin``: every sequence's tokens back to back, one dtype (uint16 when the vocabulary has under 65,500 ids,
as Megatron's ``DType.optimal_dtype`` picks, else int32).

``.idx`` (little-endian): the header ``MMIDIDX\\0\\0``, version ``<Q`` 1, the dtype code ``<B``, the sequence
count ``<Q``, the document count ``<Q`` (entries of the document index, i.e. documents + 1), then the
sequence lengths (int32), the sequences' byte offsets into ``.bin`` (int64) and the document index (int64:
the first sequence of each document, then the sequence count).

How the shards map onto it: one Megatron *document* per packed row, in manifest order, and one *sequence* per
piece of an original document inside the row (split at the row's ``doc_offsets``; each piece ends with its
``<|endoftext|>`` unless the document continues in a later row). So the concatenated sequences are exactly the
shards' token stream, ``dataset.get(i)`` style access by row works through the document index, and the
original document boundaries are the sequence boundaries (megatron-core's ``GPTDataset`` packs over
sequences, so it sees every document boundary too).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pyarrow as pa

from gristmill.core.storage import Location
from gristmill.mixtures.export.rows import PackedRun, document_pieces, piece_lengths, shard_batches, token_matrix

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
# megatron-core's DType codes.
DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}
PREFIX = "tokens"


def token_dtype(vocab_size: int | None) -> np.dtype:
    """Megatron's ``DType.optimal_dtype``: uint16 below 65,500 ids, else int32 (also when unknown)."""
    return np.dtype(np.uint16) if vocab_size is not None and vocab_size < 65500 else np.dtype(np.int32)


def index_bytes(lengths: np.ndarray, document_index: np.ndarray, dtype: np.dtype) -> bytes:
    pointers = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1] * dtype.itemsize, out=pointers[1:])
    return b"".join([
        INDEX_HEADER,
        struct.pack("<Q", INDEX_VERSION),
        struct.pack("<B", DTYPE_CODES[dtype]),
        struct.pack("<Q", len(lengths)),
        struct.pack("<Q", len(document_index)),
        lengths.astype("<i4").tobytes(),
        pointers.astype("<i8").tobytes(),
        document_index.astype("<i8").tobytes(),
    ])


def write_megatron(run: PackedRun, out: Location, prefix: str = PREFIX) -> dict[str, Any]:
    """Write ``out/PREFIX.bin`` and ``out/PREFIX.idx``; returns what was written."""
    dtype = token_dtype(run.tokenizer.get("vocab_size"))
    limit = np.iinfo(dtype).max
    lengths: list[np.ndarray] = []
    row_pieces: list[np.ndarray] = []

    def write_bin(sink: pa.NativeFile) -> int:
        tokens = 0
        for index, batch in shard_batches(run, ["input_ids", "doc_offsets"]):
            ids = token_matrix(batch, run.seq_len)
            if ids.size and (ids.min() < 0 or ids.max() > limit):
                raise ValueError(f"{run.manifest['shards'][index]['path']}: token id {int(ids.max())} does not fit "
                                 f"{dtype.name} (the manifest's vocab_size is {run.tokenizer.get('vocab_size')})")
            starts, counts = document_pieces(batch, run.seq_len)
            lengths.append(piece_lengths(starts, ids.size))
            row_pieces.append(counts)
            sink.write(ids.astype(dtype.newbyteorder("<"), copy=False).tobytes())
            tokens += ids.size
        return tokens

    bin_file, idx_file = out / f"{prefix}.bin", out / f"{prefix}.idx"
    idx_file.delete()  # an older export's index must not vouch for the new .bin while it is written
    tokens = bin_file.write_stream(write_bin)
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    counts = np.concatenate(row_pieces) if row_pieces else np.zeros(0, np.int64)
    document_index = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # The index last: a prefix with an .idx is complete.
    idx_file.write_bytes(index_bytes(all_lengths, document_index, dtype))
    return {"files": [bin_file.name, idx_file.name], "prefix": prefix, "dtype": dtype.name, "tokens": int(tokens),
            "documents": len(document_index) - 1, "sequences": int(len(all_lengths))}
