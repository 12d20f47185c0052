"""The run directory (DESIGN.md): where every file lives, atomic writes and segment commit markers.

Every file is written to a temporary name in the same directory and renamed into place (one PUT on an object
store), so a crash never leaves a half-written file under its final name. A segment is complete only once its
``_SUCCESS`` marker exists; the marker is written last and carries the segment's hash and every part it
committed with the part's rows, size and xxh3-128 hash. The next segment reads exactly the listed parts, and
resume and ``verify`` check them (``check_parts``): a part missing, changed or added since the commit is found.

Each column is stored once (gristmill/core/parts.py): a segment's part file holds ``doc_id`` and the columns the
segment added or changed, and a part it left unchanged has no file. The marker's ``layouts`` say which segment
holds each column of each part (``column_layouts``), and its ``upstream`` the listing digest of every earlier
segment it reads columns from, so a dependant of a changed or re-committed segment is found too.

xxh3-128 rather than sha256: resume re-hashes every committed part on every rerun, and xxh3 is over ten times
cheaper (benchmarks/part_hash.py measures both); it is a checksum against accidents (a deleted, truncated, overwritten or
half-synced file), not against someone forging a part with a colliding hash.
"""

from __future__ import annotations

import dataclasses

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from gristmill.core import storage
from gristmill.core.layout import SUCCESS, RunLayout, part_of_file_name
from gristmill.core.parts import DOC_ID, SegmentPart

PART_GLOB = "part-*.parquet"
PART_HASH = "xxh3_128"  # the key of each part's hash in a _SUCCESS marker, and the algorithm
_HASH_BLOCK = 8 << 20


class StaleSegmentError(RuntimeError):
    """A committed segment was produced by a different plan; reusing it would mix two configurations."""


def atomic_write_bytes(path: str | os.PathLike | storage.Location, data: bytes) -> None:
    """Local: temp file + rename; object stores: the final key written once (see gristmill/core/storage.py)."""
    storage.resolve(path).write_bytes(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, json_bytes(obj))


def json_bytes(obj: Any) -> bytes:
    """What ``atomic_write_json`` writes: indented, sorted keys, newline-terminated."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


def canonical_table(table: pa.Table) -> pa.Table:
    """One physical layout for the same rows, whatever executor produced them: contiguous chunks, no schema
    metadata, every field nullable (Ray may drop non-null flags; the Parquet bytes must not depend on that)."""
    schema = pa.schema([f.with_nullable(True) for f in table.schema])
    return table.cast(schema).replace_schema_metadata(None).combine_chunks()


def write_parquet_atomic(path: str | os.PathLike | storage.Location, table: pa.Table,
                         row_group_size: int = 64 * 1024, writes: storage.BackgroundWrites | None = None) -> None:
    """``table`` as the run writes every Parquet file; with ``writes``, uploaded in the background."""
    if writes is not None:
        writes.write_bytes(storage.resolve(path), parquet_bytes(table, row_group_size))
        return
    storage.resolve(path).write_parquet(
        canonical_table(table), compression="zstd", row_group_size=row_group_size, write_statistics=True
    )


def parquet_bytes(table: pa.Table, row_group_size: int = 64 * 1024) -> pa.Buffer:
    """The bytes ``write_parquet_atomic`` writes for ``table``."""
    sink = pa.BufferOutputStream()
    pq.write_table(canonical_table(table), sink, compression="zstd", row_group_size=row_group_size,
                   write_statistics=True)
    return sink.getvalue()


def part_digest(data: bytes | pa.Buffer) -> str:
    return storage.content_digest(data)


def file_digest(path: str | os.PathLike | storage.Location) -> str:
    """xxh3-128 of a file's bytes, read in blocks (local or remote)."""
    digest = xxhash.xxh3_128()
    with storage.resolve(path).open_input() as fh:
        for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def write_part(path: str | os.PathLike | storage.Location, table: pa.Table, row_group_size: int = 64 * 1024,
               writes: storage.BackgroundWrites | None = None) -> dict:
    """Write a segment part atomically; returns its size and hash for the segment's ``_SUCCESS`` listing.
    Encoded in memory first so the bytes are hashed where they are made, never read back; the bytes are
    those of ``write_parquet_atomic``. With ``writes`` the upload runs in the background: join it before
    committing the segment."""
    data = parquet_bytes(table, row_group_size)
    location = storage.resolve(path)
    if writes is not None:
        writes.write_bytes(location, data)
    else:
        location.write_bytes(data)
    digest = part_digest(data)
    storage.written_known(location, data, digest)  # read back by later segments from memory
    return {"bytes": data.size, PART_HASH: digest}


