"""DuckDB over a run directory: views for the documents, each segment, stats, drops and rejects."""

from __future__ import annotations

from pathlib import Path

import duckdb

from gristmill.core.storage import Location
from gristmill.pipeline._internal import duck
from gristmill.pipeline.rundir import RunDir


def connect(run_dir: str | Path | Location, files: duck.RunFiles | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with views over the run directory's Parquet:

    - ``documents``: the documents of the last committed segment that holds document parts
    - ``segment_NN``: each committed segment's documents
    - ``stage_stats``, ``drops``, ``counters``: per-step counters (stats/*.parquet)
    - ``global_stats``: what each global step's build counted and measured (kind, name, bucket, value)
    - ``rejects``: every kept rejected row, with ``step`` (the rejects/ folder name) and ``reject_reason``
    - ``shards``: packed token sequences, when the run wrote any
    - the report's derived tables (stats/*.parquet): ``funnel``, ``histograms``, ``thresholds``, ``languages``,
      ``dedup_clusters``, ``tokenizer_sources``, ``mixture``, ``shard_tokens``, ``run_facts``

    ``files``: a reading of the run already under way (the report's), whose connection gets the views.
    """
    from gristmill.pipeline._internal.report_stats import committed_segment_parts, create_views

    rd = RunDir(run_dir)
    files = files or duck.RunFiles(rd.root)
    if not files.is_dir():
        raise FileNotFoundError(f"{rd.root}: no such run directory")
    con = files.con
    last_docs = None
    committed = committed_segment_parts(files, rd)
    # Creating a view reads every part's footer: fetched together first (no request for what this process holds).
    files.prefetch([file for _, parts in committed for part in parts for file in part.files()])
    for name, parts in committed:
        if not parts:
            continue
        view = "segment_" + name.split("-", 1)[0]
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM {duck.parts_relation(parts)}")
        last_docs = view
    if last_docs:
        con.execute(f"CREATE VIEW documents AS SELECT * FROM {last_docs}")
    for name, file in (("stage_stats", "stages.parquet"), ("drops", "drops.parquet"),
                       ("counters", "counters.parquet"), ("global_stats", "global.parquet")):
        if files.exists(rd.stats_dir / file):
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({duck.sql_file(rd.stats_dir / file)})")
    # funnel, histograms, thresholds, languages, dedup_clusters, tokenizer_sources, mixture, shard_tokens, run_facts
    create_views(files, rd.root)
    rejects = files.glob(rd.root / "rejects", "*/part-*.parquet")
    if rejects:
        con.execute(
            "CREATE VIEW rejects AS SELECT regexp_extract(filename, '.*/rejects/([^/]+)/[^/]+$', 1) AS step, * "
            f"EXCLUDE (filename) FROM read_parquet({duck.sql_files(rejects)}, filename = true, union_by_name = true)"
        )
    manifest = rd.root / "manifest.json"
    if files.exists(manifest):
        from gristmill.pipeline.shards_cli import shards_view_sql

        con.execute(shards_view_sql(str(rd.root), files.read_json(manifest)))  # the shards in manifest order
    return con


def views(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]


def format_result(con: duckdb.DuckDBPyConnection, sql: str, fmt: str = "table", max_width: int = 60) -> str:
    rel = con.sql(sql)
    if rel is None:
        return ""
    cols = rel.columns
    rows = rel.fetchall()
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        w.writerows(rows)
        return buf.getvalue()
    if fmt == "json":
        import json

        return json.dumps([dict(zip(cols, r)) for r in rows], default=str, ensure_ascii=False, indent=1)

    def cell(v) -> str:
        s = "NULL" if v is None else str(v).replace("\n", "\\n")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    table = [[cell(c) for c in cols]] + [[cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(cols))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n({len(rows)} rows)"


def inspect_run(run_dir: str | Path) -> str:
    """The summary ``gristmill inspect`` prints."""
    con = connect(run_dir)
    have = set(views(con))
    out = [f"run directory: {RunDir(run_dir).root}", f"views: {', '.join(sorted(have))}", ""]
    if "stage_stats" in have:
        out += ["documents per step and source:", format_result(con, """
            SELECT position, step, stage, source, rows_in, rows_out, rows_dropped,
                   round(bytes_out / 1e6, 3) AS mb_out
            FROM stage_stats ORDER BY position, source"""), ""]
    if "drops" in have:
        out += ["drops by reason:", format_result(con, """
            SELECT step, stage, reason, sum(rows) AS rows FROM drops
            GROUP BY ALL ORDER BY min(position), rows DESC"""), ""]
    if "global_stats" in have:
        out += ["global steps (counts and figures):", format_result(con, """
            SELECT step, stage, source, name, value FROM global_stats WHERE kind <> 'histogram'
            ORDER BY position, source NULLS FIRST, kind, name"""), ""]
    if "documents" in have:
        out += ["documents by source (final):", format_result(con, """
            SELECT source, count(*) AS documents, round(sum(strlen(text)) / 1e6, 3) AS mb
            FROM documents GROUP BY 1 ORDER BY 1"""), ""]
        out += ["sample of documents:", format_result(con, """
            SELECT doc_id, source, url, left(text, 80) AS text FROM documents ORDER BY hash(doc_id) LIMIT 5"""), ""]
    if "shards" in have:
        from gristmill.pipeline.shards_cli import inspect_shards

        out += ["shards:", inspect_shards(str(run_dir))]
    return "\n".join(out)
