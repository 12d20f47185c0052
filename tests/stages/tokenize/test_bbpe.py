"""The tokenizer definition and training core (stages/tokenize/bbpe.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pytest
from pydantic import ValidationError
from tokenizers import Tokenizer, pre_tokenizers

from gristmill.stages.tokenize.bbpe import BbpeParams, sha256_text, train_on_samples

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _sample(corpus: pa.Table) -> pa.Table:
    return pa.table(
        {"text": corpus["text"], "source": corpus["source"], "repeat": pa.array([1] * corpus.num_rows, pa.int32())}
    )


def test_trained_tokenizer_loads_with_tokenizers_alone(trained):
    tokenizer = Tokenizer.from_file(trained["path"])
    assert tokenizer.get_vocab_size() == 1000
    text = "Die Katze schläft. 数据 def f(x):\n\treturn 42"
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_vocabulary_has_every_byte_and_the_special_tokens_first(trained):
    tokenizer = Tokenizer.from_file(trained["path"])
    vocab = tokenizer.get_vocab()
    assert tokenizer.token_to_id("<|endoftext|>") == 0
    assert tokenizer.token_to_id("<|pad|>") == 1
    assert set(pre_tokenizers.ByteLevel.alphabet()) <= set(vocab)
    # Bytes never seen in training (here: a Devanagari and an emoji code point) still encode losslessly.
    rare = "हिन्दी 🦀 \x07"
    ids = tokenizer.encode(rare).ids
    assert tokenizer.decode(ids) == rare
    assert all(0 <= i < 1000 for i in ids)


def test_digits_are_single_tokens(trained):
    tokenizer = Tokenizer.from_file(trained["path"])
    tokens = tokenizer.encode("in 2024 there were 1234567 lines").tokens
    digits = [t for t in tokens if any(c.isdigit() for c in t)]
    assert digits == list("2024") + list("1234567")


def test_metadata_describes_sample_and_tokenizer(trained, corpus):
    meta = trained["meta"]
    with open(os.path.join(os.path.dirname(trained["path"]), "tokenizer_meta.json"), encoding="utf-8") as f:
        assert json.load(f) == meta
    with open(trained["path"], encoding="utf-8") as f:
        assert meta["tokenizer_sha256"] == sha256_text(f.read())
    assert meta["vocab_size"] == 1000 and meta["vocab_size_requested"] == 1000
    assert meta["special_tokens"] == {"<|endoftext|>": 0, "<|pad|>": 1}
    assert meta["separator_id"] == 0 and meta["pad_id"] == 1
    sample = meta["sample"]
    sources = sample["sources"]
    assert set(sources) == {"common_crawl", "github", "wikipedia"}
    assert sample["bytes"] == sum(s["bytes"] for s in sources.values())
    assert sample["documents"] == sum(s["documents"] for s in sources.values())
    assert sum(s["available_documents"] for s in sources.values()) == corpus.num_rows
    assert sum(s["share"] for s in sources.values()) == pytest.approx(1.0, abs=1e-5)
    # LLaMA source names: the LLaMA shares. Web text is the scarce source, so all of it is used and the
    # sample stops where the others would exceed max_share_ratio x their shares.
    assert "llama" in sample["weighting"] and sample["max_share_ratio"] == 1.5
    assert sources["common_crawl"]["bytes"] == sources["common_crawl"]["available_bytes"]
    assert sample["planned_bytes"] < sum(s["available_bytes"] for s in sources.values())
    assert all(s["bytes"] <= s["available_bytes"] for s in sources.values())


def test_training_twice_gives_identical_tokenizer(corpus):
    params = BbpeParams(vocab_size=800).model_dump_json()
    first, _ = train_on_samples(params, _sample(corpus))
    second, _ = train_on_samples(params, _sample(corpus))
    assert sha256_text(first) == sha256_text(second)


def test_training_is_deterministic_across_processes_and_thread_counts(trained, tmp_path):
    """A fresh process (new hash seeds) with one Rust thread reproduces the session tokenizer byte for byte."""
    script = (
        "import sys, json\n"
        "from gristmill.stages.tokenize.bbpe import BbpeParams\n"
        "from gristmill.stages.tokenize.train import train_tokenizer\n"
        "from gristmill.stages.base import GlobalContext\n"
        "from gristmill.core.runtime import LocalRuntime\n"
        "parts, out, params = json.loads(sys.argv[1])\n"
        "ctx = GlobalContext.for_step(out, 'tokenizer.train_bbpe_v1', 3, parts, LocalRuntime(), seed=17)\n"
        "print(train_tokenizer(ctx, BbpeParams.model_validate_json(params), ctx.layout.tokenizer_dir)['tokenizer_sha256'])\n"
    )
    arg = json.dumps([list(reversed(trained["parts"])), str(tmp_path / "run"), trained["params"].model_dump_json()])
    env = dict(os.environ, RAYON_NUM_THREADS="1", PYTHONHASHSEED="123", PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-c", script, arg], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == trained["meta"]["tokenizer_sha256"]


def test_reserved_and_extra_special_tokens_get_the_first_ids(corpus):
    params = BbpeParams(vocab_size=600, special_tokens=("<|endoftext|>", "<|pad|>", "<|fim|>"),
                        reserved_special_tokens=2)
    tokenizer = Tokenizer.from_str(train_on_samples(params.model_dump_json(), _sample(corpus))[0])
    names = ["<|endoftext|>", "<|pad|>", "<|fim|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>"]
    assert [tokenizer.token_to_id(n) for n in names] == [0, 1, 2, 3, 4]
    assert tokenizer.get_vocab_size() == 600


@pytest.mark.parametrize(
    "bad",
    [
        {"vocab_size": 258},  # no room for merges after 256 bytes + 2 specials
        {"special_tokens": ("<|pad|>",)},  # the separator must come first
        {"special_tokens": ("<|endoftext|>", "<|endoftext|>")},
        {"source_weights": {"github": 0.0}},
        {"source_weights": {"github": -1.0}},
        {"split_regex": "(unclosed"},
        {"vocab": 1000},  # unknown key
    ],
)
def test_bad_params_are_refused(bad):
    with pytest.raises(ValidationError):
        BbpeParams(**bad)
