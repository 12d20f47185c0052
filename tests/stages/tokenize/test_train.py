"""The ``tokenizer.train_bbpe_v1`` global step (stages/tokenize/train.py)."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer

from gristmill.pipeline.registry import get_stage
from gristmill.stages.base import GlobalStage
from gristmill.stages.tokenize.train import TrainBbpeV1


def test_registered_as_a_global_stage():
    assert get_stage("tokenizer.train_bbpe_v1") is TrainBbpeV1
    assert issubclass(TrainBbpeV1, GlobalStage)


def test_build_trains_from_parquet_parts_into_the_run_tokenizer_dir(corpus, make_parts, make_context, tmp_path):
    parts = make_parts(corpus, tmp_path / "segments" / "01-x", 4)
    stage = TrainBbpeV1({"vocab_size": 700, "sample_bytes": 30_000,
                         "source_weights": {"common_crawl": 2, "wikipedia": 1}})
    assert stage.build(make_context(parts, tmp_path)) is None

    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer" / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == 700
    meta = json.loads((tmp_path / "tokenizer" / "tokenizer_meta.json").read_text())
    sources = meta["sample"]["sources"]
    assert {k: v["target_share"] for k, v in sources.items()} == {"common_crawl": 0.666667, "github": 0.0,
                                                                  "wikipedia": 0.333333}
    # Whole documents are drawn by hash, so size and shares are close to, not exactly, the targets.
    assert meta["sample"]["bytes"] == pytest.approx(30_000, rel=0.15)
    assert sources["common_crawl"]["share"] == pytest.approx(2 / 3, abs=0.08)
    assert sources["wikipedia"]["share"] == pytest.approx(1 / 3, abs=0.08)
    assert sources["github"]["bytes"] == 0  # a source the weights leave out is not sampled
    assert all(v["bytes"] <= v["available_bytes"] for v in sources.values())
    assert meta["sample"]["seed"] == 17
    assert not list((tmp_path / "tokenizer").glob("*.tmp-*"))


def test_mixture_preset_sets_the_sample_shares(corpus, make_parts, make_context, tmp_path):
    from gristmill.mixtures.solver import load_mixture

    parts = make_parts(corpus, tmp_path / "segments" / "01-x", 2)
    stage = TrainBbpeV1({"vocab_size": 700, "sample_bytes": 30_000, "mixture": "llama"})
    stage.build(make_context(parts, tmp_path))
    sources = json.loads((tmp_path / "tokenizer" / "tokenizer_meta.json").read_text())["sample"]["sources"]
    ratios = load_mixture("llama").ratios
    present = {s: ratios[s] for s in sources}
    total = sum(present.values())
    assert {k: v["target_share"] for k, v in sources.items()} == \
        {s: pytest.approx(r / total, abs=1e-6) for s, r in present.items()}
    with pytest.raises(ValueError, match="either `mixture` or `source_weights`"):
        TrainBbpeV1({"mixture": "llama", "source_weights": {"c4": 1}})


def test_sample_depends_on_the_seed_not_on_how_rows_are_split_into_parts(corpus, make_parts, make_context, tmp_path):
    params = {"vocab_size": 600, "sample_bytes": 30_000}
    metas = []
    for name, n_parts, seed in (("a", 2, None), ("b", 5, None), ("c", 2, 99)):
        parts = make_parts(corpus, tmp_path / name / "parts", n_parts)
        TrainBbpeV1({**params, "seed": seed}).build(make_context(parts, tmp_path / name))
        metas.append(json.loads((tmp_path / name / "tokenizer" / "tokenizer_meta.json").read_text()))
    assert metas[0]["sample"] == metas[1]["sample"]
    assert metas[0]["tokenizer_sha256"] == metas[1]["tokenizer_sha256"]
    assert metas[2]["sample"]["seed"] == 99
    assert metas[2]["sample"]["sources"] != metas[0]["sample"]["sources"]


def test_build_without_parts_or_text_fails_clearly(corpus, make_parts, make_context, tmp_path):
    with pytest.raises(ValueError, match="no input parts"):
        TrainBbpeV1().build(make_context([], tmp_path))
    empty = make_parts(corpus.slice(0, 0), tmp_path / "empty", 1)
    with pytest.raises(ValueError, match="every input part is empty"):
        TrainBbpeV1().build(make_context(empty, tmp_path))


def test_apply_passes_documents_through(corpus):
    out = TrainBbpeV1().apply(corpus, None)
    assert out.table.equals(corpus) and out.reject_reason is None


@pytest.mark.ray
def test_ray_build_gives_the_same_tokenizer(ray_cluster, trained, make_context, tmp_path):
    ctx = make_context(trained["parts"], tmp_path, executor="ray")
    TrainBbpeV1(trained["params"]).build(ctx)
    meta = json.loads((tmp_path / "tokenizer" / "tokenizer_meta.json").read_text())
    assert meta["tokenizer_sha256"] == trained["meta"]["tokenizer_sha256"]
    assert meta["sample"] == trained["meta"]["sample"]
