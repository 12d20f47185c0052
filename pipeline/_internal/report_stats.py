"""The report's figures as data: derived tables written to ``RUN_DIR/stats/*.parquet`` with DuckDB, so
``gristmill sql RUN`` answers every question the report answers.

Each table is computed from what the run directory holds (the run's statistics under stats/, the committed segment
parts, rejects/, tokenizer/, manifest.json, plan.json); a table whose inputs do not exist is not written, and the
report leaves its section out. Nothing here reads document text row by row in Python: DuckDB scans the Parquet.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core.layout import SUCCESS
from gristmill.core.storage import KnownFile, Location, resolve
from gristmill.pipeline._internal import duck
from gristmill.pipeline.registry import RegistryError, get_stage
from gristmill.pipeline.rundir import PART_HASH, RunDir, atomic_write_bytes, parquet_bytes
from gristmill.pipeline.stats import RunSummary, run_summary_of
from gristmill.stages.base import REJECT_REASON

TOKENIZER_STAGE = "tokenizer.train_bbpe_v1"
PACK_STAGE = "mixture.pack_v1"
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
    "mixture": "target vs realized mixture per source (the packing step's statistics, global_stats)",
    "shard_tokens": "tokens per shard and source (manifest.json)",
    "run_facts": "plan hash, versions, executor, wall time, tokenizer, mixture and shard facts (key / value)",
    "timeline": "where the run's wall time went: driver phases, global builds, streaming steps (seconds sum to it)",
    "reject_samples": "the first rejected documents (by doc_id) per step and drop reason, text cut short",
}


def _q(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _files(paths: list) -> str:
    return duck.sql_files(paths)


@dataclass
class SegmentInfo:
    name: str
    positions: list[int]
    slugs: list[str]
    parts: list[Path]
    schema: pa.Schema | None


def committed_segment_parts(files: duck.RunFiles, rd: RunDir) -> list[tuple[str, list[Location]]]:
    """(name, parts its ``_SUCCESS`` lists) of each committed segment, in name (= plan) order; a part's files are
    ``KnownFile``s where a marker lists them (its own, or the earlier segment's holding a column)."""
    out = []
    markers = files.glob(rd.segments_root, f"*/{SUCCESS}")
    files.prefetch(markers)
    read: dict[str, dict] = {}
    for marker_path in markers:
        marker = files.read_json(marker_path)
        if marker is not None:
            name = marker_path.parent.name
            read[name] = marker
            out.append((name, rd.segment_parts(name, marker, read)))
    return out


def part_schema(files: duck.RunFiles, part: Location) -> pa.Schema:
    """A part's whole schema from the footers of the files holding its columns (``SegmentPart``), each fetched
    once through ``files``."""
    column_files = getattr(part, "column_files", None)
    if column_files is None:
        return files.read_schema(part)
    fields = {}
    for loc in part.files():
        schema = files.read_schema(loc)
        for name, holder in column_files:
            if holder == loc and name in schema.names:
                fields[name] = schema.field(name)
    return pa.schema([fields[c] for c, _ in column_files])


def committed_segments(files: duck.RunFiles, rd: RunDir, plan: dict | None) -> list[SegmentInfo]:
    """Committed segments in plan order, with the step positions they ran and one part's schema."""
    by_name = {s["name"]: s for s in (plan or {}).get("segments", [])}
    out = []
    committed = committed_segment_parts(files, rd)
    files.prefetch([f for _, parts in committed for f in _part_files(parts[:1])])  # their schemas, below
    for name, parts in committed:
        steps = by_name.get(name, {}).get("steps", [])
        positions = [s["position"] for s in steps]
        slugs = [f"{s['position']:02d}-{s['stage_name']}" for s in steps]
        schema = part_schema(files, parts[0]) if parts else None
        out.append(SegmentInfo(name, positions, slugs, parts, schema))
    return out


@dataclass
class GlobalFigures:
    """The counts and figures a global step's build recorded (stats/global.parquet): its own and per source."""

    position: int
    step: dict[str, float]
    sources: dict[str, dict[str, float]]


def global_figures(files: duck.RunFiles, rd: RunDir) -> dict[str, GlobalFigures]:
    """{stage name: its last step's counts and figures} from stats/global.parquet (empty without one)."""
    path = rd.stats_dir / "global.parquet"
    if not files.exists(path):
        return {}
    # global.parquet of an older gristmill has no per-source rows
    source = "source" if "source" in files.read_schema(path).names else "NULL::VARCHAR AS source"
    rows = files.con.execute(f"""
        SELECT stage, position, name, value, {source} FROM read_parquet({duck.sql_file(path)})
        WHERE kind <> 'histogram' ORDER BY position""").fetchall()
    out: dict[str, GlobalFigures] = {}
    for stage, position, name, value, source_name in rows:
        if stage not in out or out[stage].position != position:
            out[stage] = GlobalFigures(position, {}, {})  # a later step of the same stage replaces it
        figures = out[stage].step if source_name is None else out[stage].sources.setdefault(source_name, {})
        figures[name] = value
    return out


def _part_files(parts: list[Location]) -> list[Location]:
    """Every file the parts are read from (a ``SegmentPart`` reads each column where it is stored)."""
    return [f for p in parts for f in (p.files() if hasattr(p, "files") else [p])]


def _parts_sql(files: duck.RunFiles, parts: list[Location]) -> str:
    """``duck.parts_relation`` over ``parts``, whose files are fetched first, together."""
    files.prefetch(_part_files(parts))
    return duck.parts_relation(parts)


def _first_segment_with(segments: list[SegmentInfo], column: str) -> SegmentInfo | None:
    return next((s for s in segments if s.schema is not None and column in s.schema.names), None)


def _reject_files(files: duck.RunFiles, rd: RunDir, seg: SegmentInfo, columns: list[str]) -> list[Location]:
    """Rejected rows of the segment's own steps whose files carry all ``columns`` (rows rejected before a
    scorer ran have no score and are not part of its distribution)."""
    out = []
    for slug in seg.slugs:
        for f in files.glob(rd.rejects_dir(slug), "part-*.parquet"):
            names = files.read_schema(f).names
            if all(c in names for c in columns):
                out.append(f)
    return out


def _rows_relation(files: duck.RunFiles, rd: RunDir, seg: SegmentInfo, columns: list[str]) -> str:
    """SQL over a segment's documents: its kept rows and its rejected rows, with ``status`` and ``reason``."""
    cols = ", ".join(duck.sql_ident(c) for c in columns)
    sql = (f"SELECT {cols}, source, 'kept' AS status, NULL::VARCHAR AS reason "
           f"FROM {_parts_sql(files, seg.parts)}")
    rejects = _reject_files(files, rd, seg, columns)
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

def _step_tokens(files: duck.RunFiles, segments: list[SegmentInfo], packing: GlobalFigures | None
                 ) -> dict[tuple[int, str], int]:
    """{(funnel ordinal, source): tokens} for the steps whose output has a token count: the last step of each
    segment holding ``n_tokens``, and the mixture step (the tokens it packed, from its statistics)."""
    out: dict[tuple[int, str], int] = {}
    for seg in segments:
        if seg.schema is not None and "n_tokens" in seg.schema.names and seg.positions and seg.parts:
            for source, tokens in files.con.execute(f"""SELECT source, sum(n_tokens)::BIGINT FROM
                                                        {_parts_sql(files, seg.parts)} GROUP BY 1""").fetchall():
                out[(seg.positions[-1] + 1, source)] = int(tokens or 0)
    if packing is not None:
        for source, figures in packing.sources.items():
            out[(packing.position + 1, source)] = int(figures.get("tokens_out", 0))
    return out


def _with_step_tokens(table: pa.Table, tokens: dict[tuple[int, str], int]) -> pa.Table:
    if not tokens:
        return table
    values = [tokens.get((o, s)) for o, s in zip(table["ordinal"].to_pylist(), table["source"].to_pylist())]
    index = table.schema.get_field_index("tokens")
    return table.set_column(index, "tokens", pa.array(values, pa.int64()))


def funnel_table(files: duck.RunFiles, rd: RunDir, manifest: dict | None, segments: list[SegmentInfo],
                 packing: GlobalFigures | None) -> pa.Table | None:
    """Records read, then what survives each step (documents, text bytes, and tokens once counted), then the
    tokens in the shards."""
    stages = rd.stats_dir / "stages.parquet"
    if not files.exists(stages):
        return None
    con = files.con
    table = con.sql(f"""
        SELECT 0 AS ordinal, 'input' AS step, 'records read' AS stage, source,
               sum(rows_in)::BIGINT AS documents, sum(bytes_in)::BIGINT AS bytes, NULL::BIGINT AS tokens
        FROM read_parquet({duck.sql_file(stages)}) WHERE position = 0 GROUP BY ALL
        UNION ALL
        SELECT position + 1, step, stage, source, sum(rows_out)::BIGINT, sum(bytes_out)::BIGINT, NULL
        FROM read_parquet({duck.sql_file(stages)}) GROUP BY ALL
        ORDER BY ordinal, source""").arrow()
    table = table.read_all() if hasattr(table, "read_all") else table
    table = _with_step_tokens(table, _step_tokens(files, segments, packing))
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


def histograms_table(files: duck.RunFiles, rd: RunDir, segments: list[SegmentInfo],
                     thresholds: pa.Table) -> pa.Table | None:
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
        tables += _histograms_of_segment(files, rd, seg, cols, threshold_values)
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


def _histograms_of_segment(files: duck.RunFiles, rd: RunDir, seg: SegmentInfo, cols: list[str],
                           threshold_values: dict[str, list[float]]) -> list[pa.Table]:
    # Rejected rows only count where they carry every column; otherwise score each column separately.
    con = files.con
    relation = _rows_relation(files, rd, seg, cols)
    quoted = [duck.sql_ident(c) for c in cols]
    ranges = con.execute(
        "SELECT " + ", ".join(f"min({q})::DOUBLE, max({q})::DOUBLE, quantile_cont({q}, 0.99)::DOUBLE" for q in quoted)
        + f" FROM ({relation})").fetchone()
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
        f"SELECT {_q(c)} AS col, {duck.sql_ident(c)}::DOUBLE AS v, source, status, reason FROM rel" for c, *_ in specs)
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


