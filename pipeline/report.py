"""``report.html``: the run report, one self-contained file (inline CSS and SVG charts, no script, no network).

Every figure is drawn from a DuckDB view over the run directory's stats Parquet: the counters the run wrote
(``stage_stats``, ``drops``) and the derived tables ``compute_report_stats`` writes next to them (``funnel``,
``histograms``, ``languages``, ...), so ``gristmill sql RUN`` answers the same questions. A section appears only
when its data exists; a run that stopped after cleaning gets a report of what it did.

    gristmill report RUN_DIR            # (re)compute stats/*.parquet and write RUN_DIR/report.html
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any, Callable

import duckdb

from gristmill.pipeline._internal import report_charts as charts
from gristmill.pipeline._internal.duck import RunFiles
from gristmill.pipeline._internal.report_stats import TABLES, compute_report_stats
from gristmill.pipeline.rundir import RunDir, atomic_write_bytes
from gristmill.pipeline.timeline import KINDS, RunClock

REPORT_FILE = "report.html"
# Histograms drawn: every thresholded column, then the other scores in name order, up to this many panels.
MAX_HISTOGRAMS = 36
TOP_LANGUAGES = 20


def write_report(run_dir: str | Path, clock: RunClock | None = None, files: RunFiles | None = None) -> Path:
    """Recompute the derived stats and write ``RUN_DIR/report.html`` (atomically); returns its path. A running
    run passes its ``clock``: the report's own seconds end its timeline, which the page then shows (otherwise
    the timeline is the one stats.json recorded). ``files``: the reading of the run to use (and go on using
    after), else a new one."""
    start = time.perf_counter()
    rd = RunDir(run_dir)
    files = files or RunFiles(rd.root)  # one reading of the run for the tables and the page: each file fetched once
    compute_report_stats(rd.root, files)
    page = render_report(rd.root, clock=clock, started=start, files=files)
    path = rd.root / REPORT_FILE
    atomic_write_bytes(path, page.encode("utf-8"))
    return path


def report_connection(run_dir: str | Path, files: RunFiles | None = None) -> duckdb.DuckDBPyConnection:
    from gristmill.pipeline.inspection import connect

    return connect(run_dir, files)  # connect() also creates the report's derived-table views


def render_report(run_dir: str | Path, clock: RunClock | None = None, started: float | None = None,
                  files: RunFiles | None = None) -> str:
    """The page. With a running run's ``clock``, the timeline gets a ``report`` row (seconds since ``started``)
    and is finished just before it is drawn, last. ``files``: the reading of the run the tables were computed
    with, if any."""
    con = report_connection(run_dir, files)
    have = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    facts = dict(con.execute("SELECT key, value FROM run_facts").fetchall()) if "run_facts" in have else {}
    ctx = {"have": have, "facts": facts, "colors": charts.source_colors(_run_sources(con, have)),
           "clock": clock, "started": started}
    sections: list[tuple[str, str, Callable[[duckdb.DuckDBPyConnection, dict], str]]] = [
        ("funnel", "Funnel", _funnel),
        ("drops", "Drops by reason", _drops),
        ("languages", "Languages", _languages),
        ("histograms", "Quality signals and scores", _histograms),
        ("dedup", "Deduplication", _dedup),
        ("tokenizer", "Tokenizer", _tokenizer),
        ("mixture", "Mixture: tokens in, tokens out, target vs realized", _mixture),
        ("shards", "Tokens per shard", _shards),
        ("run", "Run facts", _run_facts),
        ("timeline", "Where the wall time went", _timeline),
    ]
    built = {}
    for anchor, _, build in sections:  # in this order: the timeline, last, may end the run's clock
        built[anchor] = build(con, ctx)
    body, toc = [], []
    for anchor, title, _ in sections:
        if built[anchor]:
            toc.append(f'<a href="#{anchor}">{_e(title)}</a>')
            body.append(f'<section id="{anchor}"><h2>{_e(title)}</h2>{built[anchor]}</section>')
    name = facts.get("pipeline") or Path(run_dir).name
    wall = ctx.get("wall_seconds", facts.get("wall_seconds"))
    subtitle = " · ".join(x for x in (
        f"plan {facts['plan_hash']}" if facts.get("plan_hash") else "",
        f"executor {facts['executor']}" if facts.get("executor") else "",
        f"wall time {float(wall):.1f} s" if wall else "",
    ) if x)
    views = ", ".join(sorted(have))
    return _PAGE.format(
        title=_e(f"gristmill report: {name}"), name=_e(name), subtitle=_e(subtitle), run_dir=_e(str(run_dir)),
        toc=" ".join(toc), body="\n".join(body), views=_e(views), css=_CSS,
    )


def _run_sources(con, have: set[str]) -> list[str]:
    """Every source any figure shows, so each keeps one colour across the report."""
    tables = [t for t in ("funnel", "drops", "languages", "tokenizer_sources", "mixture", "shard_tokens")
              if t in have]
    if not tables:
        return []
    union = " UNION ".join(f"SELECT DISTINCT source FROM {t}" for t in tables)
    return sorted(r[0] for r in con.execute(union).fetchall() if r[0] is not None)


# --- helpers ----------------------------------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{int(round(value)):,}"


def _mb(nbytes: Any) -> str:
    return "–" if nbytes is None else f"{nbytes / 1e6:,.3f}"


def _rows(con, sql: str) -> list[dict]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _table(headers: list[str], rows: list[list[str]], attrs: list[dict] | None = None, cls: str = "") -> str:
    """An HTML table; ``attrs`` puts machine-readable ``data-*`` attributes on each row."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    out = [f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>']
    for i, row in enumerate(rows):
        a = "".join(f' data-{k}="{_e(v)}"' for k, v in (attrs[i] if attrs else {}).items() if v is not None)
        out.append(f"<tr{a}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _sql_note(sql: str) -> str:
    return f'<p class="sql">gristmill sql RUN "{_e(" ".join(sql.split()))}"</p>'


# --- sections ---------------------------------------------------------------------------------------------------

def _funnel(con, ctx) -> str:
    if "funnel" not in ctx["have"]:
        return ""
    rows = _rows(con, """
        SELECT ordinal, any_value(step) AS step, any_value(stage) AS stage, sum(documents)::BIGINT AS documents,
               sum(bytes)::BIGINT AS bytes, sum(tokens)::BIGINT AS tokens
        FROM funnel GROUP BY ordinal ORDER BY ordinal""")
    per_source = _rows(con, "SELECT ordinal, source, documents, bytes, tokens FROM funnel ORDER BY ordinal, source")
    sources = sorted({r["source"] for r in per_source})
    cell = {(r["ordinal"], r["source"]): r for r in per_source}
    first = rows[0]["documents"] if rows and rows[0]["documents"] else None

    doc_rows = [r for r in rows if r["documents"] is not None]
    labels = [f"{r['step']} · {r['stage']}" for r in doc_rows]
    chart = charts.funnel_chart(
        labels,
        {s: [float((cell.get((r["ordinal"], s)) or {}).get("documents") or 0) for r in doc_rows] for s in sources},
        {s: [((cell.get((r["ordinal"], s)) or {}).get("bytes") or 0) / 1e6 for r in doc_rows] for s in sources},
        ctx["colors"],
    )
    table_rows, attrs = [], []
    for r in rows:
        kept = f"{r['documents'] / first:.1%}" if first and r["documents"] is not None else ""
        by_source = [
            _num((cell.get((r["ordinal"], s)) or {}).get("tokens" if r["documents"] is None else "documents"))
            for s in sources]
        table_rows.append([_e(r["step"]), _e(r["stage"]), _num(r["documents"]), _mb(r["bytes"]),
                           _num(r["tokens"]), kept, *by_source])
        attrs.append({"ordinal": r["ordinal"], "step": r["step"], "stage": r["stage"], "documents": r["documents"],
                      "bytes": r["bytes"], "tokens": r["tokens"]})
    shard = next((r for r in rows if r["tokens"] is not None), None)
    lead = ""
    if first:
        last_docs = doc_rows[-1]["documents"]
        lead = (f"<p>{first:,} input records → {last_docs:,} documents "
                f"({last_docs / first:.1%})" + (f" → {shard['tokens']:,} tokens in shards" if shard else "") + ".</p>")
    table = _table(["step", "stage", "documents", "MB", "tokens", "of records", *[f"{s}" for s in sources]],
                   table_rows, attrs, cls="num funnel")
    note = ("<p class=\"note\">Per-source columns show documents, or tokens for the shard row. "
            "Bytes are UTF-8 bytes of document text. Tokens: the tokens of the documents a step kept, from "
            "tokenization on; for the mixture step, the tokens it packed (see the mixture section).</p>")
    return lead + chart + table + note + _sql_note("SELECT * FROM funnel ORDER BY ordinal, source")


def _drops(con, ctx) -> str:
    if "drops" not in ctx["have"]:
        return ""
    rows = _rows(con, """
        SELECT min(position) AS position, step, stage, reason, source, sum(rows)::BIGINT AS rows,
               sum(bytes)::BIGINT AS bytes
        FROM drops GROUP BY step, stage, reason, source ORDER BY position, reason, source""")
    if not rows:
        return "<p>No document was dropped.</p>"
    keys = list(dict.fromkeys((r["position"], r["step"], r["stage"], r["reason"]) for r in rows))
    sources = sorted({r["source"] for r in rows})
    by = {(r["position"], r["reason"], r["source"]): r for r in rows}
    labels = [f"{k[1]} · {k[3]}" for k in keys]
    series = {s: [float((by.get((k[0], k[3], s)) or {}).get("rows") or 0) for k in keys] for s in sources}
    chart = charts.barh_chart("drops", "documents dropped, by step and reason", labels, series, ctx["colors"])
    totals = _rows(con, """SELECT min(position) AS position, step, stage, reason, sum(rows)::BIGINT AS rows,
                           sum(bytes)::BIGINT AS bytes FROM drops GROUP BY step, stage, reason
                           ORDER BY position, rows DESC""")
    table = _table(
        ["step", "stage", "reason", "documents", "MB"],
        [[_e(r["step"]), _e(r["stage"]), _e(r["reason"]), _num(r["rows"]), _mb(r["bytes"])] for r in totals],
        [{"step": r["step"], "stage": r["stage"], "reason": r["reason"], "rows": r["rows"], "bytes": r["bytes"]}
         for r in totals], cls="num drops")
    return (chart + table + _sql_note("SELECT step, reason, sum(rows) FROM drops GROUP BY ALL ORDER BY 3 DESC")
            + _reject_samples(con, ctx))


def _reject_samples(con, ctx) -> str:
    if "reject_samples" not in ctx["have"]:
        return ""
    rows = _rows(con, "SELECT * FROM reject_samples ORDER BY position, reason, rank")
    if not rows:
        return ""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["step"], r["stage"], r["reason"]), []).append(r)
    parts = []
    for (step, stage, reason), samples in groups.items():
        table = _table(
            ["doc_id", "source", "url or origin", "length", "text"],
            [[_e(r["doc_id"]), _e(r["source"]), f'<span class="origin">{_e(r["origin"] or "")}</span>',
              f"{r['chars']:,} characters", _sample_text(r)] for r in samples],
            [{"step": step, "reason": reason, "doc-id": r["doc_id"], "source": r["source"], "chars": r["chars"],
              "shown": len(r["sample"])} for r in samples], cls="samples")
        parts.append(f"<details open><summary>{_e(step)} · {_e(stage)} · {_e(reason)}: first {len(samples)} by "
                     f"doc_id</summary>{table}</details>")
    note = ("<p class=\"note\">Rejected documents kept under rejects/ (output.rejects: true), the first of each "
            "step and reason by doc_id; text cut after a few lines, its full length stated.</p>")
    return ("<h3>Sample rejected documents</h3>" + note + "".join(parts)
            + _sql_note("SELECT step, reason, doc_id, chars, sample FROM reject_samples"))


