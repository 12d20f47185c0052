from __future__ import annotations

import json

import pytest

from gristmill.mixtures.export.exporter import export_run

# Held out: not in the corpus the fixture tokenizer was trained on.
HELD_OUT = ["Grist mills ground 1,234 bushels in 1887 — naïve “quotes”, tabs\tand\nnewlines.", "  leading spaces",
            "emoji 🌾 and CJK 穀物"]
WITH_SPECIALS = "one document<|endoftext|>quoted inside another<|pad|>"


@pytest.fixture
def exported(run_dir, run_pack, tmp_path):
    run_pack(run_dir, {"mixture": "llama", "seq_len": 64, "rows_per_shard": 100})
    export_run(run_dir, "hf-tokenizer", tmp_path / "hf")
    return tmp_path / "hf"


def run_ids(tokenizer_file, text):
    """The ids the run's tokenize stage gives the text (with its defaults)."""
    from doc_tables import doc_table

    from gristmill.stages.tokenize.encode import TokenizeBbpeV1

    stage = TokenizeBbpeV1({"path": str(tokenizer_file)})
    stage.setup()
    return stage.process(doc_table([text])).table.column("tokens").to_pylist()[0]


def test_transformers_loads_the_folder_and_encodes_as_the_run(exported, tokenizer_file):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    for loaded in (PreTrainedTokenizerFast.from_pretrained(exported), AutoTokenizer.from_pretrained(exported)):
        for text in HELD_OUT + [WITH_SPECIALS]:
            assert loaded(text)["input_ids"] == run_ids(tokenizer_file, text), text
            assert loaded.decode(loaded(text)["input_ids"]) == text
        assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (0, 0, 1)
        assert loaded.model_max_length == 64


def test_tokenizers_loads_the_same_file(exported, tokenizer_file):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(exported / "tokenizer.json"))
    for text in HELD_OUT:
        assert tok.encode(text).ids == run_ids(tokenizer_file, text)
    assert (exported / "tokenizer.json").read_bytes() == tokenizer_file.read_bytes()
    assert json.loads((exported / "special_tokens_map.json").read_text()) == {
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|pad|>"}


def test_a_changed_tokenizer_is_refused(run_dir, run_pack, tmp_path):
    run_pack(run_dir, {"mixture": "llama", "seq_len": 64, "rows_per_shard": 100})
    (run_dir / "tokenizer" / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="not the tokenizer the shards were made with"):
        export_run(run_dir, "hf-tokenizer", tmp_path / "hf")