def languages_table(files: duck.RunFiles, rd: RunDir, segments: list[SegmentInfo]) -> pa.Table | None:
    seg = _first_segment_with(segments, "lang")
    if seg is None:
        return None
    return _arrow(files.con.sql(f"""
        SELECT coalesce(lang, '(none)') AS lang, source, status, reason, count(*)::BIGINT AS documents,
               {_q(seg.name)} AS segment
        FROM ({_rows_relation(files, rd, seg, ['lang'])}) GROUP BY ALL ORDER BY documents DESC, lang, source"""))


def dedup_clusters_table(files: duck.RunFiles, rd: RunDir) -> pa.Table | None:
    """Near-duplicate clusters by size per dedup step, from the ``cluster_size`` histograms the steps recorded
    (stats/global.parquet): a cluster is a kept document with the documents removed as its near duplicates."""
    path = rd.stats_dir / "global.parquet"
    if not files.exists(path):
        return None
    table = _arrow(files.con.sql(f"""
        SELECT printf('%02d-', position) || stage AS dedup_step, bucket::BIGINT AS cluster_size,
               value::BIGINT AS clusters, (bucket * value)::BIGINT AS documents,
               ((bucket - 1) * value)::BIGINT AS removed
        FROM read_parquet({duck.sql_file(path)})
        WHERE kind = 'histogram' AND name = 'cluster_size' AND stage LIKE 'dedup.%'
        ORDER BY position, cluster_size"""))
    return table if table.num_rows else None