def _sample_text(r: dict) -> str:
    text = r["sample"]
    cut = len(text) < r["chars"]
    shown = _e(text) + ("…" if cut else "") if text else '<span class="note">(empty text)</span>'
    return f'<div class="sample">{shown}</div>'



def _languages(con, ctx) -> str:
    if "languages" not in ctx["have"]:
        return ""
    rows = _rows(con, f"""
        SELECT lang, sum(documents) FILTER (WHERE status = 'kept')::BIGINT AS kept,
               coalesce(sum(documents) FILTER (WHERE status = 'dropped'), 0)::BIGINT AS dropped,
               sum(documents)::BIGINT AS total
        FROM languages GROUP BY lang ORDER BY total DESC, lang LIMIT {TOP_LANGUAGES}""")
    if not rows:
        return ""
    total_langs = con.execute("SELECT count(DISTINCT lang) FROM languages").fetchone()[0]
    chart = charts.barh_chart(
        "languages", f"documents per language (top {min(TOP_LANGUAGES, total_langs)} of {total_langs})",
        [r["lang"] for r in rows],
        {"kept": [float(r["kept"] or 0) for r in rows], "dropped": [float(r["dropped"]) for r in rows]},
        {"kept": charts.KEPT, "dropped": charts.DROPPED})
    table = _table(["language", "kept", "dropped", "total"],
                   [[_e(r["lang"]), _num(r["kept"] or 0), _num(r["dropped"]), _num(r["total"])] for r in rows],
                   [{"lang": r["lang"], "kept": r["kept"] or 0, "dropped": r["dropped"]} for r in rows],
                   cls="num languages")
    note = ("<p class=\"note\">Over the documents of the segment where language ID ran: kept rows and, when "
            "rejects are kept, the rows its steps dropped.</p>")
    return chart + table + note + _sql_note("SELECT lang, status, sum(documents) FROM languages GROUP BY ALL")


