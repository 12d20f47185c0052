"""``gristmill train-tokenizer`` (pipeline/tokenizer_cli.py)."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from gristmill.pipeline.tokenizer_cli import train_tokenizer_cli


def _meta(directory) -> dict:
    return json.loads((directory / "tokenizer_meta.json").read_text())


def test_run_dir_trains_on_the_last_committed_segment(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained["run_dir"] / "segments", run / "segments")
    # A later segment without _SUCCESS (a crashed run) must be ignored.
    (run / "segments" / "01-dedup").mkdir()
    pq.write_table(pa.table({"doc_id": pa.array([1], pa.uint64()), "source": ["junk"], "text": ["junk"]}),
                   run / "segments" / "01-dedup" / "part-00000.parquet")
    rc = train_tokenizer_cli([str(run), "--vocab-size", "1000", "--seed", "17"])
    assert rc == 0
    meta = _meta(run / "tokenizer")
    assert "junk" not in meta["sample"]["sources"]
    # Same parts, params and seed as the session tokenizer: the same file.
    assert meta["tokenizer_sha256"] == trained["meta"]["tokenizer_sha256"]
    assert "tokenizer.json" in capsys.readouterr().out


def test_inputs_of_each_format_become_sources(data_dir, tmp_path):
    lines = (data_dir / "tokenize" / "zh.txt").read_text(encoding="utf-8").splitlines()
    jsonl = tmp_path / "zh.jsonl"
    jsonl.write_text("".join(json.dumps({"body": t, "source": "wiki"}) + "\n" for t in lines), encoding="utf-8")
    parquet = tmp_path / "de.parquet"
    de = (data_dir / "tokenize" / "de.txt").read_text(encoding="utf-8").splitlines()
    pq.write_table(pa.table({"body": de}), parquet)
    out = tmp_path / "tok"
    rc = train_tokenizer_cli([
        "--input", f"code={data_dir}/tokenize/code_*.py.txt",
        "--input", str(jsonl),
        "--input", f"german={parquet}",
        "--text-field", "body", "--output", str(out), "--vocab-size", "600",
        "--special-token", "<|fim_middle|>",
    ])
    assert rc == 0
    meta = _meta(out)
    sources = meta["sample"]["sources"]
    assert {k: v["available_documents"] for k, v in sources.items()} == {"code": 2, "wiki": len(lines),
                                                                        "german": len(de)}
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert tokenizer.token_to_id("<|fim_middle|>") == 2
    assert meta["vocab_size"] == 600


def test_superword_share_sets_the_second_stage(data_dir, tmp_path):
    shares = {}
    for share in ("0", "0.5"):
        out = tmp_path / f"tok-{share}"
        rc = train_tokenizer_cli(["--input", f"web={data_dir}/tokenize/corpus_en.txt", "--output", str(out),
                                  "--vocab-size", "700", "--superword-share", share])
        assert rc == 0
        shares[share] = _meta(out)
    assert shares["0"]["superword_merges"] == 0 and shares["0"]["first_stage_vocab_size"] == 700
    assert shares["0.5"]["first_stage_vocab_size"] == 700 - round(0.5 * (700 - 258))
    assert shares["0.5"]["superword_merges"] == 700 - shares["0.5"]["first_stage_vocab_size"]


def test_input_errors_are_reported_with_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "no text field"}\n', encoding="utf-8")
    assert train_tokenizer_cli(["--input", str(bad), "--output", str(tmp_path / "o")]) == 2
    assert f"{bad}:2: no string field 'text'" in capsys.readouterr().err
    assert train_tokenizer_cli(["--input", str(tmp_path / "none*.txt"), "--output", str(tmp_path / "o")]) == 2
    assert "no file matches" in capsys.readouterr().err
    assert train_tokenizer_cli([str(tmp_path)]) == 2
    assert "no committed segment" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path):
    with pytest.raises(SystemExit) as exc:
        train_tokenizer_cli([])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        train_tokenizer_cli(["--input", "x.txt"])  # --output required
    with pytest.raises(SystemExit):
        train_tokenizer_cli([str(tmp_path), "--vocab-size", "100"])
