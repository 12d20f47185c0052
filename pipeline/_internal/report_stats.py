"""The report's figures as data: derived tables written to ``RUN_DIR/stats/*.parquet`` with DuckDB, so
``gristmill sql RUN`` answers every question the report answers.

Each table is computed from what the run directory holds (the run's statistics under stats/, the committed segment
parts, rejects/, tokenizer/, manifest.json, plan.json); a table whose inputs do not exist is not written, and the
report leaves its section out. Nothing here reads document text row by row in Python: DuckDB scans the Parquet.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core.storage import resolve
from gristmill.pipeline._internal import duck
from gristmill.pipeline.registry import RegistryError, get_stage
from gristmill.pipeline.rundir import RunDir, write_parquet_atomic
from gristmill.pipeline.stats import RunSummary, read_run_summary
from gristmill.stages.base import REJECT_REASON

# Numeric columns drawn as histograms (besides every column a threshold applies to).
SCORE_COLUMN = re.compile(r"^(lang_score|quality_score|q_.+)$")
FLOAT_BINS = 40
# Rejected documents shown per (step, drop reason), the first by doc_id, and the characters shown of each.
SAMPLES_PER_REASON = 3
SAMPLE_CHARS = 240
# Above this many distinct integer values an integer column is binned like a float.
MAX_INTEGER_BINS = 60

# Derived table name (= view name = stats/NAME.parquet) -> what it holds; listed in the report and the README.
TABLES = {
    "funnel": "documents, bytes and (from tokenization on) tokens surviving each step, per source",
    "histograms": "binned quality signals and scores (kept vs dropped rows), per column and source",
    "thresholds": "filter thresholds per column, from the plan's filter and language-ID steps",
    "languages": "documents per detected language, source and status (kept / dropped with reason)",
    "dedup_clusters": "near-duplicate clusters per dedup step and cluster size",
    "tokenizer_sources": "documents, UTF-8 bytes, tokens and bytes per token per source",
    "mixture": "target vs realized mixture per source (manifest.json)",
    "shard_tokens": "tokens per shard and source (manifest.json)",
    "run_facts": "plan hash, versions, executor, wall time, tokenizer facts (key / value)",
    "timeline": "where the run's wall time went: driver phases, global builds, streaming steps (seconds sum to it)",
    "reject_samples": "the first rejected documents (by doc_id) per step and drop reason, text cut short",
}


def _q(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _files(paths: list) -> str:
    return duck.sql_files(paths)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class SegmentInfo:
    name: str
    positions: list[int]
    slugs: list[str]
    parts: list[Path]
    schema: pa.Schema | None


def load_json(path: Path) -> dict[str, Any] | None:
    """A JSON file of the run directory, or None when it is missing or unreadable (the report goes on)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def committed_segments(rd: RunDir, plan: dict | None) -> list[SegmentInfo]:
    """Committed segments in plan order, with the step positions they ran and one part's schema."""
    by_name = {s["name"]: s for s in (plan or {}).get("segments", [])}
    out = []
    for seg_dir in rd.committed_segments():
        parts = rd.segment_parts(seg_dir.name)
        steps = by_name.get(seg_dir.name, {}).get("steps", [])
        positions = [s["position"] for s in steps]
        slugs = [f"{s['position']:02d}-{s['stage_name']}" for s in steps]
        schema = parts[0].read_parquet_schema() if parts else None
        out.append(SegmentInfo(seg_dir.name, positions, slugs, parts, schema))
    return out


def _first_segment_with(segments: list[SegmentInfo], column: str) -> SegmentInfo | None:
    return next((s for s in segments if s.schema is not None and column in s.schema.names), None)


def _reject_files(rd: RunDir, seg: SegmentInfo, columns: list[str]) -> list[Path]:
    """Rejected rows of the segment's own steps whose files carry all ``columns`` (rows rejected before a
    scorer ran have no score and are not part of its distribution)."""
    out = []
    for slug in seg.slugs:
        for f in resolve(rd.rejects_dir(slug)).glob("part-*.parquet"):
            names = f.read_parquet_schema().names
            if all(c in names for c in columns):
                out.append(f)
    return out


