"""Packing: one source's documents, drawn per the mixture plan, joined with ``<|endoftext|>`` and cut into rows.

Everything here is vectorized over Arrow list offsets with numpy: documents are gathered with one Arrow
``take`` per chunk, separators placed with a mask, rows cut with a reshape, and each row's provenance (which
documents it holds and where each starts) found with ``searchsorted`` over the documents' start positions.
No loop runs per token or per document; the only Python loops are over epochs and chunks.

Sampling. A document's place in epoch ``k`` of a source is decided by ``hash(seed, k, doc_id)``. A whole epoch
takes every document in that order; the last, partial epoch (or the only one, when a source is down-sampled)
takes the shortest prefix of that order that holds the tokens still needed. So draws are deterministic,
independent of how the input is split into parts, and a different seed draws different documents.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core.storage import Location

# Tokens gathered per chunk: bounds the packer's working memory (~5 bytes per token) whatever the source size.
DEFAULT_CHUNK_TOKENS = 1 << 24

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finalizer, elementwise over uint64 (wrapping arithmetic): a fast, well-mixed hash."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64, copy=True) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def keyed_hash(seed: int, stream: int, values: np.ndarray) -> np.ndarray:
    """hash(seed, stream, value) for every value: ``stream`` separates uses (epochs, the shard interleave)."""
    key = splitmix64(np.array([(seed & 0xFFFFFFFFFFFFFFFF)], dtype=np.uint64))
    key = splitmix64(key ^ np.uint64(stream & 0xFFFFFFFFFFFFFFFF))
    return splitmix64(values.astype(np.uint64) ^ key[0])


def draw_stream(doc_ids: np.ndarray, spans: np.ndarray, needed: int, seed: int) -> np.ndarray:
    """Indices of the documents, in packing order, whose spans (tokens + separator) cover ``needed`` tokens.

    Whole epochs while at least one is still needed, then a hash-ordered prefix for the remaining fraction.
    """
    available = int(spans.sum())
    if needed <= 0 or available == 0:
        return np.zeros(0, dtype=np.int64)
    pieces = []
    epoch = 0
    remaining = needed
    tiebreak = np.arange(len(doc_ids))
    while remaining > 0:
        order = np.lexsort((tiebreak, doc_ids, keyed_hash(seed, epoch, doc_ids)))
        if remaining >= available:
            pieces.append(order)
            remaining -= available
        else:
            covered = np.cumsum(spans[order])
            pieces.append(order[: int(np.searchsorted(covered, remaining, side="left")) + 1])
            remaining = 0
        epoch += 1
    return np.concatenate(pieces)


def rows_schema(seq_len: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("input_ids", pa.list_(pa.int32(), seq_len), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("doc_ids", pa.list_(pa.uint64()), nullable=False),
            pa.field("doc_offsets", pa.list_(pa.int32()), nullable=False),
        ]
    )


def join_documents(tokens: pa.Array, sep_id: int, prefix: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the token lists with ``sep_id`` after each one: (flat int32 tokens, start of each doc).

    ``prefix`` (tokens carried over from the previous chunk) goes first, written straight into the output
    so the chunk is copied once; the starts count from after it."""
    prefix = np.zeros(0, np.int32) if prefix is None else prefix
    lengths = pc.fill_null(pc.list_value_length(tokens), 0).to_numpy().astype(np.int64)
    values = tokens.flatten().to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    ends = np.cumsum(lengths + 1)
    starts = ends - (lengths + 1)
    flat = np.empty(len(prefix) + (int(ends[-1]) if len(ends) else 0), dtype=np.int32)
    flat[: len(prefix)] = prefix
    body = flat[len(prefix) :]
    is_token = np.ones(len(body), dtype=bool)
    is_token[ends - 1] = False
    body[is_token] = values
    body[ends - 1] = sep_id
    return flat, starts


@dataclasses.dataclass
class _Buffer:
    """Tokens not yet in a row, with the start of every document they touch (the first may be negative:
    that document began in an earlier row)."""

    tokens: np.ndarray
    starts: np.ndarray
    doc_ids: np.ndarray

    @classmethod
    def empty(cls) -> "_Buffer":
        return cls(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.uint64))

    def extend(self, tokens: pa.Array, doc_ids: np.ndarray, sep_id: int) -> tuple["_Buffer", int]:
        """The buffer with ``tokens`` joined onto its end; also how many tokens were added."""
        flat, starts = join_documents(tokens, sep_id, prefix=self.tokens)
        buf = _Buffer(
            flat,
            np.concatenate([self.starts, starts + len(self.tokens)]),
            np.concatenate([self.doc_ids, doc_ids]),
        )
        return buf, len(flat) - len(self.tokens)

    def truncate(self, n_tokens: int) -> "_Buffer":
        keep = self.starts < n_tokens
        return _Buffer(self.tokens[:n_tokens], self.starts[keep], self.doc_ids[keep])

    def drop_front(self, n_tokens: int) -> "_Buffer":
        if n_tokens >= len(self.tokens):
            return _Buffer.empty()
        first = int(np.searchsorted(self.starts, n_tokens, side="right")) - 1
        return _Buffer(self.tokens[n_tokens:], self.starts[first:] - n_tokens, self.doc_ids[first:])