def _histograms(con, ctx) -> str:
    if "histograms" not in ctx["have"]:
        return ""
    thresholds: dict[str, list[tuple[str, float]]] = {}
    if "thresholds" in ctx["have"]:
        for r in _rows(con, "SELECT \"column\", op, value, lang FROM thresholds ORDER BY position"):
            op = r["op"] + (f" ({r['lang']})" if r["lang"] else "")
            thresholds.setdefault(r["column"], []).append((op, r["value"]))
    bins = _rows(con, """
        SELECT "column", bin, min(bin_lo) AS lo, min(bin_hi) AS hi,
               coalesce(sum(documents) FILTER (WHERE status = 'kept'), 0)::BIGINT AS kept,
               coalesce(sum(documents) FILTER (WHERE status = 'dropped'), 0)::BIGINT AS dropped
        FROM histograms GROUP BY ALL ORDER BY "column", bin""")
    by_col: dict[str, list[dict]] = {}
    for b in bins:
        by_col.setdefault(b["column"], []).append(b)
    order = sorted(by_col, key=lambda c: (c not in thresholds, c not in ("lang_score", "quality_score"), c))
    panels = []
    for col in order[:MAX_HISTOGRAMS]:
        found = by_col[col]
        width = found[0]["hi"] - found[0]["lo"]
        start = found[0]["lo"] - found[0]["bin"] * width
        n = max(b["bin"] for b in found) + 1
        kept, dropped = [0] * n, [0] * n
        for b in found:
            kept[b["bin"]] = b["kept"]
            dropped[b["bin"]] = b["dropped"]
        edges = [start + i * width for i in range(n + 1)]
        panels.append({"column": col, "edges": edges, "kept": kept, "dropped": dropped,
                       "thresholds": thresholds.get(col, [])})
    if not panels:
        return ""
    listed = _table(["column", "threshold"], [[_e(c), _e(", ".join(f"{op} {v:g}" for op, v in t))]
                                             for c, t in thresholds.items()],
                    [{"column": c, "thresholds": ";".join(f"{op} {v:g}" for op, v in t)}
                     for c, t in thresholds.items()], cls="thresholds") if thresholds else ""
    more = len(order) - len(panels)
    note = (f"<p class=\"note\">Kept and dropped documents of the segment where each score was computed; dashed "
            f"lines are the plan's thresholds. Values beyond a long upper tail fall in the last bin."
            + (f" {more} more columns are in the histograms table." if more > 0 else "") + "</p>")
    return (charts.histogram_grid(panels) + note + listed
            + _sql_note('SELECT "column", bin_lo, status, sum(documents) FROM histograms GROUP BY ALL'))


