"""``export_run``: one entry point for every export format, with a summary ``export.json`` written last."""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from gristmill.core.storage import Location, resolve
from gristmill.mixtures.export.hf_tokenizer import write_hf_tokenizer
from gristmill.mixtures.export.jsonl import write_jsonl
from gristmill.mixtures.export.mds import write_mds
from gristmill.mixtures.export.megatron import write_megatron
from gristmill.mixtures.export.rows import PackedRun

SUMMARY_FILE = "export.json"
EXPORT_FORMAT = "gristmill.export/1"

FORMATS: dict[str, Callable[..., dict[str, Any]]] = {
    "megatron": write_megatron,
    "mds": write_mds,
    "jsonl": write_jsonl,
    "hf-tokenizer": write_hf_tokenizer,
}


def export_run(run_dir: str | Location, fmt: str, out: str | Location, **options: Any) -> dict[str, Any]:
    """Export the packed run at ``run_dir`` as ``fmt`` into the directory ``out``; returns the summary."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of: {', '.join(FORMATS)}")
    run = PackedRun.open(run_dir)
    target = resolve(out)
    target.mkdir()
    (target / SUMMARY_FILE).delete()
    written = FORMATS[fmt](run, target, **options)
    summary = {
        "format": EXPORT_FORMAT,
        "export": fmt,
        "run": run.layout.root.uri,
        "manifest_sha256": hashlib.sha256(run.layout.manifest.read_bytes()).hexdigest(),
        "plan_hash": run.manifest.get("plan_hash"),
        "seq_len": run.seq_len,
        "rows": run.rows,
        "tokenizer": run.tokenizer,
        **written,
    }
    (target / SUMMARY_FILE).write_json(summary)
    return summary
