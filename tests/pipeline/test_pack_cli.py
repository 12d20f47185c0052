"""``gristmill pack``: a finished run packed again from its tokenized segment, with nothing upstream rerun."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.pipeline import LocalExecutor, RunDir, run_plan
from gristmill.pipeline.cli import main

from demo_pipeline import PACKED, make_plan
from shard_rows import manifest, shard_table, token_rows

TOKENIZED = "01-tokenizer.train_bbpe_v1"


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("packed") / "run"
    run_plan(make_plan(data_dir, PACKED), RunDir(run_dir), LocalExecutor())
    return run_dir


def segment_documents(run_dir: Path) -> dict[int, list[int]]:
    parts = sorted((run_dir / "segments" / TOKENIZED).glob("part-*.parquet"))
    table = pa.concat_tables([pq.read_table(p, columns=["doc_id", "tokens"]) for p in parts])
    return dict(zip(table.column("doc_id").to_pylist(), table.column("tokens").to_pylist()))


def snapshot(run_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}


def test_pack_with_another_seq_len_cuts_the_same_documents(run, tmp_path, capsys):
    before = snapshot(run)
    out = tmp_path / "repacked"
    assert main(["pack", str(run), "--seq-len", "24", "--rows-per-shard", "10", "--out", str(out)]) == 0
    assert "seq_len 24" in capsys.readouterr().out
    assert snapshot(run) == before  # the run is only read
    m = manifest(out)
    assert m["seq_len"] == 24 and m["rows_per_shard"] == 10 and len(m["shards"]) > 1
    assert m["mixture"]["target"] == manifest(run)["mixture"]["target"]  # the run's own mixture params
    assert m["tokenizer"]["path"] == "tokenizer/tokenizer.json"
    for name in ("tokenizer.json", "tokenizer_meta.json"):
        assert (out / "tokenizer" / name).read_bytes() == (run / "tokenizer" / name).read_bytes()
    docs = segment_documents(run)
    table = shard_table(out)
    separator = m["tokenizer"]["separator_id"]
    checked = 0
    for row, ids, offsets in zip(token_rows(out), table.column("doc_ids").to_pylist(),
                                 table.column("doc_offsets").to_pylist()):
        pieces = np.split(row, offsets[1:])
        for doc_id, piece in zip(ids[1:], pieces[1:]):  # pieces after the first start their document
            expected = docs[doc_id] + [separator]
            assert piece.tolist() == expected[: len(piece)], doc_id
            checked += 1
    assert checked >= 10
    assert main(["verify", str(out)]) == 0


def test_pack_with_the_runs_own_options_gives_its_shards_byte_for_byte(run, tmp_path):
    out = tmp_path / "same"
    assert main(["pack", str(run), "--out", str(out)]) == 0
    original, again = manifest(run), manifest(out)
    assert [e["sha256"] for e in again["shards"]] == [e["sha256"] for e in original["shards"]]
    assert again["tokenizer"] == original["tokenizer"]
    assert again["plan_hash"] != original["plan_hash"]
    assert json.loads((out / "plan.json").read_text())["repacked_from"]["segment"] == TOKENIZED


def test_show_inspect_sql_and_export_work_on_the_result(run, tmp_path, capsys):
    out = tmp_path / "repacked"
    assert main(["pack", str(run), "--seq-len", "40", "--mixture", "llama", "--out", str(out)]) == 2
    assert "github" in capsys.readouterr().err  # the LLaMA preset needs sources this run lacks: refused
    assert not out.exists()
    assert main(["pack", str(run), "--seq-len", "40", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["show", str(out), "--row", "3"]) == 0
    shown = capsys.readouterr().out
    assert "--- doc_id" in shown and "origin ?" not in shown  # origins found in the run's segment parts
    assert main(["inspect", str(out)]) == 0
    assert "seq_len 40" in capsys.readouterr().out
    # what the packing recorded is stored as a run's global step statistics are
    assert main(["sql", str(out), "SELECT value FROM global_stats WHERE name = 'seq_len'", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"value": 40.0}]
    assert main(["sql", str(out), "SELECT count(*) AS n FROM shards", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n"] == manifest(out)["rows"]
    assert main(["export", str(out), "--format", "jsonl", "--out", str(tmp_path / "jsonl")]) == 0


def test_refusals_name_the_problem(run, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["pack", str(run), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "segments" / TOKENIZED / "_SUCCESS").unlink()
    assert main(["pack", str(copy), "--out", str(tmp_path / "a")]) == 2
    assert f"segments/{TOKENIZED} is not committed" in capsys.readouterr().err
    plan = json.loads((copy / "plan.json").read_text())
    for segment in plan["segments"]:
        segment["steps"] = [s for s in segment["steps"] if s["stage_name"] not in ("tokenize.bbpe_v1", "mixture.pack_v1")]
    (copy / "plan.json").write_text(json.dumps(plan))
    assert main(["pack", str(copy), "--out", str(tmp_path / "b")]) == 2
    assert "has no tokenized segment" in capsys.readouterr().err


def test_pack_a_run_on_an_object_store_into_it(run, tmp_path, s3_query, capsys):
    from gristmill.core.storage import resolve

    run_uri = f"s3://gristmill-run/runs/r1?{s3_query}"
    root = resolve(run_uri)
    for path in sorted(run.rglob("*")):
        if path.is_file():
            (root / path.relative_to(run).as_posix()).write_bytes(path.read_bytes())
    out_uri = f"s3://gristmill-run/runs/r1-32?{s3_query}"
    assert main(["pack", run_uri, "--seq-len", "32", "--out", out_uri]) == 0
    assert main(["pack", str(run), "--seq-len", "32", "--out", str(tmp_path / "local")]) == 0
    remote = resolve(out_uri)
    local = manifest(tmp_path / "local")
    assert [e["sha256"] for e in (remote / "manifest.json").read_json()["shards"]] == [e["sha256"] for e in local["shards"]]
    capsys.readouterr()
    assert main(["verify", out_uri]) == 0, capsys.readouterr().out


def with_small_pack_ranges(run: Path, copy: Path) -> Path:
    """A copy of ``run`` whose packing step caps a packing task at 128 tokens (two rows), so that the pack
    command packs every source in many ranges."""
    shutil.copytree(run, copy)
    plan = json.loads((copy / "plan.json").read_text())
    for segment in plan["segments"]:
        for step in segment["steps"]:
            if step["stage_name"] == "mixture.pack_v1":
                step["params"]["chunk_tokens"] = 128
    (copy / "plan.json").write_text(json.dumps(plan))
    return copy


@pytest.mark.ray
def test_pack_on_ray_in_many_ranges_gives_the_shards_packed_in_process(run, tmp_path, ray_cluster):
    ranged = with_small_pack_ranges(run, tmp_path / "ranged-run")
    assert main(["pack", str(ranged), "--executor", "ray", "--out", str(tmp_path / "ray")]) == 0
    assert main(["pack", str(ranged), "--executor", "local", "--out", str(tmp_path / "local")]) == 0
    in_process = [e["sha256"] for e in manifest(run)["shards"]]  # the run's own step: one range per source
    assert [e["sha256"] for e in manifest(tmp_path / "ray")["shards"]] == in_process
    assert [e["sha256"] for e in manifest(tmp_path / "local")["shards"]] == in_process
    assert json.loads((tmp_path / "ray" / "plan.json").read_text())["pipeline"]["execution"] == {"executor": "ray"}


def test_pack_refuses_a_ray_address_with_the_local_executor(run, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["pack", str(run), "--executor", "local", "--address", "127.0.0.1:6379", "--out", str(out)]) == 2
    assert "needs the ray executor" in capsys.readouterr().err
    assert not out.exists()
