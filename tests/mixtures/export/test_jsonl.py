from __future__ import annotations

import json

import numpy as np

from shard_rows import manifest, shard_table, token_rows

from gristmill.mixtures.export.exporter import export_run


def test_jsonl_holds_every_row_with_its_documents_one_file_per_shard(run_dir, run_pack, tmp_path):
    run_pack(run_dir, {"mixture": "llama", "seq_len": 32, "rows_per_shard": 50, "row_group_rows": 16})
    summary = export_run(run_dir, "jsonl", tmp_path / "jsonl")
    files = [tmp_path / "jsonl" / name for name in summary["files"]]
    assert len(files) == len(manifest(run_dir)["shards"])
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert np.array_equal(np.array([r["input_ids"] for r in records]), token_rows(run_dir))
    table = shard_table(run_dir)
    assert [r["doc_ids"] for r in records] == table.column("doc_ids").to_pylist()
    assert [[int(s) for s in r["doc_id_strings"]] for r in records] == table.column("doc_ids").to_pylist()
    assert [r["doc_offsets"] for r in records] == table.column("doc_offsets").to_pylist()
    assert [r["source"] for r in records] == table.column("source").to_pylist()
    written = json.loads((tmp_path / "jsonl" / "export.json").read_text())
    assert written["rows"] == len(records) and written["tokenizer"] == manifest(run_dir)["tokenizer"]
