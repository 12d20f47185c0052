from __future__ import annotations

import json

import duckdb
import pytest

from gristmill.pipeline import shards_cli as cli

PARAMS = {"mixture": "llama", "seq_len": 64, "rows_per_shard": 100, "row_group_rows": 32}


@pytest.fixture
def packed(run_dir, run_pack):
    run_pack(run_dir, PARAMS, seed=2)
    return run_dir


def test_inspect_summarizes_mixture_epochs_and_shards(packed):
    text = cli.inspect_shards(str(packed))
    m = json.loads((packed / "manifest.json").read_text())
    assert f"{len(m['shards'])} shards, {m['rows']:,} rows x seq_len 64" in text
    wiki = m["sources"]["wikipedia"]
    line = next(l for l in text.splitlines() if l.startswith("wikipedia"))
    assert f"{wiki['target_share'] * 100:.2f}%" in line and f"{wiki['epochs']:.3f}" in line
    assert "bytes per token" in text and "tokens per shard: min" in text


def test_show_row_decodes_text_with_document_boundaries_and_origins(packed, doc_table):
    m = json.loads((packed / "manifest.json").read_text())
    row = m["shards"][0]["rows"] + 3  # a row in the second shard
    text = cli.show_row(str(packed), row)
    con = duckdb.connect()
    con.execute(cli.shards_view_sql(str(packed)))
    doc_ids, source = con.execute(
        "SELECT doc_ids, source FROM shards WHERE filename LIKE '%part-00001.parquet' AND file_row_number = 3"
    ).fetchone()
    assert text.startswith(f"row {row} (shards/part-00001.parquet row 3): source {source}, 64 tokens")
    docs = {r["doc_id"]: r for r in doc_table.select(["doc_id", "text", "origin"]).to_pylist()}
    for d in doc_ids:
        assert f"--- doc_id {d} at token" in text
        assert f"origin {docs[d]['origin']}" in text
    # A document that starts inside this row decodes to the beginning of its text.
    last = docs[doc_ids[-1]]
    body = text.split(f"--- doc_id {doc_ids[-1]} at token")[1].split("\n", 1)[1]
    if len(doc_ids) > 1:
        assert last["text"].startswith(body.replace("<|endoftext|>", "")[:20])
    with pytest.raises(IndexError, match="out of range"):
        cli.show_row(str(packed), m["rows"])


def test_shards_view_lists_the_manifest_shards(packed):
    con = duckdb.connect()
    con.execute(cli.shards_view_sql(str(packed)))
    m = json.loads((packed / "manifest.json").read_text())
    assert con.execute("SELECT count(*) FROM shards").fetchone()[0] == m["rows"]
    assert con.execute("SELECT count(DISTINCT filename) FROM shards").fetchone()[0] == len(m["shards"])


def test_verify_is_empty_for_a_fresh_run(packed):
    assert cli.verify(str(packed)) == []