def tokenizer_sources_table(files: duck.RunFiles, rd: RunDir, segments: list[SegmentInfo]) -> pa.Table | None:
    """Bytes per token per source over the first segment that holds token counts (``n_tokens``)."""
    seg = _first_segment_with(segments, "n_tokens")
    if seg is None or "text" not in seg.schema.names:
        return None
    return _arrow(files.con.sql(f"""
        SELECT source, count(*)::BIGINT AS documents, sum(strlen(text))::BIGINT AS bytes,
               sum(n_tokens)::BIGINT AS tokens, sum(strlen(text)) / nullif(sum(n_tokens), 0) AS bytes_per_token,
               {_q(seg.name)} AS segment
        FROM {_parts_sql(files, seg.parts)} GROUP BY source ORDER BY source"""))


def mixture_table(packing: GlobalFigures | None) -> pa.Table | None:
    """Per source, what the packing step recorded: target and realized shares, tokens in and out."""
    if packing is None or not packing.sources:
        return None
    rows = []
    for s, f in sorted(packing.sources.items()):
        rows.append({
            "source": s, "target_share": f.get("target_share"), "realized_share": f.get("realized_share"),
            "target_tokens": _int(f.get("target_tokens")), "tokens": _int(f.get("tokens_out")),
            "rows": _int(f.get("rows")), "available_tokens": _int(f.get("tokens_in")), "epochs": f.get("epochs"),
            "max_epochs": f.get("max_epochs"),
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


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _number(value: float | None) -> int | float | None:
    """A stored figure as it reads: 4000, not 4000.0."""
    return int(value) if value is not None and float(value).is_integer() else value


def run_facts_table(plan: dict | None, summary: RunSummary | None, tokenizer_meta: dict | None,
                    manifest: dict | None, steps: dict[str, GlobalFigures] | None = None) -> pa.Table:
    """The run's facts; the tokenizer's and the packing's numbers from their steps' statistics, the names and
    hashes (which statistics do not hold) from tokenizer_meta.json and manifest.json."""
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
    steps = steps or {}
    tokenizer = steps.get(TOKENIZER_STAGE)
    if tokenizer is not None:
        t = tokenizer.step
        facts += [("tokenizer.vocab_size", _number(t.get("vocab_size"))),
                  ("tokenizer.vocab_size_requested", _number(t.get("vocab_size_requested"))),
                  ("tokenizer.special_tokens", ", ".join((tokenizer_meta or {}).get("special_tokens") or {})),
                  ("tokenizer.sample_bytes", _number(t.get("sample_bytes"))),
                  ("tokenizer.sample_documents", _number(t.get("sample_documents"))),
                  ("tokenizer.training_seconds", t.get("training_seconds")),
                  ("tokenizer.sha256", (tokenizer_meta or {}).get("tokenizer_sha256"))]
    packing = steps.get(PACK_STAGE)
    if packing is not None:
        p = packing.step
        facts += [("shards.count", _number(p.get("shards"))), ("shards.seq_len", _number(p.get("seq_len"))),
                  ("shards.rows", _number(p.get("rows"))), ("shards.tokens", _number(p.get("tokens"))),
                  ("mixture.name", ((manifest or {}).get("mixture") or {}).get("name")),
                  ("mixture.max_share_error", p.get("max_share_error"))]
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


def reject_samples_table(files: duck.RunFiles, rd: RunDir, plan: dict | None) -> pa.Table | None:
    """Per step (in plan order) and drop reason, the first ``SAMPLES_PER_REASON`` rejected documents by doc_id:
    their source, URL (or origin), length in characters and the first ``SAMPLE_CHARS`` characters of their text."""
    tables = []
    for step in (s for seg in (plan or {}).get("segments", []) for s in seg.get("steps", [])):
        slug = f"{step['position']:02d}-{step['stage_name']}"
        rejects = [f for f in files.glob(rd.rejects_dir(slug), "part-*.parquet")
                   if {"doc_id", "text", REJECT_REASON} <= set(files.read_schema(f).names)]
        if not rejects:
            continue
        names = set().union(*(files.read_schema(f).names for f in rejects))
        where = [c for c in ("url", "origin") if c in names]  # where an empty document came from
        origin = f"coalesce({', '.join(where)})" if where else "NULL::VARCHAR"
        tables.append(_arrow(files.con.sql(f"""
            SELECT {step['position']}::INTEGER AS position, {_q(step['label'])} AS step,
                   {_q(step['stage_name'])} AS stage, reason, rank::INTEGER AS rank, doc_id, source, origin,
                   coalesce(length(text), 0)::BIGINT AS chars, left(coalesce(text, ''), {SAMPLE_CHARS}) AS sample
            FROM (SELECT {REJECT_REASON} AS reason, doc_id, source, text, {origin}::VARCHAR AS origin,
                         row_number() OVER (PARTITION BY {REJECT_REASON} ORDER BY doc_id) AS rank
                  FROM read_parquet({_files(rejects)}, union_by_name = true))
            WHERE rank <= {SAMPLES_PER_REASON} ORDER BY reason, rank""")))
    return pa.concat_tables(tables) if tables else None


# --- driver -----------------------------------------------------------------------------------------------------

def compute_report_stats(run_dir: str | Path, files: duck.RunFiles | None = None) -> dict[str, Path]:
    """Write every derived table the run directory has data for; return {table name: path}. Tables whose
    data is gone since the last report are removed, so stale figures never outlive their inputs. ``files``:
    the report's reading of the run (its connection and the files it fetched), reused after."""
    rd = RunDir(run_dir)
    files = files or duck.RunFiles(rd.root)
    if not files.is_dir():
        raise FileNotFoundError(f"{rd.root}: no such run directory")
    files.prefetch(listed_rejects(files, rd))  # before the other inputs: what this process holds is not fetched
    files.prefetch(report_inputs(files, rd))
    plan = files.read_json(rd.plan_path)
    manifest = files.read_json(rd.root / "manifest.json")
    segments = committed_segments(files, rd, plan)
    steps = global_figures(files, rd)
    thresholds = thresholds_table(plan)
    tables: dict[str, pa.Table | None] = {
        "funnel": funnel_table(files, rd, manifest, segments, steps.get(PACK_STAGE)),
        "thresholds": thresholds if thresholds.num_rows else None,
        "histograms": histograms_table(files, rd, segments, thresholds),
        "languages": languages_table(files, rd, segments),
        "dedup_clusters": dedup_clusters_table(files, rd),
        "tokenizer_sources": tokenizer_sources_table(files, rd, segments),
        "mixture": mixture_table(steps.get(PACK_STAGE)),
        "shard_tokens": shard_tokens_table(manifest),
        "reject_samples": reject_samples_table(files, rd, plan),
        **run_tables(files, rd, plan, manifest, steps),
    }
    return _write_tables(rd, tables, files)


def listed_rejects(files: duck.RunFiles, rd: RunDir) -> list[Location]:
    """The rejects files the committed segments' markers list, as ``KnownFile``s (size and hash): a run's own
    report reads those it wrote from the bytes it holds."""
    markers = files.glob(rd.segments_root, f"*/{SUCCESS}")
    files.prefetch(markers)
    listed = []
    for marker in filter(None, map(files.read_json, markers)):
        for entry in marker.get("rejects", []):
            listed.append(KnownFile(rd.layout.rejects_root / entry["path"], entry["bytes"], entry[PART_HASH]))
    return listed


def report_inputs(files: duck.RunFiles, rd: RunDir) -> list[Location]:
    """The files every report reads, whatever else the run holds: the plan, the manifest, the run's own
    statistics, the tokenizer's metadata and the rejected rows (their schemas, then their rows)."""
    derived = {f"{name}.parquet" for name in TABLES}
    return [rd.plan_path, rd.root / "manifest.json", rd.root / "tokenizer" / "tokenizer_meta.json",
            *(f for f in files.glob(rd.stats_dir, "*") if f.name not in derived),
            *files.glob(rd.root / "rejects", "*/part-*.parquet")]


def run_tables(files: duck.RunFiles, rd: RunDir, plan: dict | None, manifest: dict | None,
               steps: dict[str, GlobalFigures]) -> dict[str, pa.Table | None]:
    """The tables drawn from stats.json (the run's facts and timeline)."""
    summary = run_summary_of(files.read_json(rd.stats_dir / "stats.json"))
    tokenizer_meta = files.read_json(rd.root / "tokenizer" / "tokenizer_meta.json")
    return {
        "run_facts": run_facts_table(plan, summary, tokenizer_meta, manifest, steps),
        "timeline": timeline_table(summary),
    }


def write_run_tables(run_dir: str | Path, files: duck.RunFiles | None = None) -> dict[str, Path]:
    """Rewrite stats/run_facts.parquet and stats/timeline.parquet from stats.json (after the run's final
    timeline is recorded). ``files``: the report's reading of the run, if it was just written."""
    rd = RunDir(run_dir)
    files = files or duck.RunFiles(rd.root)
    tables = run_tables(files, rd, files.read_json(rd.plan_path), files.read_json(rd.root / "manifest.json"),
                        global_figures(files, rd))
    return _write_tables(rd, tables, files)


def _write_tables(rd: RunDir, tables: dict[str, pa.Table | None],
                  files: duck.RunFiles | None = None) -> dict[str, Path]:
    written = {}
    for name, table in tables.items():
        path = rd.stats_dir / f"{name}.parquet"
        data = None if table is None else parquet_bytes(table)
        if data is None:
            if files is None or files.exists(path):  # a table gone since the last report (the listing says)
                resolve(path).delete()
        else:
            atomic_write_bytes(path, data)
            written[name] = path
        if files is not None:
            files.wrote(path, exists=data is not None, data=data)  # the report's page reads them next
    return written


def create_views(files: duck.RunFiles, run_dir: str | Path) -> list[str]:
    """Views over the derived tables that exist (the same names ``gristmill.pipeline.inspection.connect`` creates)."""
    stats_dir = RunDir(run_dir).stats_dir
    made = []
    for name in TABLES:
        path = stats_dir / f"{name}.parquet"
        if files.exists(path):
            files.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({duck.sql_file(path)})")
            made.append(name)
    return made