@dataclasses.dataclass(frozen=True)
class ListedDirs:
    """Names of the folders under segments/ and under rejects/, as listed once."""

    segments: set[str]
    rejects: set[str]


class RunDir:
    def __init__(self, root: str | os.PathLike):
        # A local run directory stays a pathlib.Path (inspection, reports and DuckDB read it as files); a URI
        # (s3://, gs://, ...) becomes a storage.Location, which has the Path operations the run needs.
        self.root = storage.resolve(root) if storage.is_uri(root) else Path(root).resolve()
        self.layout = RunLayout(self.root)

    # --- layout: RunLayout's paths, as pathlib.Path for a local run -----------------------------------------
    def _path(self, location: storage.Location) -> Path:
        return Path(location.path) if isinstance(self.root, Path) else location

    @property
    def plan_path(self) -> Path:
        return self._path(self.layout.plan)

    @property
    def lease_path(self) -> Path:
        return self._path(self.layout.lease)

    @property
    def segments_root(self) -> Path:
        return self._path(self.layout.segments_dir)

    def segment_dir(self, segment_name: str) -> Path:
        return self._path(self.layout.segment_dir(segment_name))

    def success_path(self, segment_name: str) -> Path:
        return self._path(self.layout.segment_success(segment_name))

    def segment_stats_path(self, segment_name: str) -> Path:
        return self._path(self.layout.segment_stats(segment_name))

    def rejects_dir(self, step_slug: str) -> Path:
        return self._path(self.layout.rejects_dir(step_slug))

    @property
    def stats_dir(self) -> Path:
        return self._path(self.layout.stats_dir)

    # --- segments -----------------------------------------------------------------------------------------
    def marker(self, segment_name: str) -> dict | None:
        """A segment's ``_SUCCESS`` content; None if it is not committed."""
        try:  # one request; asking first whether it exists would be another
            return json.loads(storage.resolve(self.success_path(segment_name)).read_text())
        except FileNotFoundError:
            return None

    def committed(self, segment_name: str, segment_hash: str) -> dict | None:
        """The marker of a committed segment with this hash; None if not committed; raises if stale."""
        info = self.marker(segment_name)
        if info is None:
            return None
        if info.get("hash") != segment_hash:
            raise StaleSegmentError(
                f"{self.segment_dir(segment_name)} was committed by a different plan "
                f"(segment hash {info.get('hash')} != {segment_hash}); rerun with --force to rebuild it "
                "and everything after it, or use another --run-dir"
            )
        return info

    def reset_segment(self, segment_name: str, step_slugs: list[str], listed: "ListedDirs | None" = None) -> Path:
        """Remove a segment's partial output and its rejects before (re)computing it. The rejects folder is
        listed once for all the segment's steps (on an object store each folder's removal is a listing, even of
        nothing: 7 for segment 00 of the demo). ``listed``: the folders there were when the run started
        (``listed_dirs``, read under the run's lease, which only this run has written since, each segment's
        folders after resetting them): nothing is listed again, and what was not there is not removed."""
        seg = self.segment_dir(segment_name)
        if listed is None:
            storage.resolve(seg).delete_tree()
            present = {loc.name: loc for loc in storage.resolve(self.layout.rejects_root).iterdir()}
        else:
            if segment_name in listed.segments:
                storage.resolve(seg).delete_dir()
            present = {slug: self.layout.rejects_dir(slug) for slug in listed.rejects}
        for slug in sorted(set(step_slugs) & present.keys()):
            present[slug].delete_dir()
        seg.mkdir(parents=True, exist_ok=True)
        return seg

    def reset_writes(self, segment_name: str, step_slugs: list[str], listed: "ListedDirs") -> bool:
        """Whether ``reset_segment(segment_name, step_slugs, listed)`` changes the run directory: a local one gets
        its folders made; on an object store only a removal of what ``listed`` names writes."""
        if isinstance(self.root, Path):
            return True
        return segment_name in listed.segments or bool(set(step_slugs) & listed.rejects)

    def listed_dirs(self) -> "ListedDirs":
        """The segment folders and rejects folders there are now (a listing of each parent)."""
        return ListedDirs({loc.name for loc in storage.resolve(self.segments_root).iterdir()},
                          {loc.name for loc in storage.resolve(self.layout.rejects_root).iterdir()})

    def commit_segment(self, segment_name: str, info: dict) -> None:
        """Write ``_SUCCESS`` last; ``info["parts"]`` lists each part as ``{path, rows, bytes, xxh3_128}``, and
        ``info["rejects"]`` (when its steps kept rejected rows) each rejects file as ``{path, bytes, xxh3_128}``,
        ``path`` under ``rejects/``."""
        atomic_write_json(self.success_path(segment_name), info)

    def commit_written_parts(self, segment_name: str, segment_hash: str = "") -> dict:
        """Commit a segment whose part files were written outside an executor (a test fixture, an import):
        lists every part file in its directory with rows, size and hash, and writes ``_SUCCESS``."""
        seg = storage.resolve(self.segment_dir(segment_name))
        parts = [part_entry(loc) for loc in seg.glob(PART_GLOB)]
        marker = {"hash": segment_hash, "rows": sum(p["rows"] for p in parts), "parts": parts}
        self.commit_segment(segment_name, marker)
        return marker

    def segment_parts(self, segment_name: str, marker: dict | None = None,
                      holders: dict[str, dict] | None = None) -> list[SegmentPart]:
        """The parts a committed segment listed in its ``_SUCCESS`` (never a listing of the directory), each
        read across the segments that hold its columns (``holders``: their markers, where at hand)."""
        marker = marker if marker is not None else self.marker(segment_name)
        if marker is None:
            raise FileNotFoundError(f"{self.success_path(segment_name)}: the segment is not committed")
        return segment_parts(self.layout, segment_name, marker, holders)

    def check_parts(self, segment_name: str, marker: dict, hashes: bool = True, upstream: bool = False) -> list[str]:
        """What differs between a committed segment's files and its ``_SUCCESS`` listing: a listed part
        missing, of another size or hash, or a part file that is not listed; and an earlier segment it reads
        columns from committed again since (its listing changed). ``upstream``: the files of those segments are
        checked too (a reader of this segment alone; a run checks every segment in order anyway). Empty when
        they agree."""
        seg = storage.resolve(self.segment_dir(segment_name))
        where = f"segments/{segment_name}"
        if not _has_listing(marker):
            return [f"{where}/{SUCCESS} lists no part sizes and hashes (written by an older gristmill)"]
        problems = []
        on_disk = {loc.name: loc for loc in seg.glob(PART_GLOB)}
        for part in marker["parts"]:
            if not has_file(marker, part):
                continue
            loc = on_disk.pop(part["path"], None)
            name = f"{where}/{part['path']}"
            size = loc.size() if loc is not None else None
            if loc is None:
                problems.append(f"{name}: listed in {SUCCESS} but missing")
            elif size != part["bytes"]:
                problems.append(f"{name}: {size:,} bytes, {SUCCESS} lists {part['bytes']:,}")
            elif hashes and file_digest(loc) != part[PART_HASH]:
                problems.append(f"{name}: content changed ({PART_HASH} differs from the one in {SUCCESS})")
        problems += [f"{where}/{name}: a part file not listed in {SUCCESS}" for name in sorted(on_disk)]
        for name, digest in sorted(marker.get("upstream", {}).items()):
            held = self.marker(name)
            if held is None:
                problems.append(f"{where}: reads columns from segments/{name}, which is no longer committed")
            elif listing_digest(held) != digest:
                problems.append(f"{where}: reads columns from segments/{name}, committed again since "
                                f"(its parts changed)")
            elif upstream:
                problems += [f"{where} reads columns from {p}" for p in self.check_parts(name, held, hashes, True)]
        return problems

    def upstream_digests(self, segment_name: str, layouts: list,
                         known: dict[str, dict] | None = None) -> dict[str, str]:
        """The listing digest of every other segment the layouts read columns from (the marker's ``upstream``);
        ``known``: markers already read or written by the caller (who holds the lease), not read again."""
        names = sorted({holder for layout in layouts for _, holder in layout} - {segment_name})
        out = {}
        for name in names:
            held = (known or {}).get(name) or self.marker(name)
            if held is None:
                raise FileNotFoundError(f"{self.success_path(name)}: segments/{segment_name} reads columns from "
                                        "it, but it is not committed")
            out[name] = listing_digest(held)
        return out

    def read_plan(self) -> dict | None:
        loc = storage.resolve(self.plan_path)
        return json.loads(loc.read_text()) if loc.exists() else None

    def verify_segments(self, plan: dict | None = None) -> list[str]:
        """Problems with the run's segments: every segment of ``plan.json`` must be committed by that plan,
        with exactly the parts its ``_SUCCESS`` lists, unchanged; a committed segment the plan does not
        have is stale output. Empty when all is well."""
        plan = plan if plan is not None else self.read_plan()
        if plan is None:
            return [f"{self.plan_path}: missing (not a run directory, or the run never started)"]
        problems = []
        planned = {s["name"]: s["hash"] for s in plan.get("segments", [])}
        for name, segment_hash in planned.items():
            marker = self.marker(name)
            if marker is None:
                problems.append(f"segments/{name}: not committed (the run did not finish)")
            elif marker.get("hash") != segment_hash:
                problems.append(f"segments/{name}: committed by another plan (segment hash {marker.get('hash')}, "
                                f"plan.json says {segment_hash})")
            else:
                problems += self.check_parts(name, marker)
        problems += self._dependants_of_changed(planned, problems)
        for seg in self.committed_segments():
            if seg.name not in planned:
                problems.append(f"segments/{seg.name}: committed but not a segment of plan.json (stale output)")
        return problems

    def _dependants_of_changed(self, planned: dict[str, str], problems: list[str]) -> list[str]:
        """A line for each segment that reads columns from a segment with a problem: its documents are wrong too."""
        broken = {name for name in planned if any(p.startswith(f"segments/{name}/") or p.startswith(
            f"segments/{name}:") for p in problems)}
        out = []
        for name in planned:
            marker = self.marker(name)
            for held in sorted(set((marker or {}).get("upstream", {})) & broken):
                out.append(f"segments/{name}: reads columns from segments/{held}, whose parts differ from its "
                           f"{SUCCESS} (rerun to recompute both)")
        return out

    def committed_segments(self) -> list[Path]:
        root = self.segments_root
        if not root.exists():
            return []
        return sorted(p for p in root.iterdir() if (p / SUCCESS).exists())


