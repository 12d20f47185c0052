"""JSON Lines: one object per packed row, ``part-NNNNN.jsonl`` per shard, rows in manifest order.

Each line is ``{"input_ids": [...], "source": "...", "doc_ids": [...], "doc_offsets": [...]}``: the row's
tokens and the documents it holds with where each starts (``doc_ids`` are uint64; JSON readers that parse
numbers as doubles lose precision above 2**53, so each is also given as a string in ``doc_id_strings``).
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from gristmill.core.storage import Location
from gristmill.mixtures.export.rows import PackedRun, shard_file_batches


def jsonl_file_name(shard_index: int) -> str:
    return f"part-{shard_index:05d}.jsonl"


def row_lines(batch) -> list[str]:
    lines = []
    for row in batch.to_pylist():
        row["doc_id_strings"] = [str(d) for d in row["doc_ids"]]
        lines.append(json.dumps(row, separators=(",", ":")))
    return lines


def write_jsonl(run: PackedRun, out: Location) -> dict[str, Any]:
    """One JSONL file per shard under ``out``, each streamed batch by batch; returns what was written."""
    files, rows = [], 0
    for index in range(len(run.manifest["shards"])):
        def write(sink: pa.NativeFile) -> int:
            written = 0
            for batch in shard_file_batches(run, index):
                sink.write("".join(line + "\n" for line in row_lines(batch)).encode())
                written += batch.num_rows
            return written

        rows += (out / jsonl_file_name(index)).write_stream(write)
        files.append(jsonl_file_name(index))
    return {"files": files, "rows": rows, "tokens": rows * run.seq_len}
