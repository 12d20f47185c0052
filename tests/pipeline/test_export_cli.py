"""``gristmill export`` on a run of the pipeline: the tokenizer folder encodes the run's documents to exactly
the tokens its tokenize step wrote, and the token exports hold the shards' stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from gristmill.pipeline import LocalExecutor, RunDir, run_plan
from gristmill.pipeline.cli import main

from demo_pipeline import PACKED, make_plan
from shard_rows import token_rows


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("export") / "run"
    run_plan(make_plan(data_dir, PACKED), RunDir(run_dir), LocalExecutor())
    return run_dir


def tokenized_documents(run_dir: Path) -> pa.Table:
    parts = RunDir(run_dir).segment_parts("01-tokenizer.train_bbpe_v1")  # text is stored where ingest wrote it
    return pa.concat_tables([p.read_parquet(["text", "tokens"]) for p in parts])


def test_hf_tokenizer_encodes_every_document_as_the_run_did(run, tmp_path, capsys):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    out = tmp_path / "hf"
    assert main(["export", str(run), "--format", "hf-tokenizer", "--out", str(out)]) == 0
    assert "tokenizer_config.json" in capsys.readouterr().out
    docs = tokenized_documents(run)
    texts, expected = docs.column("text").to_pylist(), docs.column("tokens").to_pylist()
    hf = PreTrainedTokenizerFast.from_pretrained(out)
    assert hf(texts)["input_ids"] == expected
    plain = Tokenizer.from_file(str(out / "tokenizer.json"))
    plain.encode_special_tokens = True  # as the folder's split_special_tokens (tokenizer.json cannot hold it)
    assert [e.ids for e in plain.encode_batch(texts)] == expected
    assert (hf.eos_token, hf.pad_token) == ("<|endoftext|>", "<|pad|>")


def test_megatron_export_of_the_run(run, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    assert main(["export", str(run), "--format", "megatron", "--out", str(tmp_path / "m")]) == 0
    dataset = IndexedDataset(str(tmp_path / "m" / "tokens"))
    assert np.array_equal(np.concatenate([dataset[i] for i in range(len(dataset))]), token_rows(run).reshape(-1))


def test_export_of_a_run_without_shards_is_refused(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--format", "mds", "--out", str(tmp_path / "o")]) == 2
    assert "no manifest" in capsys.readouterr().err
