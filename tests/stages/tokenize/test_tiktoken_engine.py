"""The tiktoken engine of ``tokenize.bbpe_v1`` (stages/tokenize/encode.py): the same ids as ``tokenizers``,
and a clear refusal of every tokenizer whose ids it cannot reproduce."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gristmill.stages.tokenize.bbpe import SUPERWORD_REGEX, BbpeParams, new_tokenizer, train_on_samples
from gristmill.stages.tokenize.encode import (
    GPT2_SPLIT_REGEX,
    TiktokenIncompatible,
    TokenizeBbpeV1,
    byte_level_alphabet,
    encode_threads,
    split_pattern,
    tiktoken_encoding,
)

pytest.importorskip("tiktoken")

BIGGER_VOCAB = 4000


def real_texts(data: Path) -> list[str]:
    """Every real document of tests/data a tokenizer could meet: prose in 14 languages, code, LaTeX, web text."""
    texts = []
    for pattern in ("tokenize/*.txt", "clean/*.txt", "langid/*.txt", "python-stdlib/*.py", "demo/arxiv/**/*.tex"):
        texts += [p.read_text(encoding="utf-8") for p in sorted(data.glob(pattern))]
    with gzip.open(data / "demo" / "c4-en.jsonl.gz", "rt", encoding="utf-8") as f:
        texts += [json.loads(line)["text"] for line in f]
    texts += pq.read_table(data / "demo" / "debian-handbook.parquet")["text"].to_pylist()
    return texts


def _texts_table(texts: list[str]) -> pa.Table:
    return pa.table({"doc_id": pa.array(range(len(texts)), pa.uint64()), "text": pa.array(texts, pa.large_string())})


def _write(tmp_path: Path, spec: dict, name: str = "tokenizer.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(spec), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def texts(data_dir) -> list[str]:
    return real_texts(data_dir)


@pytest.fixture(scope="module")
def bigger(tmp_path_factory, texts) -> str:
    """A 4000-token tokenizer trained with the repository's trainer on all of ``texts`` (under a second)."""
    sample = pa.table({"text": texts, "source": ["x"] * len(texts), "repeat": pa.array([1] * len(texts), pa.int32())})
    tokenizer_json, _ = train_on_samples(BbpeParams(vocab_size=BIGGER_VOCAB).model_dump_json(), sample)
    return _write(tmp_path_factory.mktemp("bigger"), json.loads(tokenizer_json))


def engines(path: str, **params) -> tuple[TokenizeBbpeV1, TokenizeBbpeV1]:
    """The stage with each engine, set up on the tokenizer at ``path``."""
    stages = [TokenizeBbpeV1({"path": path, "engine": engine, **params}) for engine in ("tokenizers", "tiktoken")]
    for stage in stages:
        stage.setup()
    return stages[0], stages[1]


@pytest.fixture(scope="module")
def small_pair(trained):
    return engines(trained["path"])


@pytest.fixture(scope="module")
def bigger_pair(bigger):
    return engines(bigger)


def test_alphabet_is_the_byte_level_pre_tokenizers(data_dir):
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = byte_level_alphabet()
    assert sorted(alphabet) == sorted(ByteLevel.alphabet()) and sorted(alphabet.values()) == list(range(256))
    byte_level = ByteLevel(add_prefix_space=False, use_regex=False)
    every_char = "".join(chr(c) for c in range(1, 0x110000, 97) if not 0xD800 <= c < 0xE000) + "\x00\x7f\xff"
    for text in [every_char, *real_texts(data_dir)[:20]]:
        mapped = "".join(piece for piece, _ in byte_level.pre_tokenize_str(text))
        assert bytes(alphabet[c] for c in mapped) == text.encode("utf-8")


@pytest.mark.parametrize("pair", ["small_pair", "bigger_pair"])
def test_same_tables_on_real_multilingual_text_and_code(request, pair, texts, corpus):
    hf, tt = request.getfixturevalue(pair)
    for table in (corpus, _texts_table(texts)):
        expected = hf.process(table).table
        assert tt.process(table).table.equals(expected)
        assert sum(expected["n_tokens"].to_pylist()) > 1000


