"""What the ``gristmill`` CLI shows about shards: a summary, one row decoded, verification, a DuckDB view.

Each function returns text (or problems) so the CLI only prints; all read ``RUN_DIR/manifest.json`` first.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core.layout import RunLayout, part_of_file_name
from gristmill.core.parts import SegmentPart
from gristmill.core.storage import Location, is_absolute, resolve
from gristmill.mixtures import shards
from gristmill.pipeline._internal.duck import sql_files
from gristmill.pipeline.rundir import RunDir
from gristmill.stages.base import require


def inspect_shards(run_dir: str) -> str:
    """Realized vs target mixture, epochs per source, tokens per shard, bytes on disk per token."""
    m = shards.load_manifest(run_dir)
    mix = m["mixture"]
    lines = [
        f"run {run_dir}: {len(m['shards'])} shards, {m['rows']:,} rows x seq_len {m['seq_len']} = "
        f"{m['tokens']:,} tokens; seed {m['seed']}; plan {m.get('plan_hash') or '-'}",
        f"tokenizer {m['tokenizer']['path']} sha256 {m['tokenizer']['sha256'][:16]}...",
        f"mixture {mix['name'] or '(own ratios)'}: total tokens requested "
        f"{_num(mix['total_tokens_requested'])}, solved {mix['total_tokens_solved']:,}; "
        f"max |realized - target| = {mix['max_share_error'] * 100:.3f} pp",
        "",
        f"{'source':<16}{'target':>9}{'realized':>10}{'tokens':>15}{'epochs':>9}{'max_ep':>8}"
        f"{'available':>15}{'padding':>9}",
    ]
    for s, info in m["sources"].items():
        lines.append(
            f"{s:<16}{info['target_share'] * 100:>8.2f}%{info['realized_share'] * 100:>9.2f}%"
            f"{info['tokens']:>15,}{info['epochs']:>9.3f}{info['max_epochs']:>8g}"
            f"{info['available_tokens']:>15,}{info['padding_tokens']:>9,}"
        )
    for s, n in m.get("unused_sources", {}).items():
        lines.append(f"{s:<16}{'-':>9}{'-':>10}{0:>15,}  (not in the mixture: {n:,} tokens left out)")
    per_shard = np.array([e["tokens"] for e in m["shards"]]) if m["shards"] else np.zeros(1)
    size = sum(e["bytes"] for e in m["shards"])
    lines += [
        "",
        f"tokens per shard: min {per_shard.min():,.0f}, mean {per_shard.mean():,.0f}, max {per_shard.max():,.0f}",
        f"on disk: {size:,} bytes, {size / max(m['tokens'], 1):.3f} bytes per token",
    ]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return "as many as max_epochs allow" if value is None else f"{value:,}"


def verify(run_dir: str, plan: dict | None = None) -> list[str]:
    """Problems between the manifest and the shards (counts, checksums, schema), and between the manifest and
    ``plan`` (the run's ``plan.json``: the plan and segment hashes it was packed from); empty when consistent."""
    return shards.verify_shards(run_dir, plan=plan)


def has_shards(run_dir: str) -> bool:
    return shards.has_shards(run_dir)


def shards_view_sql(run_dir: str, manifest: dict[str, Any] | None = None) -> str:
    """``CREATE VIEW shards`` over the manifest's shards, in manifest order, with each row's file (``manifest``:
    the run's, when the caller has read it already)."""
    layout = RunLayout(run_dir)
    m = manifest if manifest is not None else shards.load_manifest(layout.root)
    paths = sql_files([layout.file(e["path"]) for e in m["shards"]])
    return f"CREATE OR REPLACE VIEW shards AS SELECT * FROM read_parquet({paths}, filename = true, file_row_number = true)"


def locate_row(manifest: dict[str, Any], row: int) -> tuple[dict[str, Any], int]:
    """Global row number (manifest order) -> (shard entry, row within it)."""
    bounds = np.cumsum([0] + [e["rows"] for e in manifest["shards"]])
    if not 0 <= row < bounds[-1]:
        raise IndexError(f"row {row} is out of range: the shards hold rows 0..{bounds[-1] - 1}")
    i = int(np.searchsorted(bounds, row, side="right")) - 1
    return manifest["shards"][i], row - int(bounds[i])


def read_row(run_dir: str, entry: dict[str, Any], offset: int) -> dict[str, Any]:
    pf = RunLayout(run_dir).file(entry["path"]).parquet_file()
    sizes = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
    group = int(np.searchsorted(sizes, offset, side="right")) - 1
    return pf.read_row_group(group).slice(offset - int(sizes[group]), 1).to_pylist()[0]


def document_origins(run_dir: str, manifest: dict[str, Any], doc_ids: list[int]) -> dict[int, dict]:
    """origin and url of documents, from the mixture step's input parts (or the last segment holding them)."""
    rd = RunDir(run_dir)
    layout = RunLayout(rd.root)
    inputs = [resolve(p) if is_absolute(p) else layout.file(p) for p in manifest.get("inputs", [])]
    candidates = [_as_segment_parts(inputs)]
    for segment in reversed(rd.committed_segments()):
        candidates.append(rd.segment_parts(segment.name))
    for parts in candidates:
        found = _origins_in(parts, sorted(set(doc_ids)))
        if found:
            return found
    return {}


def _as_segment_parts(files: list[Location]) -> list[SegmentPart]:
    """Part files a manifest lists, as the parts of their (possibly another run's) committed segment, so that
    columns stored in earlier segments are found; a file outside a committed segment is read as it is."""
    out = []
    by_segment: dict[str, dict[str, SegmentPart]] = {}
    for loc in files:
        segment = loc.parent
        if segment.uri not in by_segment:
            other = RunDir(segment.parent.parent)
            marker = other.marker(segment.name) if segment.parent.name == "segments" else None
            by_segment[segment.uri] = {p.path: p for p in other.segment_parts(segment.name, marker)} if marker else {}
        part = by_segment[segment.uri].get(loc.path)
        if part is None and loc.is_file():
            part = SegmentPart(loc, part_of_file_name(loc.name), None, None)
        if part is not None:
            out.append(part)
    return out


def _origins_in(parts: list[SegmentPart], wanted: list[int]) -> dict[int, dict]:
    """Only the doc_id column of each part is read to find the wanted documents, then their origins."""
    wanted_ids = pa.array(wanted, pa.uint64())
    found: dict[int, dict] = {}
    for part in parts:
        names = part.read_parquet_schema().names
        if not {"doc_id", "origin"} <= set(names):
            return {}
        if not pc.any(pc.is_in(part.read_parquet(["doc_id"])["doc_id"], wanted_ids)).as_py():
            continue
        table = part.read_parquet(["doc_id", "origin"] + (["url"] if "url" in names else []))
        table = table.filter(pc.is_in(table["doc_id"], wanted_ids))
        found.update({r["doc_id"]: r for r in table.to_pylist()})
    return found


def show_row(run_dir: str, row: int) -> str:
    """One packed row decoded back to text, split at its document boundaries, each with its origin."""
    tokenizers = require("tokenizers", "tokenize")
    m = shards.load_manifest(run_dir)
    entry, offset = locate_row(m, row)
    record = read_row(run_dir, entry, offset)
    tok_path = RunLayout(run_dir).file(m["tokenizer"]["path"])
    spec = tok_path.read_bytes()
    tok = tokenizers.Tokenizer.from_str(spec.decode("utf-8"))
    warning = ""
    if hashlib.sha256(spec).hexdigest() != m["tokenizer"]["sha256"]:
        warning = f"\nWARNING: {tok_path} is not the tokenizer the shards were made with (sha256 differs)"
    ids = record["input_ids"]
    starts = record["doc_offsets"] + [len(ids)]
    origins = document_origins(run_dir, m, record["doc_ids"])
    out = [
        f"row {row} ({entry['path']} row {offset}): source {record['source']}, {len(ids)} tokens, "
        f"{len(record['doc_ids'])} document(s){warning}"
    ]
    for i, doc_id in enumerate(record["doc_ids"]):
        info = origins.get(doc_id, {})
        where = f"origin {info.get('origin', '?')}" + (f" url {info['url']}" if info.get("url") else "")
        out.append(f"--- doc_id {doc_id} at token {starts[i]} ({where})")
        out.append(tok.decode(ids[starts[i] : starts[i + 1]], skip_special_tokens=False))
    return "\n".join(out)
