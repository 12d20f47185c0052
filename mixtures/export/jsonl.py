"""JSON Lines: one object per packed row, ``part-NNNNN.jsonl`` per shard, rows in manifest order.

Each line is ``{"input_ids": [...], "source": "...", "doc_ids": [...], "doc_offsets": [...]}``: the row's
tokens and the documents it holds with where each starts (``doc_ids`` are uint64; JSON readers that parse
numbers as doubles lose precision above 2**53, so each is also given as a string in ``doc_id_strings``).
"""

from __future__ import annotations

import json
from typing import Any

from gristmill.core.storage import Location
from gristmill.mixtures.export.rows import PackedRun, shard_batches


def jsonl_file_name(shard_index: int) -> str:
    return f"part-{shard_index:05d}.jsonl"


def row_lines(batch) -> list[str]:
    lines = []
    for row in batch.to_pylist():
        row["doc_id_strings"] = [str(d) for d in row["doc_ids"]]
        lines.append(json.dumps(row, separators=(",", ":")))
    return lines


def write_jsonl(run: PackedRun, out: Location) -> dict[str, Any]:
    """One JSONL file per shard under ``out``; returns what was written."""
    current, lines, files, rows = None, [], [], 0

    def flush() -> None:
        if current is not None:
            (out / jsonl_file_name(current)).write_text("".join(line + "\n" for line in lines))
            files.append(jsonl_file_name(current))

    for index, batch in shard_batches(run):
        if index != current:
            flush()
            current, lines = index, []
        lines += row_lines(batch)
        rows += batch.num_rows
    flush()
    return {"files": files, "rows": rows, "tokens": rows * run.seq_len}