def _dedup(con, ctx) -> str:
    have = ctx["have"]
    removed = []
    if "drops" in have:
        removed = _rows(con, """SELECT step, stage, reason, sum(rows)::BIGINT AS rows FROM drops
                                WHERE stage LIKE 'dedup.%' GROUP BY ALL ORDER BY min(position)""")
    dedup_steps = []
    if "stage_stats" in have:
        dedup_steps = _rows(con, """SELECT step, stage, sum(rows_in)::BIGINT AS rows_in,
                                    sum(rows_dropped)::BIGINT AS dropped FROM stage_stats
                                    WHERE stage LIKE 'dedup.%' GROUP BY ALL ORDER BY min(position)""")
    if "dedup_clusters" not in have and not dedup_steps:
        return ""
    parts = []
    if dedup_steps:
        parts.append(_table(
            ["step", "stage", "documents in", "removed", "removed %"],
            [[_e(r["step"]), _e(r["stage"]), _num(r["rows_in"]), _num(r["dropped"]),
              f"{r['dropped'] / r['rows_in']:.2%}" if r["rows_in"] else ""] for r in dedup_steps],
            [{"step": r["step"], "stage": r["stage"], "rows-in": r["rows_in"], "removed": r["dropped"]}
             for r in dedup_steps], cls="num dedup"))
    if "dedup_clusters" in have:
        clusters = _rows(con, """SELECT dedup_step, cluster_size, clusters, documents, removed FROM dedup_clusters
                                 ORDER BY dedup_step, cluster_size""")
        if clusters:
            steps = sorted({r["dedup_step"] for r in clusters})
            sizes = sorted({r["cluster_size"] for r in clusters})
            by = {(r["dedup_step"], r["cluster_size"]): r["clusters"] for r in clusters}
            parts.append(charts.grouped_bars(
                "dedup", "near-duplicate clusters by size", [str(s) for s in sizes],
                {st: [float(by.get((st, s), 0)) for s in sizes] for st in steps},
                {st: [charts.PALETTE[i % len(charts.PALETTE)]] * len(sizes) for i, st in enumerate(steps)},
                ylabel="clusters", xlabel="documents in the cluster", integer=True))
            parts.append(_table(
                ["dedup step", "cluster size", "clusters", "documents", "removed"],
                [[_e(r["dedup_step"]), _num(r["cluster_size"]), _num(r["clusters"]), _num(r["documents"]),
                  _num(r["removed"])] for r in clusters],
                [{"dedup-step": r["dedup_step"], "cluster-size": r["cluster_size"], "clusters": r["clusters"],
                  "removed": r["removed"]} for r in clusters], cls="num clusters"))
        else:
            parts.append("<p>No near-duplicate cluster was found.</p>")
    return "".join(parts) + _sql_note("SELECT * FROM dedup_clusters")


