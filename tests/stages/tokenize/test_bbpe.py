"""The tokenizer definition and training core (stages/tokenize/bbpe.py)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pyarrow as pa
import pytest
from pydantic import ValidationError
from tokenizers import Tokenizer, pre_tokenizers

from gristmill.stages.tokenize.bbpe import (
    SPLIT_REGEX,
    SUPERWORD_REGEX,
    BbpeParams,
    first_stage_vocab_size,
    sha256_text,
    train_on_samples,
)

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
    assert meta["first_stage_vocab_size"] + meta["superword_merges"] == 1000
    assert meta["superword_merges"] > 0 and meta["params"]["superword_share"] == 0.4
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
        {"superword_regex": "(unclosed"},
        {"superword_share": 1.0},  # the first stage needs some of the vocabulary
        {"superword_share": -0.1},
        {"vocab_size": 300_000},  # a first stage of 180,103 tokens: more than the 131,072 token characters
        {"split_regex": r"\w+|\W"},  # a custom split_regex with the superword pieces made for SPLIT_REGEX
        {"vocab": 1000},  # unknown key
    ],
)
def test_bad_params_are_refused(bad):
    with pytest.raises(ValidationError):
        BbpeParams(**bad)


def test_vocabularies_up_to_the_token_characters_are_accepted():
    assert first_stage_vocab_size(BbpeParams(vocab_size=128_256)) == 77_057  # LLaMA 3's size
    assert first_stage_vocab_size(BbpeParams(vocab_size=300_000, superword_share=0.6)) <= 131_072
    BbpeParams(vocab_size=300_000, superword_share=0)


def test_a_custom_split_regex_trains_in_one_stage():
    params = BbpeParams(split_regex=r"\w+|\W", superword_share=0)
    assert params.superword_regex == SUPERWORD_REGEX  # kept, but unused with superword_share 0


ENGLISH_VOCAB = 3000


@pytest.fixture(scope="module")
def english(data_dir) -> tuple[pa.Table, list[str]]:
    """Real English web text (the demo's C4 pages, 0.14 MB) as a training sample, and English sentences
    held out from it."""
    with gzip.open(data_dir / "demo" / "c4-en.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    sample = pa.table({"text": texts, "source": ["c4"] * len(texts), "repeat": pa.array([1] * len(texts), pa.int32())})
    held_out = (data_dir / "tokenize" / "corpus_en.txt").read_text(encoding="utf-8").splitlines()
    return sample, held_out


def _train(sample: pa.Table, **params) -> tuple[Tokenizer, dict, dict]:
    tokenizer_json, facts = train_on_samples(BbpeParams(**params).model_dump_json(), sample)
    return Tokenizer.from_str(tokenizer_json), json.loads(tokenizer_json), facts


def test_the_superword_stage_makes_multi_word_tokens_that_shorten_held_out_text(english):
    sample, held_out = english
    two, spec, facts = _train(sample, vocab_size=ENGLISH_VOCAB)
    one, one_spec, _ = _train(sample, vocab_size=ENGLISH_VOCAB, superword_share=0)
    assert spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == SUPERWORD_REGEX
    assert one_spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == SPLIT_REGEX
    assert two.get_vocab_size() == one.get_vocab_size() == ENGLISH_VOCAB
    assert len(two.encode(" of the").ids) == 1
    assert len(one.encode(" of the").ids) == 2
    assert len([t for t in two.get_vocab() if "Ġ" in t[1:].rstrip("Ġ")]) > 300
    assert not [t for t in one.get_vocab() if "Ġ" in t[1:].rstrip("Ġ")]
    # Same vocabulary size, same sample: fewer tokens for the same held-out bytes.
    tokens = {name: sum(len(e.ids) for e in tok.encode_batch(held_out)) for name, tok in (("two", two), ("one", one))}
    assert tokens["two"] < 0.95 * tokens["one"]
    assert all(two.decode(two.encode(line).ids) == line for line in held_out[:200])


def test_the_first_stage_is_the_one_stage_tokenizer_at_its_vocabulary(english):
    sample, _ = english
    first = first_stage_vocab_size(BbpeParams(vocab_size=ENGLISH_VOCAB))
    assert first == ENGLISH_VOCAB - round(0.4 * (ENGLISH_VOCAB - 258))
    _, spec, facts = _train(sample, vocab_size=ENGLISH_VOCAB)
    _, one_spec, _ = _train(sample, vocab_size=first, superword_share=0)
    one_merges = one_spec["model"]["merges"]
    assert spec["model"]["merges"][: len(one_merges)] == one_merges
    assert {t: spec["model"]["vocab"][t] for t in one_spec["model"]["vocab"]} == one_spec["model"]["vocab"]
    assert facts["first_stage_vocab_size"] == first
    assert facts["superword_merges"] == ENGLISH_VOCAB - first == len(spec["model"]["merges"]) - len(one_merges)


def test_superword_pieces_split_into_first_stage_tokens_as_their_words_do(english, data_dir):
    """No first-stage merge crosses the word boundaries inside a SUPERWORD_REGEX piece: the first stage's
    merges give the same ids whether the text is split by SPLIT_REGEX or by SUPERWORD_REGEX."""
    sample, held_out = english
    one, one_spec, _ = _train(sample, vocab_size=ENGLISH_VOCAB, superword_share=0)
    one_spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = SUPERWORD_REGEX
    superword_split = Tokenizer.from_str(json.dumps(one_spec))
    texts = [*held_out, *sample["text"].to_pylist(), "a, b; c: d. e,f ,g don't, 'tis 1 2, x\ny, z\r\n, w!"]
    texts += (data_dir / "tokenize" / "de.txt").read_text(encoding="utf-8").splitlines()
    assert [e.ids for e in superword_split.encode_batch(texts)] == [e.ids for e in one.encode_batch(texts)]


def test_max_token_length_bounds_the_superword_tokens_too(english):
    sample, _ = english
    _, spec, facts = _train(sample, vocab_size=ENGLISH_VOCAB, max_token_length=8)
    assert facts["superword_merges"] > 0
    assert max(len(token) for token in spec["model"]["vocab"] if not token.startswith("<|")) == 8
