"""The totals ``gristmill run`` prints when it ends: documents read and kept, shards, rows and tokens packed, and
where the report is; from the run's stats and its ``manifest.json``."""

from __future__ import annotations

from typing import Any

from gristmill.core.layout import RunLayout

PACKING_STAGE = "mixture.pack_v1"


def run_totals(stats, run_dir) -> dict[str, Any]:
    """``stats``: a run's [SegmentStats]. Shards, rows and tokens are None for a run that packs none."""
    flat = [s for segment in stats for s in segment.stages]
    read = sum(s.rows_out for s in flat if s.position == 0)
    document_steps = [s.position for s in flat if s.stage != PACKING_STAGE]
    last = max(document_steps, default=0)
    kept = sum(s.rows_out for s in flat if s.position == last)
    layout = RunLayout(run_dir)
    totals: dict[str, Any] = {"documents_read": read, "documents_kept": kept, "shards": None, "rows": None,
                              "tokens": None, "report": None}
    if layout.manifest.is_file():
        manifest = layout.manifest.read_json()
        totals.update(shards=len(manifest.get("shards", [])), rows=manifest.get("rows"), tokens=manifest.get("tokens"))
    if layout.report.is_file():
        totals["report"] = str(layout.report)
    return totals


def format_totals(totals: dict[str, Any]) -> str:
    line = f"documents: {totals['documents_read']:,} read, {totals['documents_kept']:,} kept"
    if totals["shards"] is not None:
        line += f"; shards: {totals['shards']:,}, rows: {totals['rows']:,}, tokens: {totals['tokens']:,}"
    else:
        line += "; no shards (the pipeline packs none)"
    report = totals["report"] or "not written (see the log above)"
    return f"{line}\nreport: {report}"