def _tokenizer(con, ctx) -> str:
    facts = {k: v for k, v in ctx["facts"].items() if k.startswith("tokenizer.") and v is not None}
    have_sources = "tokenizer_sources" in ctx["have"]
    if not facts and not have_sources:
        return ""
    parts = []
    if facts:
        parts.append(_table(["fact", "value"], [[_e(k.removeprefix("tokenizer.")), _e(v)] for k, v in facts.items()],
                            [{"key": k, "value": v} for k, v in facts.items()], cls="facts"))
    if have_sources:
        rows = _rows(con, "SELECT source, documents, bytes, tokens, bytes_per_token FROM tokenizer_sources")
        parts.append(charts.grouped_bars(
            "bytes_per_token", "UTF-8 bytes per token, per source", [r["source"] for r in rows],
            {"bytes/token": [float(r["bytes_per_token"] or 0) for r in rows]},
            {"bytes/token": [ctx["colors"][r["source"]] for r in rows]}, ylabel="bytes / token",
            label_colors={r["source"]: ctx["colors"][r["source"]] for r in rows}))
        parts.append(_table(
            ["source", "documents", "MB", "tokens", "bytes / token"],
            [[_e(r["source"]), _num(r["documents"]), _mb(r["bytes"]), _num(r["tokens"]),
              _num(r["bytes_per_token"], 3)] for r in rows],
            [{"source": r["source"], "tokens": r["tokens"], "bytes": r["bytes"]} for r in rows], cls="num"))
    return "".join(parts) + _sql_note("SELECT * FROM tokenizer_sources")


