"""Shards: the interleave of all sources' rows, the shard writer, ``manifest.json``, verification and a reader.

Layout under the run directory::

    shards/part-00000.parquet   rows_per_shard rows (the last shard may hold fewer), zstd
    manifest.json               written last: shards with rows, tokens per source and sha256, the mixture,
                                and the plan hash and segment (name, hash) it was packed from

Every shard carries the mixture: a seeded permutation of all rows' source labels decides which source fills
each position, and each source's rows (already in a hash-shuffled document order) fill its positions in
order, so a shard reads a contiguous slice of every source's packed rows. Every file is written atomically
through its ``Location`` (local or object store); ``manifest.json`` goes last, so its presence means complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.core.layout import RunLayout, shard_file_name
from gristmill.core.storage import Location, sha256_file
from gristmill.mixtures.packer import keyed_hash

MANIFEST_FORMAT = "gristmill.shards/1"
# The Parquet key-value metadata key of each shard's tokenizer reference (JSON, as the manifest's "tokenizer").
TOKENIZER_METADATA_KEY = "gristmill.tokenizer"
_INTERLEAVE_STREAM = 0xFFFF_FFFF  # keeps the interleave hash apart from the per-epoch document hashes


@dataclasses.dataclass(frozen=True)
class WriterOptions:
    rows_per_shard: int
    row_group_rows: int
    compression_level: int = 3
    # Parquet key-value metadata of every shard (the tokenizer reference): run-relative, so shards written by
    # any executor, resumed or on an object store stay byte-identical.
    key_value_metadata: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class StagedSource:
    """One source's packed rows: ``pieces`` (a staging Arrow IPC file or the table itself, rows) hold consecutive
    row ranges."""

    source: str
    pieces: tuple[tuple[Location | pa.Table, int], ...]

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.pieces)

    @property
    def in_memory(self) -> bool:
        return any(isinstance(piece, pa.Table) for piece, _ in self.pieces)

    def read(self, start: int, stop: int) -> pa.Table:
        """Rows [start, stop), from the pieces that hold them."""
        tables = []
        offset = 0
        for piece, n in self.pieces:
            lo, hi = max(start, offset), min(stop, offset + n)
            if lo < hi:
                table = piece if isinstance(piece, pa.Table) else piece.read_ipc()
                tables.append(table.slice(lo - offset, hi - lo))
            offset += n
        return pa.concat_tables(tables)

    def window(self, start: int, stop: int) -> tuple["StagedSource", tuple[int, int]]:
        """What a shard needs of rows [start, stop): in memory, only those rows (a shard's task then carries its
        own rows, not the whole source's), numbered from 0; staged files are read by the shard's task itself."""
        if not self.in_memory:
            return self, (start, stop)
        rows = ((self.read(start, stop), stop - start),) if stop > start else ()
        return StagedSource(self.source, rows), (0, stop - start)


@dataclasses.dataclass(frozen=True)
class ShardJob:
    index: int
    labels: np.ndarray  # per position: index into ``sources``
    slices: tuple[tuple[int, int], ...]  # per source: the rows [start, stop) of ``sources`` this shard takes
    sources: tuple[StagedSource, ...]
    layout: RunLayout
    seq_len: int
    options: WriterOptions


def interleave(rows: Mapping[str, int], rows_per_shard: int, seed: int) -> tuple[list[str], list[np.ndarray]]:
    """Source labels of every shard position: a seeded permutation of ``rows[s]`` copies of each source,
    cut into shards of ``rows_per_shard``. Depends only on the counts and the seed."""
    names = sorted(rows)
    labels = np.repeat(np.arange(len(names), dtype=np.int32), [rows[s] for s in names])
    order = np.lexsort((np.arange(len(labels)), keyed_hash(seed, _INTERLEAVE_STREAM, np.arange(len(labels)))))
    labels = labels[order]
    return names, [labels[i : i + rows_per_shard] for i in range(0, len(labels), rows_per_shard)]


def shard_jobs(
    staged: Mapping[str, StagedSource], seed: int, layout: RunLayout, seq_len: int, options: WriterOptions
) -> list[ShardJob]:
    names, per_shard = interleave({s: st.rows for s, st in staged.items()}, options.rows_per_shard, seed)
    sources = tuple(staged[s] for s in names)
    consumed = np.zeros(len(names), dtype=np.int64)
    jobs = []
    for index, labels in enumerate(per_shard):
        counts = np.bincount(labels, minlength=len(names))
        windows = [st.window(int(a), int(a + n)) for st, a, n in zip(sources, consumed, counts)]
        consumed += counts
        jobs.append(ShardJob(index, labels, tuple(s for _, s in windows), tuple(st for st, _ in windows), layout,
                             seq_len, options))
    return jobs


def write_shard_file(table: pa.Table, location: Location, options: WriterOptions) -> pa.Buffer:
    """Write the shard; its bytes, which the manifest's size and checksum come from (reading the file back
    would cost two more requests on an object store)."""
    if options.key_value_metadata:
        table = table.replace_schema_metadata(dict(options.key_value_metadata))
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=options.compression_level,
        row_group_size=options.row_group_rows,
        # Token ids are near-incompressible as a dictionary (vocabularies exceed the dictionary page);
        # plain pages + zstd are smaller and faster (benchmarks/pack.py measures both).
        use_dictionary=["source"],
    )
    data = sink.getvalue()
    location.write_bytes(data)
    return data


def write_shard(job: ShardJob) -> dict[str, Any]:
    """Assemble one shard from its slice of every source, in the interleaved order, and write it."""
    parts, base = [], []
    offset = 0
    for staged, (start, stop) in zip(job.sources, job.slices):
        base.append(offset)
        if stop > start:
            parts.append(staged.read(start, stop))
        offset += stop - start
    take = np.empty(len(job.labels), dtype=np.int64)
    for s in range(len(job.sources)):
        positions = np.flatnonzero(job.labels == s)
        take[positions] = base[s] + np.arange(len(positions))
    table = pa.concat_tables(parts).combine_chunks().take(pa.array(take))
    location = job.layout.shard(job.index)
    data = write_shard_file(table, location, job.options)
    counts = np.bincount(job.labels, minlength=len(job.sources))
    return {
        "path": shard_file_name(job.index),
        "rows": int(len(job.labels)),
        "tokens": int(len(job.labels)) * job.seq_len,
        "tokens_per_source": {
            st.source: int(n) * job.seq_len for st, n in zip(job.sources, counts) if n
        },
        "bytes": data.size,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def write_manifest(manifest: Mapping[str, Any], location: Location) -> None:
    # Key order kept as built (the manifest reads top-down), unlike Location.write_json.
    location.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def remove_stale_shards(layout: RunLayout, keep: int) -> None:
    """Drop shard files a previous, larger run left behind (indexes >= keep) and stray temp files."""
    for file in layout.shards_dir.iterdir():
        name = file.name
        stale_part = name.startswith("part-") and name.endswith(".parquet") and int(name[5:10]) >= keep
        if stale_part or ".tmp-" in name:
            file.delete()


# --- reading back -------------------------------------------------------------------------------------------


class ManifestError(ValueError):
    pass


def load_manifest(run_dir: str | Location) -> dict[str, Any]:
    path = RunLayout(run_dir).manifest
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest (the mixture step has not completed in this run directory)")
    manifest = path.read_json()
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path}: format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    return manifest


def has_shards(run_dir: str | Location) -> bool:
    """A manifest or a shards/ folder: something a packing step wrote (or began to write)."""
    layout = RunLayout(run_dir)
    return layout.manifest.exists() or bool(layout.shards_dir.iterdir())


def check_provenance(manifest: dict[str, Any], plan: Mapping[str, Any]) -> list[str]:
    """The manifest must come from the run directory's current plan: its plan hash, and its segment's hash."""
    problems = []
    if manifest.get("plan_hash") != plan.get("plan_hash"):
        problems.append(f"manifest.json: packed from plan {manifest.get('plan_hash')}, but plan.json is plan "
                        f"{plan.get('plan_hash')}: the shards belong to another plan (rerun the pipeline)")
    segments = {s["name"]: s["hash"] for s in plan.get("segments", [])}
    name = manifest.get("segment")
    if name is not None and segments.get(name) != manifest.get("segment_hash"):
        problems.append(f"manifest.json: packed by segment {name} with hash {manifest.get('segment_hash')}, but "
                        f"plan.json's segment {name} has hash {segments.get(name)}")
    return problems


def verify_shards(run_dir: str | Location, checksums: bool = True, plan: Mapping[str, Any] | None = None) -> list[str]:
    """Problems found comparing ``manifest.json`` with the shard files, and with ``plan`` (the run's
    ``plan.json``) when given (empty list: all consistent)."""
    layout = RunLayout(run_dir)
    try:
        manifest = load_manifest(run_dir)
    except (ManifestError, json.JSONDecodeError) as exc:
        return [str(exc)]
    problems = check_provenance(manifest, plan) if plan is not None else []
    seq_len = manifest["seq_len"]
    listed = set()
    totals: dict[str, int] = {}
    for entry in manifest["shards"]:
        rel = entry["path"]
        listed.add(rel)
        path = layout.file(rel)
        if not path.is_file():
            problems.append(f"{rel}: listed in the manifest but missing")
            continue
        if checksums and sha256_file(path) != entry["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest's {entry['sha256'][:12]}...")
        try:
            pf = path.parquet_file()
        except Exception as exc:  # a damaged file is a finding, not a crash
            problems.append(f"{rel}: not readable as Parquet ({exc})")
            continue
        if pf.metadata.num_rows != entry["rows"]:
            problems.append(f"{rel}: {pf.metadata.num_rows} rows, the manifest says {entry['rows']}")
        problems += _tokenizer_problems(rel, pf, manifest)
        ids_type = pf.schema_arrow.field("input_ids").type
        if not (pa.types.is_fixed_size_list(ids_type) and ids_type.list_size == seq_len):
            problems.append(f"{rel}: input_ids is {ids_type}, expected fixed_size_list<int32>[{seq_len}]")
        sources = pf.read(columns=["source"]).column("source").value_counts().to_pylist()
        found = {d["values"]: d["counts"] * seq_len for d in sources}
        if found != entry["tokens_per_source"]:
            problems.append(f"{rel}: tokens per source {found}, the manifest says {entry['tokens_per_source']}")
        for s, n in found.items():
            totals[s] = totals.get(s, 0) + n
    for s, info in manifest["sources"].items():
        if totals.get(s, 0) != info["tokens"]:
            problems.append(f"source {s}: {totals.get(s, 0):,} tokens in the shards, the manifest says {info['tokens']:,}")
    on_disk = {layout.relative(f) for f in layout.shards_dir.iterdir()}
    for extra in sorted(on_disk - listed):
        problems.append(f"{extra}: in shards/ but not in the manifest")
    return problems


def shard_tokenizer(pf: pq.ParquetFile) -> dict[str, Any] | None:
    """The tokenizer reference in a shard's key-value metadata (None: a shard written without one)."""
    raw = (pf.schema_arrow.metadata or {}).get(TOKENIZER_METADATA_KEY.encode())
    return None if raw is None else json.loads(raw)


