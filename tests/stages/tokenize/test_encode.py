"""The ``tokenize.bbpe_v1`` stage (stages/tokenize/encode.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from gristmill.core.layout import RunLayout
from gristmill.pipeline.registry import get_stage
from gristmill.stages.base import DOCUMENT_SCHEMA, PART_COLUMN
from gristmill.stages.tokenize.encode import TokenizeBbpeV1, batch_bounds


@pytest.fixture(scope="module")
def stage(trained) -> TokenizeBbpeV1:
    stage = TokenizeBbpeV1({"path": trained["path"]})
    stage.setup()
    return stage


@pytest.fixture(scope="module")
def reference(trained) -> Tokenizer:
    return Tokenizer.from_file(trained["path"])


def test_registered_as_an_actor_stage():
    import gristmill.stages.tokenize  # noqa: F401

    assert get_stage("tokenize.bbpe_v1") is TokenizeBbpeV1
    assert TokenizeBbpeV1.resources.actor
    assert TokenizeBbpeV1.output_columns == {"tokens": pa.list_(pa.int32()), "n_tokens": pa.int32()}


def test_tokens_equal_encode_batch_and_columns_are_kept(stage, reference, corpus):
    out = stage.process(corpus)
    assert out.reject_reason is None
    table = out.table
    assert table.column_names == corpus.column_names + ["tokens", "n_tokens"]
    assert table.select(corpus.column_names).equals(corpus)  # every input column untouched, _part included
    assert table.schema.field("tokens").type == pa.list_(pa.int32())
    assert table.schema.field("n_tokens").type == pa.int32()
    expected = [e.ids for e in reference.encode_batch(corpus["text"].to_pylist(), add_special_tokens=False)]
    assert table["tokens"].to_pylist() == expected
    assert table["n_tokens"].to_pylist() == [len(ids) for ids in expected]
    # No separator appended: the packer adds <|endoftext|>.
    assert all(0 not in ids for ids in expected)


def test_small_encode_batches_give_the_same_column(trained, stage, corpus):
    tiny = TokenizeBbpeV1({"path": trained["path"], "batch_bytes": 3000})
    tiny.setup()
    out = tiny.process(corpus).table
    assert out["tokens"].num_chunks > 10
    assert out.equals(stage.process(corpus).table)


def test_batch_bounds_cover_every_row_once():
    sizes = np.array([5, 1, 100, 2, 2, 2, 0, 50])
    bounds = batch_bounds(sizes, 6)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(sizes)
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(bounds, bounds[1:]))
    assert (2, 3) in bounds  # a document over the limit gets a batch of its own
    assert batch_bounds(np.array([], dtype=np.int64), 6) == []


def test_empty_table_gives_empty_columns(stage):
    empty = DOCUMENT_SCHEMA.append(pa.field(PART_COLUMN, pa.uint64())).empty_table()
    out = stage.process(empty).table
    assert out.num_rows == 0
    assert out.schema.field("tokens").type == pa.list_(pa.int32())
    assert out.schema.field("n_tokens").type == pa.int32()


def test_empty_and_null_text_get_no_tokens(stage):
    table = pa.table({"text": pa.array(["", None, "a b"], pa.large_string())})
    out = stage.process(table).table
    assert out["n_tokens"].to_pylist()[:2] == [0, 0]
    assert out["n_tokens"].to_pylist()[2] > 0


def test_special_token_strings_in_text_are_plain_text(trained, stage, reference):
    text = "a model wrote <|endoftext|> and <|pad|> here"
    ids = stage.process(pa.table({"text": [text]})).table["tokens"].to_pylist()[0]
    assert 0 not in ids and 1 not in ids
    assert reference.decode(ids, skip_special_tokens=False) == text
    parsing = TokenizeBbpeV1({"path": trained["path"], "parse_special_tokens": True})
    parsing.setup()
    assert 0 in parsing.process(pa.table({"text": [text]})).table["tokens"].to_pylist()[0]


def test_rerun_replaces_its_own_columns(stage, corpus):
    once = stage.process(corpus).table
    assert stage.process(once).table.equals(once)


def test_default_path_is_the_run_directory_tokenizer(trained, corpus):
    stage = TokenizeBbpeV1()
    stage.layout = RunLayout(trained["run_dir"])
    stage.setup()
    assert stage.process(corpus.slice(0, 5)).table["n_tokens"].to_pylist()[0] > 0


def test_missing_tokenizer_fails_at_setup_naming_the_path(tmp_path):
    stage = TokenizeBbpeV1()
    with pytest.raises(ValueError, match="needs a tokenizer"):
        stage.setup()
    stage.layout = RunLayout(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "tokenizer" / "tokenizer.json")):
        stage.setup()


def test_a_tokenizer_on_an_object_store_is_read_with_one_round_trip_each_for_size_and_bytes(trained, s3_query,
                                                                                             s3_requests):
    from pathlib import Path

    from gristmill.core.storage import resolve

    remote = resolve(f"s3://gristmill-run/tokenizers/tokenizer.json?{s3_query}")
    remote.write_bytes(Path(trained["path"]).read_bytes())
    s3_requests.requests.clear()
    stage = TokenizeBbpeV1({"path": str(remote)})
    stage.setup()
    assert sorted(method for method, key in s3_requests.requests if key.endswith("/tokenizer.json")) == ["GET", "HEAD"]
    missing = str(remote).replace("tokenizer.json", "missing.json")
    with pytest.raises(FileNotFoundError, match=r"file s3://gristmill-run/tokenizers/missing.json\?.* does not exist"):
        TokenizeBbpeV1({"path": missing}).setup()


def test_contract_params_build_a_usable_tokenizer(tmp_path, corpus):
    stage = TokenizeBbpeV1(TokenizeBbpeV1.contract_params(tmp_path))
    stage.setup()
    assert stage.process(corpus).table.num_rows == corpus.num_rows


ROUND_TRIP_SAMPLES = [
    "",
    "中文分词测试：数据、模型与训练。",
    "emoji 😀👍🏽🧑‍🚀 flags 🇩🇪",
    "def f(x):\n\treturn x  \t # tab\r\n",
    "control \x00\x01\x1b[0m\x7f chars",
    "  leading and trailing spaces  ",
    "don't , spaces before . punctuation ?",
    "<|endoftext|><|pad|>",
    "e\u0301 combining (not NFC) \ufeff BOM \u200b zwsp",
]


@pytest.mark.parametrize("text", ROUND_TRIP_SAMPLES)
def test_round_trip_examples(stage, reference, text):
    ids = stage.process(pa.table({"text": [text]})).table["tokens"].to_pylist()[0]
    assert reference.decode(ids, skip_special_tokens=False) == text


# Any valid Unicode: every code point except surrogates (they cannot be UTF-8 encoded).
unicode_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(unicode_text, min_size=1, max_size=8))
def test_decode_of_encode_is_identity(stage, reference, texts):
    tokens = stage.process(pa.table({"text": pa.array(texts, pa.large_string())})).table["tokens"].to_pylist()
    assert reference.decode_batch(tokens, skip_special_tokens=False) == texts


class _StageActor:
    """What an actor-pool worker does with the stage: the executor's set-up (layout, CPU budget), then batches."""

    def __init__(self, run_dir: str):
        from gristmill.pipeline._internal.runner import set_up_stage
        from gristmill.pipeline.executors import assigned_cpus
        from gristmill.pipeline.plan import Step

        self.stage = set_up_stage(Step(1, "steps[0]", TokenizeBbpeV1.name, {}), run_dir, assigned_cpus())

    def process(self, table: pa.Table) -> tuple[pa.Table, str | None]:
        import os

        return self.stage.process(table).table, os.environ.get("TOKENIZERS_PARALLELISM")


@pytest.mark.ray
def test_in_a_ray_actor_it_gives_the_same_tokens_on_one_thread(ray_cluster, trained, stage, corpus):
    actor = ray_cluster.remote(num_cpus=1)(_StageActor).remote(str(trained["run_dir"]))
    table, parallelism = ray_cluster.get(actor.process.remote(corpus))
    assert table.equals(stage.process(corpus).table)
    assert parallelism == "false"  # one CPU reserved: the Rust pool would otherwise use every core
    ray_cluster.kill(actor)