def part_entry(path: str | os.PathLike | storage.Location) -> dict:
    """A part file's ``_SUCCESS`` entry, from the file: name, rows, size and hash."""
    loc = storage.resolve(path)
    with loc.open_input() as fh:
        rows = pq.ParquetFile(fh).metadata.num_rows
    return {"path": loc.name, "rows": rows, "bytes": loc.size(), PART_HASH: file_digest(loc)}


def has_file(marker: dict, entry: dict) -> bool:
    """Whether a listed part has a file in its own segment (a part a segment left unchanged has none)."""
    return "layouts" not in marker or "bytes" in entry


def listing_digest(marker: dict) -> str:
    """A digest of a marker's part listing: it changes whenever the segment is committed with other parts."""
    return xxhash.xxh3_128_hexdigest(json.dumps(marker.get("parts", []), sort_keys=True).encode())


def segment_parts(layout: RunLayout, segment_name: str, marker: dict,
                  holders: dict[str, dict] | None = None) -> list[SegmentPart]:
    """A committed segment's parts as the marker lists them, each with the files holding its columns; a file
    whose size and hash a marker at hand lists (this one's, or a holder's in ``holders``) is a ``KnownFile``."""
    listings = {name: _listings(m) for name, m in (holders or {}).items()}
    listings[segment_name] = _listings(marker)
    layouts = marker.get("layouts")
    out = []
    for entry in listed_parts(marker):
        part = entry.get("part", part_of_file_name(entry["path"]))
        own = _listed(layout.segment_dir(segment_name) / entry["path"], listings[segment_name].get(part))
        if layouts is None:
            out.append(SegmentPart(own, part, entry.get("rows"), None))
            continue
        files = [(name, own if holder == segment_name else
                  _listed(layout.segment_part(holder, part), listings.get(holder, {}).get(part)))
                 for name, holder in layouts[entry["layout"]]]
        out.append(SegmentPart(own, part, entry.get("rows"), files))
    return out