def _tokenizer_problems(rel: str, pf: pq.ParquetFile, manifest: Mapping[str, Any]) -> list[str]:
    try:
        ref = shard_tokenizer(pf)
    except json.JSONDecodeError as exc:
        return [f"{rel}: key-value metadata {TOKENIZER_METADATA_KEY!r} is not JSON ({exc})"]
    if ref is not None and ref != manifest.get("tokenizer"):
        return [f"{rel}: its tokenizer reference {ref} differs from the manifest's {manifest.get('tokenizer')}"]
    return []


class ShardReader:
    """Streams rows of the shards in manifest order, resumably.

    ``state_dict()`` is the position of the next row (shard index, row offset within it); a reader built with
    that state yields exactly the rows not yet yielded. Rows come as numpy int32 arrays of ``seq_len``.
    """

    def __init__(self, run_dir: str | Location, state: Mapping[str, int] | None = None, batch_rows: int = 1024):
        self.layout = RunLayout(run_dir)
        self.manifest = load_manifest(self.layout.root)
        self.seq_len = int(self.manifest["seq_len"])
        self.batch_rows = batch_rows
        self.shard = int((state or {}).get("shard", 0))
        self.row = int((state or {}).get("row", 0))
        n = len(self.manifest["shards"])
        if not (0 <= self.shard <= n) or self.row < 0:
            raise ValueError(f"reader state {dict(state or {})} is outside the {n} shards of {run_dir}")

    def state_dict(self) -> dict[str, int]:
        return {"shard": self.shard, "row": self.row}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.shard, self.row = int(state["shard"]), int(state["row"])

    def __len__(self) -> int:
        """Rows left to read."""
        shards = self.manifest["shards"]
        return sum(s["rows"] for s in shards[self.shard :]) - (self.row if self.shard < len(shards) else 0)

    def batches(self) -> Iterator[np.ndarray]:
        """Arrays of shape (n, seq_len), n <= batch_rows; the state advances past each batch as it is yielded."""
        shards = self.manifest["shards"]
        while self.shard < len(shards):
            entry = shards[self.shard]
            pf = self.layout.file(entry["path"]).parquet_file()
            skip = self.row
            for batch in pf.iter_batches(batch_size=self.batch_rows, columns=["input_ids"]):
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                batch = batch.slice(skip)
                skip = 0
                ids = batch.column(0).flatten().to_numpy().reshape(-1, self.seq_len)
                self.row += len(ids)
                yield ids
            self.shard, self.row = self.shard + 1, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for batch in self.batches():
            # The state already points past the batch; step it back so it is exact after every single row.
            self.row -= len(batch)
            for row in batch:
                self.row += 1
                yield row