def _mixture(con, ctx) -> str:
    if "mixture" not in ctx["have"]:
        return ""
    rows = _rows(con, "SELECT * FROM mixture ORDER BY source")
    sources = [r["source"] for r in rows]
    own = [ctx["colors"][s] for s in sources]
    light = [charts.lighter(c) for c in own]
    tokens = charts.grouped_bars(
        "mixture_tokens", "tokens per source: into the mixture step and packed by it", sources,
        {"tokens in": [float(r["available_tokens"] or 0) for r in rows],
         "tokens out": [float(r["tokens"] or 0) for r in rows]},
        {"tokens in": light, "tokens out": own}, ylabel="tokens", integer=True, label_colors=dict(zip(sources, own)))
    shares = charts.grouped_bars(
        "mixture", "share of tokens per source: target vs realized", sources,
        {"target": [float(r["target_share"] or 0) for r in rows],
         "realized": [float(r["realized_share"] or 0) for r in rows]},
        {"target": light, "realized": own}, percent=True, label_colors=dict(zip(sources, own)))
    table = _table(
        ["source", "tokens in", "target tokens", "tokens out", "out / in", "epochs", "target", "realized"],
        [[_e(r["source"]), _num(r["available_tokens"]), _num(r["target_tokens"]), _num(r["tokens"]),
          f"{r['tokens'] / r['available_tokens']:.1%}" if r["available_tokens"] else "–", _num(r["epochs"], 3),
          f"{r['target_share'] or 0:.2%}", f"{r['realized_share'] or 0:.2%}"] for r in rows],
        [{"source": r["source"], "target": r["target_share"], "realized": r["realized_share"],
          "tokens-in": r["available_tokens"], "tokens": r["tokens"]} for r in rows], cls="num mixture")
    note = ("<p class=\"note\">Tokens in: the tokens of the documents the mixture step received (with one "
            "separator each); tokens out: the tokens it packed into shards, repeated (epochs above 1) or sampled "
            "down to meet the target.</p>")
    return tokens + shares + table + note + _sql_note("SELECT * FROM mixture")


