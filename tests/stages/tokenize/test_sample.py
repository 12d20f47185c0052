"""Drawing the training sample (stages/tokenize/sample.py)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from gristmill.mixtures.solver import load_mixture
from gristmill.stages.tokenize.sample import (
    count_table, default_weights, merge_counts, plan_sample, sample_table, unit_hash,
)
from gristmill.stages.tokenize.train import TrainBbpeV1


def test_unit_hash_is_fixed_by_seed_and_doc_id_and_uniform():
    ids = np.arange(200_000, dtype=np.uint64) | np.uint64(3 << 32)
    u = unit_hash(ids, seed=5)
    assert np.array_equal(u, unit_hash(ids, seed=5))
    assert np.array_equal(u[1000:2000], unit_hash(ids[1000:2000], seed=5))  # independent of batching
    assert not np.array_equal(u, unit_hash(ids, seed=6))
    assert u.min() >= 0.0 and u.max() < 1.0
    counts, _ = np.histogram(u, bins=10, range=(0, 1))
    assert np.all(np.abs(counts - 20_000) < 1_000)


def test_count_table_sums_utf8_bytes_per_source(corpus):
    counts = count_table(corpus)
    for source in ("common_crawl", "github", "wikipedia"):
        texts = [t for t, s in zip(corpus["text"].to_pylist(), corpus["source"].to_pylist()) if s == source]
        assert counts[source] == {"bytes": sum(len(t.encode("utf-8")) for t in texts), "documents": len(texts)}


def test_plan_defaults_to_the_proportions_present():
    available = {"a": {"bytes": 3000, "documents": 3}, "b": {"bytes": 1000, "documents": 1}}
    plan = plan_sample(available, None, sample_bytes=2000, max_epochs=1.0)
    assert plan["target_share"] == {"a": 0.75, "b": 0.25}
    assert plan["fractions"] == {"a": 0.5, "b": 0.5}


def test_plan_follows_weights_and_caps_repeats():
    available = {"web": {"bytes": 9000, "documents": 9}, "code": {"bytes": 100, "documents": 1},
                 "other": {"bytes": 500, "documents": 5}}
    plan = plan_sample(available, {"web": 0.5, "code": 0.5, "books": 1.0}, sample_bytes=1000, max_epochs=3.0)
    assert plan["target_share"] == {"code": 0.5, "other": 0.0, "web": 0.5}
    assert plan["fractions"]["web"] == pytest.approx(500 / 9000)
    assert plan["fractions"]["code"] == 3.0  # wants 5x, capped at max_epochs
    assert plan["fractions"]["other"] == 0.0
    assert plan["weighted_sources_absent"] == ["books"]


def test_plan_refuses_weights_that_match_nothing_present():
    with pytest.raises(ValueError, match="no weight to any source present"):
        plan_sample({"web": {"bytes": 10, "documents": 1}}, {"books": 1.0}, 100, 1.0)
    with pytest.raises(ValueError, match="every input part is empty"):
        plan_sample({"web": {"bytes": 0, "documents": 2}}, None, 100, 1.0)


def _docs(n: int, source: str, first_id: int) -> pa.Table:
    return pa.table({
        "doc_id": pa.array(np.arange(first_id, first_id + n, dtype=np.uint64)),
        "source": pa.array([source] * n, pa.string()),
        "text": pa.array(["x" * 100] * n, pa.large_string()),
    })


def test_sample_table_keeps_about_the_fraction_per_source_and_repeats_whole_copies():
    table = pa.concat_tables([_docs(20_000, "web", 0), _docs(1000, "code", 1 << 32), _docs(50, "gone", 2 << 32)])
    sample = sample_table(table, {"web": 0.1, "code": 2.5}, seed=1)
    got = merge_counts([count_table(sample.select(["source", "text"]))])
    assert set(got) == {"web", "code"}  # a source without a fraction is not sampled
    assert abs(got["web"]["documents"] - 2000) < 150
    code = sample.filter(pc.equal(sample["source"], "code"))["repeat"].to_numpy()
    assert set(code) == {2, 3} and abs((code == 3).sum() - 500) < 80
    # Deterministic, and the same whether the rows come in one table or in parts.
    assert sample.equals(sample_table(table, {"web": 0.1, "code": 2.5}, seed=1))
    halves = [sample_table(table.slice(0, 7000), {"web": 0.1, "code": 2.5}, seed=1),
              sample_table(table.slice(7000), {"web": 0.1, "code": 2.5}, seed=1)]
    assert pa.concat_tables(halves).equals(sample)


def test_sample_table_of_an_empty_table_is_empty():
    assert sample_table(_docs(0, "web", 0), {"web": 1.0}, seed=0).num_rows == 0


def test_plan_bounds_how_far_a_plentiful_source_exceeds_its_share():
    # Web text is short of its share; code is plentiful and would fill the sample in its place.
    available = {"web": {"bytes": 1000, "documents": 10}, "code": {"bytes": 100_000, "documents": 100}}
    weights = {"web": 0.9, "code": 0.1}
    unbounded = plan_sample(available, weights, sample_bytes=50_000, max_epochs=1.0)
    assert unbounded["fractions"]["code"] * 100_000 == pytest.approx(5000)  # 5x the web text: 83% code
    plan = plan_sample(available, weights, sample_bytes=50_000, max_epochs=1.0, max_share_ratio=1.5)
    code = plan["fractions"]["code"] * 100_000
    assert plan["fractions"]["web"] == 1.0
    assert code / (code + 1000) == pytest.approx(0.15)  # 1.5 x its 10% share, the sample made smaller
    assert plan["planned_bytes"] == pytest.approx(1000 + code, abs=1)
    strict = plan_sample(available, weights, sample_bytes=50_000, max_epochs=1.0, max_share_ratio=1.0)
    assert strict["fractions"]["code"] * 100_000 == pytest.approx(1000 / 9)  # exactly the target shares
    # When every source has enough, the bound changes nothing.
    plenty = plan_sample(available, weights, sample_bytes=1000, max_epochs=1.0, max_share_ratio=1.5)
    assert plenty["fractions"] == {"web": 0.9, "code": pytest.approx(0.001)}


def test_default_weights_are_the_llama_shares_only_for_llama_sources():
    weights, why = default_weights(["common_crawl", "github"], "llama")
    assert weights == load_mixture("llama").ratios and "llama" in why
    weights, why = default_weights(["common_crawl", "my_forum"], "llama")
    assert weights is None and "my_forum" in why  # a source the preset does not name: the bytes present
    assert default_weights(["common_crawl"], None)[0] is None


def _llama_style_corpus(data_dir) -> pa.Table:
    """English web text, German and Chinese sentences, and three times as many bytes of Python code."""
    docs = []
    en = (data_dir / "tokenize" / "corpus_en.txt").read_text(encoding="utf-8").splitlines()
    docs += [("common_crawl", "\n".join(en[i : i + 8])) for i in range(0, len(en), 8)]
    for name in ("de.txt", "zh.txt"):
        docs += [("wikipedia", line) for line in (data_dir / "tokenize" / name).read_text(encoding="utf-8").splitlines()]
    for path in sorted((data_dir / "python-stdlib").glob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        docs += [("github", "\n".join(lines[i : i + 30])) for i in range(0, len(lines), 30)]
    return pa.table({
        "doc_id": pa.array(np.arange(len(docs), dtype=np.uint64) | np.uint64(5 << 32)),
        "source": pa.array([s for s, _ in docs], pa.string()),
        "text": pa.array([t for _, t in docs], pa.large_string()),
    })


def test_a_llama_style_run_trains_on_llama_shares_with_code_capped(data_dir, make_parts, make_context, tmp_path):
    table = _llama_style_corpus(data_dir)
    available = count_table(table)
    assert available["github"]["bytes"] > 0.5 * sum(c["bytes"] for c in available.values())  # code dominates
    TrainBbpeV1({"vocab_size": 600}).build(make_context(make_parts(table, tmp_path / "parts", 3), tmp_path))
    sample = json.loads((tmp_path / "tokenizer" / "tokenizer_meta.json").read_text())["sample"]
    ratios = load_mixture("llama").ratios
    present = sum(ratios[s] for s in available)
    assert {s: v["target_share"] for s, v in sample["sources"].items()} == \
        {s: pytest.approx(ratios[s] / present, abs=1e-6) for s in available}
    assert "llama" in sample["weighting"] and sample["max_share_ratio"] == 1.5
    shares = {s: v["share"] for s, v in sample["sources"].items()}
    # Web text is the short source: all of it is used, and code gets at most ~1.5x its 5.9% share.
    assert sample["sources"]["common_crawl"]["bytes"] == available["common_crawl"]["bytes"]
    assert 0.03 < shares["github"] < 0.13 and shares["common_crawl"] > 0.75