def _code_point_docs(code_points) -> pa.Table:
    """Each character alone, doubled, and next to letters, digits, spaces, newlines and punctuation."""
    chars = [chr(c) for c in code_points if not 0xD800 <= c < 0xE000]
    context = "a{0}b {0}1\n{0}{0}! {0}'s"
    return _texts_table(["".join(context.format(c) for c in chars[i : i + 512]) for i in range(0, len(chars), 512)])


def test_same_ids_for_every_bmp_character_in_context(bigger_pair):
    """Split regex run by Oniguruma (tokenizers) vs fancy-regex (tiktoken): same pieces for each character."""
    hf, tt = bigger_pair
    table = _code_point_docs([*range(0x10000), *range(0x10000, 0x110000, 97)])
    assert tt.process(table).table.equals(hf.process(table).table)


@pytest.mark.slow
def test_same_ids_for_every_code_point_in_context(bigger_pair):
    hf, tt = bigger_pair
    table = _code_point_docs(range(0x110000))
    assert tt.process(table).table.equals(hf.process(table).table)


FRAGMENTS = [
    " ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u00a0", "\u2028", "\u3000", "\x0b", "\x0c", "\x85",
    "0", "7", "123", "٣", "３", "²", "Ⅻ", "½", "'s", "'LL", "'t", "<|endoftext|>", "<|pad|>", "<|", "|>",
    "中文", "数据集", "カタカナ", "한국어", "😀", "👍🏽", "🧑\u200d🚀", "🇩🇪", "e\u0301", "\ufeff", "\u200b", "\x00",
    "def f(x):", "  return", "==", "->", "...", "Straße", "Ω", "ﬁ", "a", "the", " word",
]
pieces = st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12))
documents = st.lists(pieces, max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(docs=st.lists(documents, min_size=1, max_size=6))
def test_same_ids_on_arbitrary_unicode(small_pair, bigger_pair, docs):
    table = _texts_table(docs)
    for hf, tt in (small_pair, bigger_pair):
        assert tt.process(table).table.equals(hf.process(table).table)


def test_the_default_two_stage_tokenizer_with_multi_word_tokens_takes_the_tiktoken_path(bigger, bigger_pair):
    """The trained tokenizers above are the defaults: superword pieces, and multi-word tokens among the ids
    both engines produce."""
    spec = _spec(bigger)
    assert spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == SUPERWORD_REGEX
    multi_word = [t for t in spec["model"]["vocab"] if "\u0120" in t[1:].rstrip("\u0120")]
    assert len(multi_word) > 100
    hf, tt = bigger_pair
    assert (hf.engine, tt.engine) == ("tokenizers", "tiktoken")
    text = " ".join(t.replace("\u0120", " ") for t in multi_word[:300]) + ", and the end. Of the, in the: it is"
    table = _texts_table([text, text.upper(), text.replace(" ", "  ")])
    expected = hf.process(table).table
    assert tt.process(table).table.equals(expected)
    used = {hf.tokenizer.id_to_token(i) for i in expected["tokens"][0].as_py()}
    assert len(used & set(multi_word)) > 100


def test_stage_contract_table_gives_identical_tables(tmp_path):
    spec = importlib.util.spec_from_file_location("stage_contract", Path(__file__).parents[1] / "test_contract.py")
    contract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(contract)
    params = TokenizeBbpeV1.contract_params(tmp_path)
    hf, tt = engines(params["path"])
    table = contract.odd_table()
    first = tt.process(table)
    assert first.reject_reason is None
    assert first.table.equals(hf.process(table).table)
    assert tt.process(table).table.equals(first.table)  # deterministic
    assert tt.process(table.slice(0, 0)).table.num_rows == 0


def test_a_tokenizer_without_special_tokens_gives_the_same_ids(trained, tmp_path, corpus):
    spec = _spec(trained["path"])
    for token in spec.pop("added_tokens"):
        del spec["model"]["vocab"][token["content"]]
    spec["added_tokens"] = []
    hf, tt = engines(_write(tmp_path, spec))
    assert tt.process(corpus).table.equals(hf.process(corpus).table)


def test_threads_and_batch_sizes_give_the_same_column(bigger, bigger_pair, texts):
    hf, _ = bigger_pair
    expected = hf.process(_texts_table(texts)).table
    for threads, batch_bytes in ((1, 5000), (2, 8 * 1024 * 1024), (3, 20000)):
        stage = TokenizeBbpeV1({"path": bigger, "engine": "tiktoken", "batch_bytes": batch_bytes})
        stage.setup()
        stage.encode.threads = threads
        assert stage.process(_texts_table(texts)).table.equals(expected)


def test_a_whitespace_run_past_the_regex_limit_falls_back_to_tokenizers(small_pair):
    hf, tt = small_pair
    text = "before" + " " * 1_000_000 + "after 1 2"
    with pytest.raises(ValueError, match="[Rr]egex"):  # fancy-regex's backtracking limit
        tt.encode.encoding.encode_to_numpy(text, allowed_special=frozenset(), disallowed_special=())
    table = _texts_table(["x y", text, "z"])
    assert tt.process(table).table.equals(hf.process(table).table)


def test_thread_budget_follows_the_tokenizers_settings(monkeypatch):
    monkeypatch.setenv("RAYON_NUM_THREADS", "3")
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    assert encode_threads() == 3
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    assert encode_threads() == 1
    monkeypatch.delenv("TOKENIZERS_PARALLELISM")
    monkeypatch.delenv("RAYON_NUM_THREADS")
    assert 1 <= encode_threads() == (__import__("os").cpu_count() or 1)


# --- Refusals -------------------------------------------------------------------------------------------


def _spec(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _refused(path: str, match: str, **params) -> str:
    stage = TokenizeBbpeV1({"path": path, "engine": "tiktoken", **params})
    with pytest.raises(TiktokenIncompatible, match=match) as error:
        stage.setup()
    message = str(error.value)
    assert path in message and "engine: tokenizers" in message
    return message


def test_refuses_a_normalizer(trained, tmp_path):
    spec = _spec(trained["path"])
    spec["normalizer"] = {"type": "NFC"}
    _refused(_write(tmp_path, spec), "normalizer")


def test_refuses_parse_special_tokens(trained):
    _refused(trained["path"], "parse_special_tokens", parse_special_tokens=True)


def test_refuses_another_split_regex(tmp_path):
    cl100k = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
    tokenizer = new_tokenizer(BbpeParams(split_regex=cl100k, individual_digits=False, superword_share=0))
    _refused(_write(tmp_path, json.loads(tokenizer.to_str())), "SPLIT_REGEX")


def test_refuses_ids_out_of_merge_order(trained, tmp_path):
    spec = _spec(trained["path"])
    vocab = spec["model"]["vocab"]
    first, second = ("".join(spec["model"]["merges"][i]) for i in (0, 1))
    vocab[first], vocab[second] = vocab[second], vocab[first]
    _refused(_write(tmp_path, spec), "merge order and id order differ")


def test_refuses_a_token_the_merges_never_make_of_its_own_bytes(trained, tmp_path):
    """(a, b) then (b, c) then (a, bc): the merges leave "abc" as [ab, c], tiktoken's shortcut gives [abc]."""
    spec = _spec(trained["path"])
    a, b, c = "Ā", "ā", "Ă"  # the byte-level characters of bytes 0x00, 0x01, 0x02
    vocab = spec["model"]["vocab"]
    assert not {a + b, b + c, a + b + c} & vocab.keys()
    top = max(vocab.values())
    vocab.update({a + b: top + 1, b + c: top + 2, a + b + c: top + 3})
    spec["model"]["merges"] += [[a, b], [b, c], [a, b + c]]
    path = _write(tmp_path, spec)
    _refused(path, "encode the bytes of token")
    # The check is what keeps the ids equal: built anyway, tiktoken gives another id for these bytes.
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(path).encode("\x00\x01\x02", add_special_tokens=False).ids
    assert ids == [top + 1, vocab[c]]
    assert tiktoken_encoding(spec, "unchecked").encode_ordinary("\x00\x01\x02") == [top + 3]


def test_refuses_added_tokens_that_are_not_special(trained, tmp_path):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(trained["path"])
    tokenizer.add_tokens(["hello world"])
    _refused(_write(tmp_path, json.loads(tokenizer.to_str())), "not special")


def test_refuses_a_model_that_is_not_plain_bpe(trained, tmp_path):
    spec = _spec(trained["path"])
    spec["model"]["dropout"] = 0.1
    spec["model"]["byte_fallback"] = True
    message = _refused(_write(tmp_path, spec), "dropout")
    assert "byte_fallback" in message


def test_the_default_engine_is_tiktoken_where_proven_and_tokenizers_elsewhere(trained, tmp_path, corpus):
    assert TokenizeBbpeV1.Params().engine == "auto"
    proven = TokenizeBbpeV1({"path": trained["path"]})
    proven.setup()
    assert proven.engine == "tiktoken" and hasattr(proven.encode, "encoding")
    spec = _spec(trained["path"])
    spec["normalizer"] = {"type": "NFC"}
    unproven = TokenizeBbpeV1({"path": _write(tmp_path, spec)})
    unproven.setup()  # no refusal: auto falls back
    assert unproven.engine == "tokenizers" and not hasattr(unproven.encode, "encoding")
    forced = TokenizeBbpeV1({"path": trained["path"], "engine": "tokenizers"})
    forced.setup()
    assert forced.engine == "tokenizers"
    assert proven.process(corpus).table.equals(forced.process(corpus).table)


def test_the_engine_is_counted_per_row(trained, corpus):
    for engine in ("tiktoken", "tokenizers"):
        stage = TokenizeBbpeV1({"path": trained["path"], "engine": engine})
        stage.setup()
        assert stage.process(corpus).counters == {f"engine_{engine}": corpus.num_rows}
        assert stage.process(corpus.slice(0, 0)).counters is None


# --- GPT-2's byte-level tokenizer --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2(data_dir, tmp_path_factory) -> str:
    """GPT-2's tokenizer (vocab + merges of tests/data/tokenize, ByteLevel pre-tokenizer with its own regex)."""
    with gzip.open(data_dir / "tokenize" / "gpt2-tokenizer.json.gz", "rt", encoding="utf-8") as f:
        spec = json.load(f)
    assert spec["pre_tokenizer"] == {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                     "use_regex": True}
    return _write(tmp_path_factory.mktemp("gpt2"), spec)


@pytest.fixture(scope="module")
def gpt2_pair(gpt2):
    return engines(gpt2)


GPT2_CASES = [
    "Hello world! It's a test, isn't it? They'll say we've done what I'd've wanted, you're right, I'm here.",
    "SHOUTING'S DIFFERENT: IT'S, THEY'LL, WE'VE", "  leading   and trailing spaces   ", "tabs\tand\n\nnewlines\r\n",
    "digits 0 12 345 6789 3.14159 1,000,000 ٣٤ ３４ ² ½", "emoji 😀👍🏽🧑\u200d🚀🇩🇪 and ZWJ", "中文数据集 カタカナ 한국어",
    "Straße Ω ﬁ e\u0301 \ufeff\u200b\x00\x7f", "<|endoftext|> in the text <|endoftext|><|endoftext|>",
    "def f(x):\n    return x ** 2  # comment\n\n\n", " " * 40 + "x" + "\n" * 12, "'s's 'S' '' ' ", "   ",
]


def test_gpt2_is_accepted_with_tiktokens_own_gpt2_regex(gpt2, gpt2_pair):
    from tiktoken_ext.openai_public import r50k_pat_str

    _, tt = gpt2_pair
    assert tt.engine == "tiktoken"
    assert tt.encode.encoding._pat_str == r50k_pat_str == split_pattern(_spec(gpt2))


def test_gpt2_ids_are_the_same_on_varied_and_real_text(gpt2_pair, texts, corpus):
    hf, tt = gpt2_pair
    for table in (_texts_table(GPT2_CASES), corpus, _texts_table(texts)):
        expected = hf.process(table).table
        assert tt.process(table).table.equals(expected)
        assert sum(expected["n_tokens"].to_pylist()) > 100
    # The special token's string stays text: never its id.
    ids = tt.process(_texts_table(["a <|endoftext|> b"])).table["tokens"][0].as_py()
    assert 50256 not in ids and len(ids) > 3


def test_gpt2_ids_are_the_same_for_every_bmp_character_in_context(gpt2_pair):
    hf, tt = gpt2_pair
    table = _code_point_docs([*range(0x10000), *range(0x10000, 0x110000, 97)])
    assert tt.process(table).table.equals(hf.process(table).table)


@settings(max_examples=200, deadline=None)
@given(docs=st.lists(documents, min_size=1, max_size=6))
def test_gpt2_ids_are_the_same_on_arbitrary_unicode(gpt2_pair, docs):
    hf, tt = gpt2_pair
    table = _texts_table(docs)
    assert tt.process(table).table.equals(hf.process(table).table)


def _gpt2_split(*after: dict) -> dict:
    split = {"type": "Split", "pattern": {"Regex": GPT2_SPLIT_REGEX}, "behavior": "Isolated", "invert": False}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    return {"type": "Sequence", "pretokenizers": [split, *after, byte_level]}


def test_gpt2_regex_as_an_explicit_split_is_accepted(gpt2, tmp_path, corpus):
    spec = _spec(gpt2)
    spec["pre_tokenizer"] = _gpt2_split()
    hf, tt = engines(_write(tmp_path, spec))
    assert tt.process(corpus).table.equals(hf.process(corpus).table)


@pytest.mark.parametrize("pre_tokenizer, match", [
    ({"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}, "prefix space"),
    ({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}, "splits nothing"),
    (_gpt2_split({"type": "Digits", "individual_digits": True}), "Digits"),
])
def test_gpt2_variants_tiktoken_cannot_follow_are_refused(gpt2, tmp_path, pre_tokenizer, match):
    spec = _spec(gpt2)
    spec["pre_tokenizer"] = pre_tokenizer
    path = _write(tmp_path, spec)
    _refused(path, match)
    auto = TokenizeBbpeV1({"path": path})
    auto.setup()
    assert auto.engine == "tokenizers"


class _EngineActor:
    """The executor's set-up of the stage in a Ray actor (its CPU budget included)."""

    def __init__(self, path: str):
        from gristmill.pipeline._internal.runner import set_up_stage
        from gristmill.pipeline.executors import assigned_cpus
        from gristmill.pipeline.plan import Step

        step = Step(1, "steps[0]", TokenizeBbpeV1.name, {"path": path, "engine": "tiktoken"})
        self.stage = set_up_stage(step, "unused-run-dir", assigned_cpus())

    def threads(self) -> int:
        return self.stage.encode.threads


@pytest.mark.ray
def test_in_a_ray_actor_it_uses_the_cpus_ray_assigned(ray_cluster, trained):
    actor = ray_cluster.remote(num_cpus=1)(_EngineActor).remote(trained["path"])
    assert ray_cluster.get(actor.threads.remote()) == 1
    ray_cluster.kill(actor)


def test_the_engine_counter_is_split_over_the_parts_of_a_batch(trained, corpus):
    """A batch of several ingest parts: each part's stats count its own rows under the engine's name."""
    import numpy as np

    from gristmill.pipeline._internal.runner import account
    from gristmill.pipeline.plan import Step
    from gristmill.stages.base import PART_COLUMN

    parts = np.arange(corpus.num_rows, dtype=np.uint64) % 3
    table = corpus.set_column(corpus.schema.get_field_index(PART_COLUMN), PART_COLUMN, pa.array(parts))
    stage = TokenizeBbpeV1({"path": trained["path"]})
    stage.setup()
    step = Step(1, "steps[0]", TokenizeBbpeV1.name, {"path": trained["path"]})
    sources = lambda t: np.array(["x"] * t.num_rows, dtype=object)  # noqa: E731
    _, _, reports = account(step, sources, table, stage.process(table), 0.0)
    counted = {report["part"]: report["counters"] for _, report in reports}
    assert counted == {p: {"engine_tiktoken": int((parts == p).sum())} for p in range(3)}