def _shards(con, ctx) -> str:
    if "shard_tokens" not in ctx["have"]:
        return ""
    rows = _rows(con, "SELECT shard, source, tokens FROM shard_tokens ORDER BY shard, source")
    shards = sorted({r["shard"] for r in rows})
    sources = sorted({r["source"] for r in rows})
    by = {(r["shard"], r["source"]): r["tokens"] for r in rows}
    chart = charts.stacked_columns("shards", "tokens per shard, by source", shards,
                                   {s: [float(by.get((i, s), 0)) for i in shards] for s in sources}, "tokens",
                                   ctx["colors"])
    summary = _rows(con, """SELECT count(*) AS shards, sum(t)::BIGINT AS tokens, min(t) AS min, max(t) AS max,
                            avg(t) AS mean FROM (SELECT shard, sum(tokens) AS t FROM shard_tokens GROUP BY shard)""")[0]
    per_source = _rows(con, "SELECT source, sum(tokens)::BIGINT AS tokens FROM shard_tokens GROUP BY 1 ORDER BY 1")
    table = _table(["source", "tokens"], [[_e(r["source"]), _num(r["tokens"])] for r in per_source],
                   [{"source": r["source"], "tokens": r["tokens"]} for r in per_source], cls="num shard-sources")
    lead = (f"<p>{summary['shards']:,} shards, {summary['tokens']:,} tokens; per shard min {summary['min']:,}, "
            f"mean {summary['mean']:,.0f}, max {summary['max']:,}.</p>")
    return lead + chart + table + _sql_note("SELECT shard, sum(tokens) FROM shard_tokens GROUP BY 1")


def _run_facts(con, ctx) -> str:
    facts = {k: v for k, v in ctx["facts"].items() if not k.startswith("tokenizer.") and v is not None}
    if ctx["clock"] is not None:
        facts.pop("wall_seconds", None)  # known once the timeline ends, last; shown in the header and there
    parts = []
    if facts:
        parts.append(_table(["fact", "value"], [[_e(k), _e(v)] for k, v in facts.items()],
                            [{"key": k, "value": v} for k, v in facts.items()], cls="facts"))
    if "stage_stats" in ctx["have"]:
        rows = _rows(con, """SELECT position, step, stage, segment, sum(seconds) AS seconds,
                                    sum(rows_in)::BIGINT AS rows_in, sum(bytes_in)::BIGINT AS bytes_in
                             FROM stage_stats GROUP BY position, step, stage, segment ORDER BY position""")
        parts.append(_table(
            ["step", "stage", "segment", "worker seconds", "documents in", "docs / s", "MB / s"],
            [[_e(r["step"]), _e(r["stage"]), _e(r["segment"]), _num(r["seconds"], 3), _num(r["rows_in"]),
              _num(r["rows_in"] / r["seconds"]) if r["seconds"] else "–",
              _num(r["bytes_in"] / 1e6 / r["seconds"], 2) if r["seconds"] else "–"] for r in rows],
            [{"step": r["step"], "seconds": r["seconds"]} for r in rows], cls="num seconds"))
    if not parts:
        return ""
    parts.append("<p class=\"note\">Worker seconds: the time the step's workers spent on its batches, summed "
                 "over workers (on Ray, running at the same time).</p>")
    listing = "".join(f"<li><code>{_e(n)}</code>: {_e(d)}</li>" for n, d in TABLES.items())
    return "".join(parts) + f"<details><summary>derived tables in stats/</summary><ul>{listing}</ul></details>"