def _rows_relation(rd: RunDir, seg: SegmentInfo, columns: list[str]) -> str:
    """SQL over a segment's documents: its kept rows and its rejected rows, with ``status`` and ``reason``."""
    cols = ", ".join(_ident(c) for c in columns)
    sql = (f"SELECT {cols}, source, 'kept' AS status, NULL::VARCHAR AS reason "
           f"FROM {duck.parts_relation(seg.parts)}")
    rejects = _reject_files(rd, seg, columns)
    if rejects:
        sql += (f" UNION ALL SELECT {cols}, source, 'dropped' AS status, {REJECT_REASON} AS reason "
                f"FROM read_parquet({_files(rejects)}, union_by_name = true)")
    return sql


# --- thresholds -----------------------------------------------------------------------------------------------

def thresholds_table(plan: dict | None) -> pa.Table:
    rows = []
    for seg in (plan or {}).get("segments", []):
        for step in seg.get("steps", []):
            params = step.get("params") or {}
            base = {"position": step["position"], "step": step["label"], "stage": step["stage_name"]}
            try:
                thresholds = get_stage(step["stage_name"]).thresholds(params)
            except (RegistryError, ValueError, KeyError, TypeError):  # a plan of stages not installed here
                thresholds = []
            for t in thresholds:
                rows.append({**base, "column": t.column, "op": t.op, "value": t.value, "lang": t.lang})
    schema = pa.schema([("position", pa.int32()), ("step", pa.string()), ("stage", pa.string()),
                        ("column", pa.string()), ("op", pa.string()), ("value", pa.float64()),
                        ("lang", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)


# --- the tables -------------------------------------------------------------------------------------------------

def _step_tokens(con, segments: list[SegmentInfo], manifest: dict | None,
                 plan: dict | None) -> dict[tuple[int, str], int]:
    """{(funnel ordinal, source): tokens} for the steps whose output has a token count: the last step of each
    segment holding ``n_tokens``, and the mixture step (the tokens it packed, from manifest.json)."""
    out: dict[tuple[int, str], int] = {}
    for seg in segments:
        if seg.schema is not None and "n_tokens" in seg.schema.names and seg.positions and seg.parts:
            for source, tokens in con.execute(f"""SELECT source, sum(n_tokens)::BIGINT FROM
                                                  {duck.parts_relation(seg.parts)} GROUP BY 1""").fetchall():
                out[(seg.positions[-1] + 1, source)] = int(tokens or 0)
    packed_by = next((s for s in (plan or {}).get("segments", []) if s["name"] == (manifest or {}).get("segment")),
                     None)
    if packed_by and packed_by.get("steps"):
        for source, info in (manifest.get("sources") or {}).items():
            out[(packed_by["steps"][0]["position"] + 1, source)] = int(info.get("tokens") or 0)
    return out


def _with_step_tokens(table: pa.Table, tokens: dict[tuple[int, str], int]) -> pa.Table:
    if not tokens:
        return table
    values = [tokens.get((o, s)) for o, s in zip(table["ordinal"].to_pylist(), table["source"].to_pylist())]
    index = table.schema.get_field_index("tokens")
    return table.set_column(index, "tokens", pa.array(values, pa.int64()))


def funnel_table(con: duckdb.DuckDBPyConnection, rd: RunDir, manifest: dict | None, segments: list[SegmentInfo],
                 plan: dict | None) -> pa.Table | None:
    """Records read, then what survives each step (documents, text bytes, and tokens once counted), then the
    tokens in the shards."""
    stages = rd.stats_dir / "stages.parquet"
    if not stages.exists():
        return None
    table = con.sql(f"""
        SELECT 0 AS ordinal, 'input' AS step, 'records read' AS stage, source,
               sum(rows_in)::BIGINT AS documents, sum(bytes_in)::BIGINT AS bytes, NULL::BIGINT AS tokens
        FROM read_parquet({duck.sql_file(stages)}) WHERE position = 0 GROUP BY ALL
        UNION ALL
        SELECT position + 1, step, stage, source, sum(rows_out)::BIGINT, sum(bytes_out)::BIGINT, NULL
        FROM read_parquet({duck.sql_file(stages)}) GROUP BY ALL
        ORDER BY ordinal, source""").arrow()
    table = table.read_all() if hasattr(table, "read_all") else table
    table = _with_step_tokens(table, _step_tokens(con, segments, manifest, plan))
    if manifest and manifest.get("sources"):
        last = max(table["ordinal"].to_pylist(), default=0) + 1
        extra = [{"ordinal": last, "step": "shards", "stage": "shard tokens", "source": s,
                  "documents": None, "bytes": None, "tokens": int(info.get("tokens", 0))}
                 for s, info in sorted(manifest["sources"].items())]
        table = pa.concat_tables([table, pa.Table.from_pylist(extra, schema=table.schema)])
    return table


def _arrow(rel) -> pa.Table:
    out = rel.arrow()
    return out.read_all() if hasattr(out, "read_all") else out


def _histogram_columns(seg: SegmentInfo, threshold_cols: set[str]) -> list[str]:
    out = []
    for field in seg.schema:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        if numeric and (SCORE_COLUMN.match(field.name) or field.name in threshold_cols):
            out.append(field.name)
    return out


def histograms_table(con, rd: RunDir, segments: list[SegmentInfo], thresholds: pa.Table) -> pa.Table | None:
    """One pass for the bin ranges, one pass for the counts, per segment holding the columns. A column's range
    spans its thresholds; a long upper tail (max far above the 99th percentile) is folded into the last bin."""
    threshold_values: dict[str, list[float]] = {}
    for row in thresholds.to_pylist():
        threshold_values.setdefault(row["column"], []).append(row["value"])
    by_segment: dict[str, tuple[SegmentInfo, list[str]]] = {}
    seen: set[str] = set()
    for seg in segments:
        if seg.schema is None:
            continue
        cols = [c for c in _histogram_columns(seg, set(threshold_values)) if c not in seen]
        if cols:
            seen.update(cols)
            by_segment[seg.name] = (seg, cols)
    tables = []
    for seg, cols in by_segment.values():
        tables += _histograms_of_segment(con, rd, seg, cols, threshold_values)
    return pa.concat_tables(tables) if tables else None


def _bins(lo, hi, p99, integer: bool, thresholds: list[float]) -> tuple[float, float, int]:
    if hi > lo and p99 is not None and p99 > lo and hi - lo > 4 * (p99 - lo):
        hi = p99  # a long tail: the last bin collects everything above
    lo = min([lo, *thresholds])
    hi = max([hi, *thresholds])
    if integer and hi - lo + 1 <= MAX_INTEGER_BINS:
        return lo - 0.5, 1.0, int(hi - lo + 1)
    if hi <= lo:
        return lo - 0.5, 1.0, 1
    return lo, (hi - lo) / FLOAT_BINS, FLOAT_BINS


def _histograms_of_segment(con, rd: RunDir, seg: SegmentInfo, cols: list[str],
                           threshold_values: dict[str, list[float]]) -> list[pa.Table]:
    # Rejected rows only count where they carry every column; otherwise score each column separately.
    relation = _rows_relation(rd, seg, cols)
    ranges = con.execute(
        "SELECT " + ", ".join(
            f"min({_ident(c)})::DOUBLE, max({_ident(c)})::DOUBLE, quantile_cont({_ident(c)}, 0.99)::DOUBLE"
            for c in cols) + f" FROM ({relation})").fetchone()
    types = {f.name: f.type for f in seg.schema}
    specs = []
    for i, c in enumerate(cols):
        lo, hi, p99 = ranges[3 * i: 3 * i + 3]
        if lo is None or not math.isfinite(lo) or not math.isfinite(hi):
            continue
        start, width, nbins = _bins(lo, hi, p99, pa.types.is_integer(types[c]), threshold_values.get(c, []))
        specs.append((c, start, width, nbins))
    if not specs:
        return []
    con.execute("CREATE OR REPLACE TEMP TABLE _bins (col VARCHAR, start DOUBLE, width DOUBLE, nbins INTEGER)")
    con.executemany("INSERT INTO _bins VALUES (?, ?, ?, ?)", specs)
    unpivot = " UNION ALL ".join(
        f"SELECT {_q(c)} AS col, {_ident(c)}::DOUBLE AS v, source, status, reason FROM rel" for c, *_ in specs)
    table = _arrow(con.sql(f"""
        WITH rel AS ({relation}), vals AS ({unpivot})
        SELECT col AS "column", {_q(seg.name)} AS segment, source, status,
               least(greatest(floor((v - start) / width), 0), nbins - 1)::INTEGER AS bin,
               any_value(start) AS start, any_value(width) AS width, count(*)::BIGINT AS documents
        FROM vals JOIN _bins USING (col) WHERE v IS NOT NULL AND isfinite(v)
        GROUP BY ALL ORDER BY "column", bin, source, status"""))
    start, width = table["start"].cast(pa.float64()), table["width"].cast(pa.float64())
    lo = pc.add(start, pc.multiply(table["bin"].cast(pa.float64()), width))
    hi = pc.add(lo, width)
    table = table.drop_columns(["start", "width"]).append_column("bin_lo", lo).append_column("bin_hi", hi)
    return [table]


def languages_table(con, rd: RunDir, segments: list[SegmentInfo]) -> pa.Table | None:
    seg = _first_segment_with(segments, "lang")
    if seg is None:
        return None
    return _arrow(con.sql(f"""
        SELECT coalesce(lang, '(none)') AS lang, source, status, reason, count(*)::BIGINT AS documents,
               {_q(seg.name)} AS segment
        FROM ({_rows_relation(rd, seg, ['lang'])}) GROUP BY ALL ORDER BY documents DESC, lang, source"""))


def dedup_clusters_table(con, rd: RunDir) -> pa.Table | None:
    """Near-duplicate clusters by size per dedup step, from the ``cluster_size`` histograms the steps recorded
    (stats/global.parquet): a cluster is a kept document with the documents removed as its near duplicates."""
    path = rd.stats_dir / "global.parquet"
    if not path.exists():
        return None
    table = _arrow(con.sql(f"""
        SELECT printf('%02d-', position) || stage AS dedup_step, bucket::BIGINT AS cluster_size,
               value::BIGINT AS clusters, (bucket * value)::BIGINT AS documents,
               ((bucket - 1) * value)::BIGINT AS removed
        FROM read_parquet({duck.sql_file(path)})
        WHERE kind = 'histogram' AND name = 'cluster_size' AND stage LIKE 'dedup.%'
        ORDER BY position, cluster_size"""))
    return table if table.num_rows else None


def tokenizer_sources_table(con, rd: RunDir, segments: list[SegmentInfo]) -> pa.Table | None:
    """Bytes per token per source over the first segment that holds token counts (``n_tokens``)."""
    seg = _first_segment_with(segments, "n_tokens")
    if seg is None or "text" not in seg.schema.names:
        return None
    return _arrow(con.sql(f"""
        SELECT source, count(*)::BIGINT AS documents, sum(strlen(text))::BIGINT AS bytes,
               sum(n_tokens)::BIGINT AS tokens, sum(strlen(text)) / nullif(sum(n_tokens), 0) AS bytes_per_token,
               {_q(seg.name)} AS segment
        FROM {duck.parts_relation(seg.parts)} GROUP BY source ORDER BY source"""))


def mixture_table(manifest: dict | None) -> pa.Table | None:
    sources = (manifest or {}).get("sources")
    if not isinstance(sources, dict) or not sources:
        return None
    rows = []
    for s, info in sorted(sources.items()):
        rows.append({
            "source": s, "target_share": info.get("target_share"), "realized_share": info.get("realized_share"),
            "target_tokens": info.get("target_tokens"), "tokens": info.get("tokens"), "rows": info.get("rows"),
            "available_tokens": info.get("available_tokens"), "epochs": info.get("epochs"),
            "max_epochs": info.get("max_epochs"),
        })
    schema = pa.schema([("source", pa.string()), ("target_share", pa.float64()), ("realized_share", pa.float64()),
                        ("target_tokens", pa.int64()), ("tokens", pa.int64()), ("rows", pa.int64()),
                        ("available_tokens", pa.int64()), ("epochs", pa.float64()), ("max_epochs", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


def shard_tokens_table(manifest: dict | None) -> pa.Table | None:
    shards = (manifest or {}).get("shards")
    if not isinstance(shards, list) or not shards:
        return None
    rows = []
    for i, entry in enumerate(shards):
        for source, tokens in sorted((entry.get("tokens_per_source") or {}).items()):
            rows.append({"shard": i, "path": entry.get("path"), "source": source, "tokens": int(tokens),
                         "shard_rows": entry.get("rows"), "shard_bytes": entry.get("bytes")})
    schema = pa.schema([("shard", pa.int32()), ("path", pa.string()), ("source", pa.string()),
                        ("tokens", pa.int64()), ("shard_rows", pa.int64()), ("shard_bytes", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema)


def run_facts_table(plan: dict | None, summary: RunSummary | None, tokenizer_meta: dict | None,
                    manifest: dict | None) -> pa.Table:
    facts: list[tuple[str, Any]] = []
    if plan:
        pipeline = plan.get("pipeline") or {}
        facts += [("pipeline", pipeline.get("name")), ("plan_hash", plan.get("plan_hash")),
                  ("seed", pipeline.get("seed")), ("input_files", len(plan.get("input_files") or [])),
                  ("input_bytes", sum(f.get("bytes", 0) for f in plan.get("input_files") or [])),
                  ("ingest_units", plan.get("units"))]
    if summary:
        facts += [("executor", summary.executor), ("wall_seconds", summary.wall_seconds),
                  ("workers", summary.workers),
                  ("segments_computed", ", ".join(summary.segments_computed or [])),
                  ("segments_skipped", ", ".join(summary.segments_skipped or []))]
    if plan:
        facts += [(f"version.{k}", v) for k, v in sorted((plan.get("versions") or {}).items())]
    if tokenizer_meta:
        sample = tokenizer_meta.get("sample") or {}
        facts += [("tokenizer.vocab_size", tokenizer_meta.get("vocab_size")),
                  ("tokenizer.vocab_size_requested", tokenizer_meta.get("vocab_size_requested")),
                  ("tokenizer.special_tokens", ", ".join(tokenizer_meta.get("special_tokens") or {})),
                  ("tokenizer.sample_bytes", sample.get("bytes")),
                  ("tokenizer.sample_documents", sample.get("documents")),
                  ("tokenizer.training_seconds", tokenizer_meta.get("training_seconds")),
                  ("tokenizer.sha256", tokenizer_meta.get("tokenizer_sha256"))]
    if manifest:
        mix = manifest.get("mixture") or {}
        facts += [("shards.count", len(manifest.get("shards") or [])), ("shards.seq_len", manifest.get("seq_len")),
                  ("shards.rows", manifest.get("rows")), ("shards.tokens", manifest.get("tokens")),
                  ("mixture.name", mix.get("name")), ("mixture.max_share_error", mix.get("max_share_error"))]
    rows = [{"key": k, "value": None if v is None or v == "" else str(round(v, 3) if isinstance(v, float) else v)}
            for k, v in facts]
    return pa.Table.from_pylist(rows, schema=pa.schema([("key", pa.string()), ("value", pa.string())]))


TIMELINE_SCHEMA = pa.schema([
    ("ordinal", pa.int32()), ("phase", pa.string()), ("kind", pa.string()), ("segment", pa.string()),
    ("step", pa.string()), ("stage", pa.string()), ("seconds", pa.float64()), ("worker_seconds", pa.float64()),
])


def timeline_table(summary: RunSummary | None) -> pa.Table | None:
    rows = summary.timeline if summary else None
    if not isinstance(rows, list) or not rows:
        return None
    return pa.Table.from_pylist(
        [{**{f: row.get(f) for f in TIMELINE_SCHEMA.names}, "ordinal": i} for i, row in enumerate(rows)],
        schema=TIMELINE_SCHEMA)


def reject_samples_table(con, rd: RunDir, plan: dict | None) -> pa.Table | None:
    """Per step (in plan order) and drop reason, the first ``SAMPLES_PER_REASON`` rejected documents by doc_id:
    their source, URL (or origin), length in characters and the first ``SAMPLE_CHARS`` characters of their text."""
    tables = []
    for step in (s for seg in (plan or {}).get("segments", []) for s in seg.get("steps", [])):
        slug = f"{step['position']:02d}-{step['stage_name']}"
        files = [f for f in resolve(rd.rejects_dir(slug)).glob("part-*.parquet")
                 if {"doc_id", "text", REJECT_REASON} <= set(f.read_parquet_schema().names)]
        if not files:
            continue
        names = set().union(*(f.read_parquet_schema().names for f in files))
        where = [c for c in ("url", "origin") if c in names]  # where an empty document came from
        origin = f"coalesce({', '.join(where)})" if where else "NULL::VARCHAR"
        tables.append(_arrow(con.sql(f"""
            SELECT {step['position']}::INTEGER AS position, {_q(step['label'])} AS step,
                   {_q(step['stage_name'])} AS stage, reason, rank::INTEGER AS rank, doc_id, source, origin,
                   coalesce(length(text), 0)::BIGINT AS chars, left(coalesce(text, ''), {SAMPLE_CHARS}) AS sample
            FROM (SELECT {REJECT_REASON} AS reason, doc_id, source, text, {origin}::VARCHAR AS origin,
                         row_number() OVER (PARTITION BY {REJECT_REASON} ORDER BY doc_id) AS rank
                  FROM read_parquet({_files(files)}, union_by_name = true))
            WHERE rank <= {SAMPLES_PER_REASON} ORDER BY reason, rank""")))
    return pa.concat_tables(tables) if tables else None


# --- driver -----------------------------------------------------------------------------------------------------

def compute_report_stats(run_dir: str | Path) -> dict[str, Path]:
    """Write every derived table the run directory has data for; return {table name: path}. Tables whose
    data is gone since the last report are removed, so stale figures never outlive their inputs."""
    rd = RunDir(run_dir)
    if not rd.root.is_dir():
        raise FileNotFoundError(f"{rd.root}: no such run directory")
    plan = load_json(rd.plan_path)
    manifest = load_json(rd.root / "manifest.json")
    segments = committed_segments(rd, plan)
    con = duck.connect(rd.root)
    thresholds = thresholds_table(plan)
    tables: dict[str, pa.Table | None] = {
        "funnel": funnel_table(con, rd, manifest, segments, plan),
        "thresholds": thresholds if thresholds.num_rows else None,
        "histograms": histograms_table(con, rd, segments, thresholds),
        "languages": languages_table(con, rd, segments),
        "dedup_clusters": dedup_clusters_table(con, rd),
        "tokenizer_sources": tokenizer_sources_table(con, rd, segments),
        "mixture": mixture_table(manifest),
        "shard_tokens": shard_tokens_table(manifest),
        "reject_samples": reject_samples_table(con, rd, plan),
        **run_tables(rd, plan, manifest),
    }
    return _write_tables(rd, tables)


def run_tables(rd: RunDir, plan: dict | None, manifest: dict | None) -> dict[str, pa.Table | None]:
    """The tables drawn from stats.json (the run's facts and timeline)."""
    summary = read_run_summary(rd.stats_dir)
    return {
        "run_facts": run_facts_table(plan, summary, load_json(rd.root / "tokenizer" / "tokenizer_meta.json"),
                                     manifest),
        "timeline": timeline_table(summary),
    }


def write_run_tables(run_dir: str | Path) -> dict[str, Path]:
    """Rewrite stats/run_facts.parquet and stats/timeline.parquet from stats.json (after the run's final
    timeline is recorded)."""
    rd = RunDir(run_dir)
    return _write_tables(rd, run_tables(rd, load_json(rd.plan_path), load_json(rd.root / "manifest.json")))


def _write_tables(rd: RunDir, tables: dict[str, pa.Table | None]) -> dict[str, Path]:
    written = {}
    for name, table in tables.items():
        path = rd.stats_dir / f"{name}.parquet"
        if table is None:
            resolve(path).delete()
            continue
        write_parquet_atomic(path, table)
        written[name] = path
    return written


def create_views(con: duckdb.DuckDBPyConnection, run_dir: str | Path) -> list[str]:
    """Views over the derived tables that exist (the same names ``gristmill.pipeline.inspection.connect`` creates)."""
    stats_dir = RunDir(run_dir).stats_dir
    made = []
    for name in TABLES:
        path = stats_dir / f"{name}.parquet"
        if path.exists():
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({duck.sql_file(path)})")
            made.append(name)
    return made