def cut_rows(buf: _Buffer, n_rows: int, seq_len: int, source: str) -> pa.Table:
    """The first ``n_rows * seq_len`` tokens of ``buf`` as rows, each with its documents and their offsets."""
    row_starts = np.arange(n_rows, dtype=np.int64) * seq_len
    first = np.searchsorted(buf.starts, row_starts, side="right") - 1
    last = np.searchsorted(buf.starts, row_starts + seq_len, side="left") - 1
    counts = last - first + 1
    list_offsets = np.zeros(n_rows + 1, dtype=np.int32)
    np.cumsum(counts, out=list_offsets[1:])
    doc_index = np.repeat(first - list_offsets[:-1], counts) + np.arange(int(list_offsets[-1]))
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
    offsets_in_row = np.maximum(buf.starts[doc_index] - row_of * seq_len, 0).astype(np.int32)
    offsets_arr = pa.array(list_offsets)
    input_ids = pa.FixedSizeListArray.from_arrays(pa.array(buf.tokens[: n_rows * seq_len]), seq_len)
    return pa.Table.from_arrays(
        [
            input_ids,
            pa.repeat(pa.scalar(source, pa.string()), n_rows),
            pa.ListArray.from_arrays(offsets_arr, pa.array(buf.doc_ids[doc_index], pa.uint64())),
            pa.ListArray.from_arrays(offsets_arr, pa.array(offsets_in_row)),
        ],
        schema=rows_schema(seq_len),
    )


def pack_source(
    tokens: pa.Array,
    doc_ids: np.ndarray,
    stream: np.ndarray,
    source: str,
    seq_len: int,
    rows: int,
    stream_tokens: int,
    sep_id: int,
    pad_id: int,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    skip: int = 0,
) -> Iterator[pa.Table]:
    """Rows of one source: the documents ``tokens[stream]`` joined by ``sep_id``, truncated to
    ``stream_tokens`` tokens and cut into exactly ``rows`` rows; a short last row is padded with ``pad_id``
    (only when the plan asked for it, i.e. ``rows * seq_len > stream_tokens``). Yields tables chunk by chunk.

    A token range of a longer stream is packed the same way: ``stream`` then starts with the document that holds
    the range's first token, ``skip`` of its tokens precede that token, and ``stream_tokens`` counts from the
    document's start. Rows, documents and offsets come out exactly as the whole stream's rows at that place."""
    spans = pc.fill_null(pc.list_value_length(tokens), 0).to_numpy().astype(np.int64)[stream] + 1
    chunk_of = np.cumsum(spans) // max(chunk_tokens, 1)
    bounds = np.flatnonzero(np.diff(chunk_of)) + 1
    buf = _Buffer.empty()
    consumed = emitted = 0
    for part in np.split(stream, bounds):
        if consumed >= stream_tokens or emitted >= rows:
            break
        buf, added = buf.extend(tokens.take(pa.array(part)), doc_ids[part], sep_id)
        consumed += added
        if consumed > stream_tokens:  # the cap or budget ends mid-document
            buf = buf.truncate(len(buf.tokens) - (consumed - stream_tokens))
            consumed = stream_tokens
        if skip:  # the first chunk holds the whole first document, so the range's first token
            buf, skip = buf.drop_front(skip), 0
        n_rows = min(len(buf.tokens) // seq_len, rows - emitted)
        if n_rows:
            yield cut_rows(buf, n_rows, seq_len, source)
            emitted += n_rows
            buf = buf.drop_front(n_rows * seq_len)
    if emitted < rows and len(buf.tokens):
        padded = _Buffer(
            np.concatenate([buf.tokens, np.full(seq_len - len(buf.tokens), pad_id, np.int32)]),
            buf.starts,
            buf.doc_ids,
        )
        yield cut_rows(padded, 1, seq_len, source)
        emitted += 1
    if emitted != rows:
        raise RuntimeError(
            f"source {source!r}: packed {emitted} rows but the plan needs {rows} "
            f"({consumed:,} of {stream_tokens:,} tokens drawn); the n_tokens column disagrees with the tokens"
        )


def write_ipc(location: Location, schema: pa.Schema, tables: Iterator[pa.Table]) -> int:
    """Stream tables into an uncompressed Arrow IPC file (staging: written once, memory-mapped when read
    from a local disk); returns the rows written."""
    def write(sink: pa.NativeFile) -> int:
        rows = 0
        with pa.ipc.new_file(sink, schema) as writer:
            for table in tables:
                writer.write_table(table)
                rows += table.num_rows
        return rows

    return location.write_stream(write)
