from __future__ import annotations

import math

import pytest

from gristmill.mixtures.solver import (
    InfeasibleMixture,
    MixtureSolver,
    MixtureSpecError,
    load_mixture,
    normalize_ratios,
    preset_names,
)

LLAMA = {
    "common_crawl": 0.67,
    "c4": 0.15,
    "github": 0.045,
    "wikipedia": 0.045,
    "books": 0.045,
    "arxiv": 0.025,
    "stackexchange": 0.02,
}


def test_llama_preset_has_the_papers_token_shares():
    spec = load_mixture("llama")
    assert "llama" in preset_names()
    assert spec.name == "llama"
    assert spec.ratios == pytest.approx(LLAMA)
    # The preset suggests repeating Wikipedia and Books (LLaMA saw them ~2.4 and ~2.2 times).
    assert spec.max_epochs["wikipedia"] >= 2.4 and spec.max_epochs["books"] >= 2.2


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(MixtureSpecError, match="unknown mixture preset 'gpt9'.*llama"):
        load_mixture("gpt9")


def test_mixture_from_a_yaml_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nratios: {web: 3, code: 1}\nmax_epochs: {code: 4}\n")
    spec = load_mixture(str(path))
    assert spec.ratios == {"code": 0.25, "web": 0.75}
    assert spec.max_epochs == {"code": 4.0}


def test_ratios_are_normalized_and_negative_shares_refused():
    assert normalize_ratios({"a": 67, "b": 33, "c": 0}) == {"a": 0.67, "b": 0.33}
    with pytest.raises(MixtureSpecError, match="non-negative"):
        normalize_ratios({"a": -1, "b": 2})


def test_budget_gives_down_sampling_and_whole_epochs_plus_a_fraction():
    solver = MixtureSolver({"web": 0.8, "wiki": 0.2}, max_epochs={"wiki": 3.0})
    plan = solver.solve({"web": 1_000_000, "wiki": 100_000}, {"web": 1000, "wiki": 100}, seq_len=100,
                        total_tokens=500_000)
    web, wiki = plan.sources["web"], plan.sources["wiki"]
    assert (web.rows, wiki.rows) == (4000, 1000)
    assert web.rate == pytest.approx(0.4)  # down-sampled
    assert wiki.rate == pytest.approx(1.0)  # exactly one epoch
    plan = solver.solve({"web": 1_000_000, "wiki": 40_000}, {"web": 1000, "wiki": 40}, seq_len=100,
                        total_tokens=500_000)
    assert plan.sources["wiki"].rate == pytest.approx(2.5)  # two epochs and a half
    assert plan.realized_shares() == pytest.approx({"web": 0.8, "wiki": 0.2})


def test_null_budget_is_the_largest_the_caps_allow():
    solver = MixtureSolver({"web": 0.9, "wiki": 0.1}, max_epochs={"wiki": 2.0})
    plan = solver.solve({"web": 10_000_000, "wiki": 50_000}, {"web": 1, "wiki": 1}, seq_len=10)
    # wiki binds: 50,000 tokens x 2 epochs = 10% of 1,000,000.
    assert plan.solved_total == 1_000_000
    assert plan.sources["wiki"].tokens == 100_000
    assert plan.sources["wiki"].rate == pytest.approx(2.0)
    assert plan.total_tokens <= 1_000_000


def test_row_rounding_keeps_every_share_within_one_row():
    plan = MixtureSolver(LLAMA).solve({s: 10_000_000 for s in LLAMA}, {s: 1 for s in LLAMA}, seq_len=2048,
                                      total_tokens=3_000_000)
    assert plan.total_rows == 3_000_000 // 2048
    for s, p in plan.sources.items():
        assert abs(p.tokens - LLAMA[s] * 3_000_000) <= 2048
    assert plan.max_share_error() <= 2048 / plan.total_tokens


def test_infeasible_cap_says_what_is_short_by_how_much_and_the_fixes():
    solver = MixtureSolver({"web": 0.9, "wiki": 0.1}, max_epochs={"wiki": 2.0}, name="mine")
    with pytest.raises(InfeasibleMixture) as err:
        solver.solve({"web": 10_000_000, "wiki": 50_000}, {"web": 1, "wiki": 1}, seq_len=10,
                     total_tokens=2_000_000)
    msg = str(err.value)
    # wiki needs 200,000 tokens, has 50,000 x 2 = 100,000: short by 100,000.
    assert "mixture 'mine' is infeasible for total_tokens=2,000,000" in msg
    assert "wiki is short by 100,000 tokens" in msg
    assert "raise max_epochs.wiki to >= 4" in msg
    assert "add >= 50,000 tokens of wiki" in msg
    assert "lower total_tokens to <= 1,000,000" in msg
    assert "web" not in msg.split("\n")[1]  # only the short source is listed


def test_missing_source_is_infeasible_with_the_fix():
    solver = MixtureSolver(LLAMA, name="llama")
    available = {s: 1_000_000 for s in LLAMA if s != "books"}
    with pytest.raises(InfeasibleMixture) as err:
        solver.solve(available, {s: 1 for s in available}, seq_len=16)
    msg = str(err.value)
    assert "books: share 4.50%, 0 tokens available" in msg
    assert "add documents with source books" in msg


def test_budget_too_small_for_one_row_of_a_source():
    with pytest.raises(InfeasibleMixture, match=r"stackexchange get less than one row of seq_len=2048"):
        MixtureSolver(LLAMA).solve({s: 10**9 for s in LLAMA}, {s: 1 for s in LLAMA}, seq_len=2048,
                                   total_tokens=50_000)


def test_sources_outside_the_mixture_are_reported_unused():
    plan = MixtureSolver({"web": 1.0}).solve({"web": 1000, "other": 500}, {"web": 1, "other": 1}, seq_len=10)
    assert plan.unused_sources == {"other": 500}
    assert set(plan.sources) == {"web"}


def test_pad_last_rounds_up_and_pads_only_past_the_cap():
    plan = MixtureSolver({"web": 1.0}).solve({"web": 1005}, {"web": 3}, seq_len=100, pad_last=True)
    web = plan.sources["web"]
    assert (web.rows, web.stream_tokens, web.padding_tokens) == (11, 1005, 95)
    assert math.isclose(web.rate, 1.0)
