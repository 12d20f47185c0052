"""The rows of a packed run's shards, read with pyarrow in manifest order: what every export must hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def manifest(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "manifest.json").read_text())


def shard_table(run_dir: Path) -> pa.Table:
    m = manifest(run_dir)
    return pa.concat_tables([pq.read_table(Path(run_dir) / e["path"]) for e in m["shards"]]).combine_chunks()


def token_rows(run_dir: Path) -> np.ndarray:
    table = shard_table(run_dir)
    return table.column("input_ids").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)


def row_pieces(run_dir: Path) -> list[list[np.ndarray]]:
    """Each row split at its doc_offsets: the pieces of documents it holds."""
    table = shard_table(run_dir)
    rows = token_rows(run_dir)
    offsets = table.column("doc_offsets").to_pylist()
    return [np.split(row, offs[1:]) for row, offs in zip(rows, offsets)]