def _listings(marker: dict) -> dict[int, tuple[int, str]]:
    """{part: (bytes, xxh3_128)} of the files a marker lists with both."""
    return {entry.get("part", part_of_file_name(entry["path"])): (entry["bytes"], entry[PART_HASH])
            for entry in listed_parts(marker) if "bytes" in entry and PART_HASH in entry}


def _listed(location: storage.Location, listing: tuple[int, str] | None) -> storage.Location:
    return location if listing is None else storage.KnownFile(location, *listing)


def column_layouts(segment_name: str, written: list[dict], parent_name: str | None,
                   parent_marker: dict | None) -> tuple[list[list[list[str]]], list[dict]]:
    """The marker's ``layouts`` and ``parts`` for a segment's written parts: which segment holds each column of
    each part. A written part lists ``columns`` (those in its own file, none if it has no file) and ``order``
    (every column of its table); a column not in its own file is where the parent segment's part has it."""
    parent_layouts = (parent_marker or {}).get("layouts")
    parent_entries = {e.get("part", part_of_file_name(e["path"])): e for e in listed_parts(parent_marker or {})}
    layouts: dict[tuple, int] = {}
    parts = []
    for w in written:
        own = set(w["columns"])
        inherited: dict[str, str] = {}
        if own != set(w["order"]):
            entry = parent_entries.get(w["part"])
            if entry is None or parent_name is None:
                raise ValueError(f"segments/{segment_name}: part {w['part']:016x} reuses columns of a part "
                                 f"segments/{parent_name} does not list")
            inherited = (dict(parent_layouts[entry["layout"]]) if parent_layouts is not None
                         else {c: parent_name for c in w["order"]})
        layout = tuple((c, segment_name if c in own else inherited[c]) for c in w["order"])
        if DOC_ID not in dict(layout):
            raise ValueError(f"segments/{segment_name}: part {w['part']:016x} has no {DOC_ID} column")
        index = layouts.setdefault(layout, len(layouts))
        parts.append({"part": w["part"], "rows": w["rows"], "path": w["path"], "layout": index,
                      **{k: w[k] for k in ("bytes", PART_HASH) if k in w}})
    return [[list(pair) for pair in layout] for layout in layouts], parts


def listed_parts(marker: dict) -> list[dict]:
    """A marker's parts as ``{path, rows, bytes, xxh3_128}``; a marker of an older gristmill lists only the
    names, which are kept (their sizes and hashes unknown)."""
    return [p if isinstance(p, dict) else {"path": p} for p in marker.get("parts", [])]


def _has_listing(marker: dict) -> bool:
    return all(isinstance(p, dict) and (not has_file(marker, p) or ("bytes" in p and PART_HASH in p))
               for p in marker.get("parts", []))


def part_file_name(part: int) -> str:
    return f"part-{part:016x}.parquet"