def _timeline(con, ctx) -> str:
    """Rows that sum to the run's wall time: a running run's clock (ended here, with the report's own row),
    else the timeline stats.json recorded."""
    clock = ctx["clock"]
    if clock is not None:
        if clock.final is None:
            clock.add("report", "driver", time.perf_counter() - (ctx["started"] or time.perf_counter()))
        final = clock.finish()
        rows, wall = final["timeline"], final["wall_seconds"]
    elif "timeline" in ctx["have"]:
        rows = _rows(con, "SELECT * FROM timeline ORDER BY ordinal")
        wall = sum(r["seconds"] for r in rows)  # = the recorded wall time (run_facts holds it rounded)
    else:
        return ""
    ctx["wall_seconds"] = wall
    labels = [r["phase"] for r in rows]
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    chart = charts.barh_chart(
        "timeline", f"wall seconds per phase and step: {sum(r['seconds'] for r in rows):.1f} s of the run's "
        f"{wall:.1f} s", labels, {k: [r["seconds"] if r["kind"] == k else 0.0 for r in rows] for k in kinds},
        {k: charts.KIND_COLORS[k] for k in kinds}, xlabel="seconds")
    table = _table(
        ["phase", "kind", "segment", "seconds", "share", "worker seconds"],
        [[_e(r["phase"]), _e(r["kind"]), _e(r["segment"] or ""), _num(r["seconds"], 3),
          f"{r['seconds'] / wall:.1%}" if wall else "", _num(r["worker_seconds"], 3)] for r in rows],
        [{"phase": r["phase"], "kind": r["kind"], "seconds": r["seconds"]} for r in rows], cls="num timeline")
    note = ("<p class=\"note\">Consecutive phases from the command's start (the process's start and imports, "
            "plan build, Ray start) to this report. A streaming segment's wall time is shared among its steps by "
            "the seconds their workers reported (summed over parallel workers, so scaled down to the segment's "
            "wall time); reading and writing parts is the rest of the segment. Global steps' builds (dedup, tokenizer training, "
            "packing) run on the driver and the cluster. <em>other (driver)</em> is what no phase measured.</p>")
    return (f'<p data-wall-seconds="{wall:.6f}">Wall time {wall:.1f} s.</p>' + chart + table + note
            + _sql_note("SELECT kind, sum(seconds) FROM timeline GROUP BY 1"))


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#26324a;color:#fff;padding:16px 28px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#c9d3e6}
nav{padding:8px 28px;background:#eef1f6;border-bottom:1px solid #d8dde8}
nav a{margin-right:14px;color:#26324a;text-decoration:none;font-weight:600}
main{padding:8px 28px 40px;max-width:1100px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:10px 18px 14px;margin:16px 0}
h2{font-size:17px;margin:6px 0 10px}
table{border-collapse:collapse;margin:10px 0;font-size:13px;display:block;max-width:100%;overflow-x:auto}
th,td{padding:3px 10px;border-bottom:1px solid #eceef2;text-align:left}
th{background:#f3f5f8}
table.num td:not(:first-child):not(:nth-child(2)):not(:nth-child(3)){text-align:right;font-variant-numeric:tabular-nums}
table.num.funnel td:nth-child(n+3){text-align:right}
svg.chart{display:block;height:auto;margin:6px 0}
.note{color:#666;font-size:12px} .sql{color:#555;font:12px ui-monospace,monospace;background:#f6f7f9;padding:4px 8px}
footer{color:#777;font-size:12px;padding:0 28px 20px}
h3{font-size:14px;margin:14px 0 4px} details{margin:4px 0} summary{cursor:pointer}
table.samples td{vertical-align:top} table.samples td:nth-child(4){white-space:nowrap}
.origin{font-size:11px;color:#555;word-break:break-all}
div.sample{font:12px ui-monospace,monospace;max-width:560px;color:#333}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header><h1>gristmill run report: {name}</h1><p>{subtitle}</p></header>
<nav>{toc}</nav>
<main>
{body}
</main>
<footer>Run directory {run_dir}. Every figure is a query over its stats Parquet (views: {views});
regenerate with <code>gristmill report RUN_DIR</code>.</footer>
</body>
</html>
"""


def report_cli(run_dir: str) -> int:
    start = time.perf_counter()
    path = write_report(run_dir)
    print(f"wrote {path} ({time.perf_counter() - start:.2f}s)")
    return 0
