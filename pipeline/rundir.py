"""The run directory (DESIGN.md): where every file lives, atomic writes and segment commit markers.

Every file is written to a temporary name in the same directory and renamed into place, so a crash never leaves
a half-written file under its final name. A segment is complete only once its ``_SUCCESS`` marker exists; the
marker is written last and carries the segment's hash and the parts it committed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from gristmill.core import storage

SUCCESS = "_SUCCESS"


class StaleSegmentError(RuntimeError):
    """A committed segment was produced by a different plan; reusing it would mix two configurations."""


def atomic_write_bytes(path: str | os.PathLike | storage.Location, data: bytes) -> None:
    """Local: temp file + rename; object stores: the final key written once (see gristmill/core/storage.py)."""
    storage.resolve(path).write_bytes(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def canonical_table(table: pa.Table) -> pa.Table:
    """One physical layout for the same rows, whatever executor produced them: contiguous chunks, no schema
    metadata, every field nullable (Ray may drop non-null flags; the Parquet bytes must not depend on that)."""
    schema = pa.schema([f.with_nullable(True) for f in table.schema])
    return table.cast(schema).replace_schema_metadata(None).combine_chunks()


def write_parquet_atomic(path: str | os.PathLike | storage.Location, table: pa.Table,
                         row_group_size: int = 64 * 1024) -> None:
    storage.resolve(path).write_parquet(
        canonical_table(table), compression="zstd", row_group_size=row_group_size, write_statistics=True
    )


class RunDir:
    def __init__(self, root: str | os.PathLike):
        # A local run directory stays a pathlib.Path (inspection, reports and DuckDB read it as files); a URI
        # (s3://, gs://, ...) becomes a storage.Location, which has the Path operations the run needs.
        self.root = storage.resolve(root) if storage.is_uri(root) else Path(root).resolve()

    # --- layout -------------------------------------------------------------------------------------------
    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    def segment_dir(self, segment_name: str) -> Path:
        return self.root / "segments" / segment_name

    def rejects_dir(self, step_slug: str) -> Path:
        return self.root / "rejects" / step_slug

    @property
    def stats_dir(self) -> Path:
        return self.root / "stats"

    def artifacts_dir(self, stage_name: str) -> Path:
        """RUN_DIR/<group>: dedup/, tokenizer/, ... from the stage name ``group.what_vN``."""
        return self.root / stage_name.split(".")[0]

    # --- segments -----------------------------------------------------------------------------------------
    def committed(self, segment_name: str, segment_hash: str) -> dict | None:
        """The marker of a committed segment with this hash; None if not committed; raises if stale."""
        marker = self.segment_dir(segment_name) / SUCCESS
        if not marker.exists():
            return None
        info = json.loads(marker.read_text())
        if info.get("hash") != segment_hash:
            raise StaleSegmentError(
                f"{self.segment_dir(segment_name)} was committed by a different plan "
                f"(segment hash {info.get('hash')} != {segment_hash}); rerun with --force to rebuild it "
                "and everything after it, or use another --run-dir"
            )
        return info

    def reset_segment(self, segment_name: str, step_slugs: list[str]) -> Path:
        """Remove a segment's partial output and its rejects before (re)computing it."""
        seg = self.segment_dir(segment_name)
        storage.resolve(seg).delete_tree()
        for slug in step_slugs:
            storage.resolve(self.rejects_dir(slug)).delete_tree()
        seg.mkdir(parents=True, exist_ok=True)
        return seg

    def commit_segment(self, segment_name: str, info: dict) -> None:
        atomic_write_json(self.segment_dir(segment_name) / SUCCESS, info)

    def segment_parts(self, segment_name: str) -> list[str]:
        return sorted(str(p) for p in self.segment_dir(segment_name).glob("part-*.parquet"))

    def committed_segments(self) -> list[Path]:
        root = self.root / "segments"
        if not root.exists():
            return []
        return sorted(p for p in root.iterdir() if (p / SUCCESS).exists())


def part_file_name(part: int) -> str:
    return f"part-{part:016x}.parquet"
