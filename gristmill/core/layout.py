"""The one place that names the paths of a run directory (DESIGN.md, "The run directory").

Every other module asks a ``RunLayout`` for a ``Location`` instead of joining strings, so a run directory on an
object store keeps its URI query on every derived path and the layout can change in one place.
"""

from __future__ import annotations

import os

from gristmill.core.storage import Location, resolve

SUCCESS = "_SUCCESS"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_META_FILE = "tokenizer_meta.json"
MANIFEST_FILE = "manifest.json"
SHARDS_DIR = "shards"


def part_file_name(part: int) -> str:
    """A segment part's file name, keyed by its ingest part (never by how an executor batched rows)."""
    return f"part-{part:016x}.parquet"


def part_of_file_name(name: str) -> int:
    return int(name[len("part-"):-len(".parquet")], 16)


def shard_file_name(index: int) -> str:
    """A shard's path relative to the run directory, as the manifest lists it."""
    return f"{SHARDS_DIR}/part-{index:05d}.parquet"


class RunLayout:
    """Paths of one run directory, local or remote."""

    def __init__(self, root: str | os.PathLike | Location):
        self.root = resolve(root)

    def __repr__(self) -> str:
        return f"RunLayout({self.root.uri!r})"

    def __reduce__(self):
        return (RunLayout, (self.root,))

    # --- run-wide files ---------------------------------------------------------------------------------------
    @property
    def plan(self) -> Location:
        return self.root / "plan.json"

    @property
    def lease(self) -> Location:
        return self.root / "_LEASE"

    @property
    def report(self) -> Location:
        return self.root / "report.html"

    @property
    def stats_dir(self) -> Location:
        return self.root / "stats"

    def segment_stats(self, segment_name: str) -> Location:
        return self.stats_dir / "segments" / f"{segment_name}.json"

    # --- segments ---------------------------------------------------------------------------------------------
    @property
    def segments_dir(self) -> Location:
        return self.root / "segments"

    def segment_dir(self, segment_name: str) -> Location:
        return self.segments_dir / segment_name

    def segment_success(self, segment_name: str) -> Location:
        return self.segment_dir(segment_name) / SUCCESS

    def segment_part(self, segment_name: str, part: int) -> Location:
        return self.segment_dir(segment_name) / part_file_name(part)

    @property
    def rejects_root(self) -> Location:
        return self.root / "rejects"

    def rejects_dir(self, step_slug: str) -> Location:
        return self.rejects_root / step_slug

    # --- state of global steps --------------------------------------------------------------------------------
    def step_state(self, stage_name: str, position: int) -> Location:
        """A global step's own directory: ``RUN_DIR/<group>/<NN>-<what>`` for stage ``group.what_vN``, e.g.
        ``dedup/03-minhash`` (signatures, clusters, a saved Bloom filter, staging files)."""
        group, _, what = stage_name.partition(".")
        return self.root / group / f"{position:02d}-{what.rsplit('_v', 1)[0]}"

    @property
    def tokenizer_dir(self) -> Location:
        return self.root / "tokenizer"

    @property
    def tokenizer(self) -> Location:
        return self.tokenizer_dir / TOKENIZER_FILE

    @property
    def tokenizer_meta(self) -> Location:
        return self.tokenizer_dir / TOKENIZER_META_FILE

    # --- the packed output ------------------------------------------------------------------------------------
    @property
    def shards_dir(self) -> Location:
        return self.root / SHARDS_DIR

    def shard(self, index: int) -> Location:
        return self.root / shard_file_name(index)

    @property
    def manifest(self) -> Location:
        return self.root / MANIFEST_FILE

    def relative(self, location: Location) -> str:
        """``location``'s path below the run directory (as the manifest lists files)."""
        prefix = self.root.path.rstrip("/") + "/"
        if not location.path.startswith(prefix):
            raise ValueError(f"{location} is not inside the run directory {self.root}")
        return location.path[len(prefix):]

    def file(self, relative: str) -> Location:
        """A path the manifest lists, relative to the run directory, back as a location."""
        return self.root / relative
