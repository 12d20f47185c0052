"""The shards of a run, read back row batch by row batch in manifest order, for the exporters."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core.layout import RunLayout
from gristmill.core.storage import Location
from gristmill.mixtures import shards

ROW_COLUMNS = ["input_ids", "source", "doc_ids", "doc_offsets"]
DEFAULT_BATCH_ROWS = 1024


@dataclasses.dataclass(frozen=True)
class PackedRun:
    """A run directory with a manifest: its layout and the manifest."""

    layout: RunLayout
    manifest: dict[str, Any]

    @classmethod
    def open(cls, run_dir: str | Location) -> "PackedRun":
        layout = RunLayout(run_dir)
        return cls(layout, shards.load_manifest(layout.root))

    @property
    def seq_len(self) -> int:
        return int(self.manifest["seq_len"])

    @property
    def rows(self) -> int:
        return sum(int(e["rows"]) for e in self.manifest["shards"])

    @property
    def tokenizer(self) -> dict[str, Any]:
        return self.manifest["tokenizer"]

    def tokenizer_file(self) -> Location:
        return self.layout.file(self.tokenizer["path"])


def shard_file_batches(run: PackedRun, index: int, columns: list[str] | None = None,
                       batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The rows of shard ``index`` (in manifest order), batch by batch."""
    pf = run.layout.file(run.manifest["shards"][index]["path"]).parquet_file()
    yield from pf.iter_batches(batch_size=batch_rows, columns=columns or ROW_COLUMNS)


def shard_batches(run: PackedRun, columns: list[str] | None = None,
                  batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(shard index, batch) for every batch of rows of every shard, in manifest order."""
    for index in range(len(run.manifest["shards"])):
        for batch in shard_file_batches(run, index, columns, batch_rows):
            yield index, batch


def token_matrix(batch: pa.RecordBatch, seq_len: int) -> np.ndarray:
    """The batch's ``input_ids`` as an (n_rows, seq_len) int32 array."""
    return batch.column("input_ids").flatten().to_numpy().astype(np.int32, copy=False).reshape(-1, seq_len)


def document_pieces(batch: pa.RecordBatch, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each row's documents start in the batch's flat token stream, and how many pieces each row has.

    A row's first piece starts at its first token (``doc_offsets[0]`` is 0; a document carried over from the
    previous row continues there); the pieces of a row end where the next starts or at the row's end."""
    offsets = batch.column("doc_offsets")
    counts = pc.list_value_length(offsets).to_numpy(zero_copy_only=False).astype(np.int64)
    row_of = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = row_of * seq_len + offsets.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    return starts, counts


def piece_lengths(starts: np.ndarray, total_tokens: int) -> np.ndarray:
    return np.diff(np.append(starts, total_tokens))
