"""The declarative filter step: expressions, drop reasons by first failing clause, presets, sources."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from gristmill.stages.filter import (Filter, FilterExpressionError, _comparable_numbers, columns_of, describe,
                                     evaluate, expand, top_level_clauses)


def table() -> pa.Table:
    return pa.table({
        "source": ["common_crawl", "common_crawl", "github", "c4"],
        "text": ["a", "", "x", "b"],
        "lang": ["en", "de", None, "en"],
        "lang_score": [0.9, 0.5, None, 0.2],
    })


def reasons(expr, **params) -> list:
    return Filter({"expr": expr, **params}).process(table()).reject_reason.to_pylist()


def test_drop_reason_is_the_first_failing_clause():
    expr = {"all": [{"col": "text", "ne": ""}, {"col": "lang", "in": ["en"]}, {"col": "lang_score", "ge": 0.65}]}
    assert reasons(expr) == [None, "filter:text!=", "filter:lang in ['en']", "filter:lang_score>=0.65"]


def test_nulls_fail_comparisons_and_is_null_tests_them():
    assert reasons({"col": "lang", "is_null": False})[2] == "filter:lang is not null"
    assert reasons({"not": {"col": "lang_score", "lt": 0.5}}) == [None, None, "filter:not(lang_score<0.5)",
                                                                    "filter:not(lang_score<0.5)"]


def test_sources_limit_the_filter_and_other_rows_pass():
    expr = {"col": "lang_score", "ge": 0.65}
    assert reasons(expr, sources=["common_crawl"]) == [None, "filter:lang_score>=0.65", None, None]


def test_named_reason_and_any():
    expr = {"any": [{"col": "lang", "eq": "de"}, {"col": "lang_score", "gt": 0.8}]}
    out = reasons(expr, reason="keep_de_or_confident")
    assert out[0] is None and out[1] is None and out[3].startswith("keep_de_or_confident:any(")


def test_malformed_expressions_name_the_spot():
    with pytest.raises(FilterExpressionError, match=r"all\[1\]\.between: unknown operator"):
        expand({"all": [{"col": "a", "eq": 1}, {"col": "b", "between": [1, 2]}]})
    with pytest.raises(FilterExpressionError, match=r"in: expected a list"):
        expand({"col": "a", "in": "en"})
    assert describe({"col": "q", "not_in": ["x"]}) == "q not in ['x']"


def languages() -> pa.Table:
    return pa.table({"lang": ["nb", "he", "zh", "en", None]})


def kept(expr) -> list:
    return [r is None for r in Filter({"expr": expr}).process(languages()).reject_reason.to_pylist()]


def test_language_aliases_are_read_as_gristmill_codes():
    expr = expand({"all": [{"col": "lang", "in": ["no", "iw", "zh-Hans"]}, {"col": "lang", "ne": "eng"}]})
    assert expr == {"all": [{"col": "lang", "in": ["nb", "he", "zh"]}, {"col": "lang", "ne": "en"}]}
    assert kept({"col": "lang", "in": ["no", "iw", "zh-Hans"]}) == [True, True, True, False, False]
    assert kept({"col": "lang", "eq": "NB"}) == [True, False, False, False, False]


def test_yaml_false_where_a_language_code_is_expected_is_norwegian():
    """`in: [no]` unquoted is [False] in YAML 1.1; in a clause over lang it can only have meant Norwegian."""
    assert expand({"col": "lang", "in": [False, "en"]}) == {"col": "lang", "in": ["nb", "en"]}
    assert kept({"col": "lang", "not_in": [False]}) == [False, True, True, True, False]
    # other columns keep YAML's reading
    assert expand({"col": "flag", "eq": False}) == {"col": "flag", "eq": False}
    with pytest.raises(FilterExpressionError, match=r"any\[0\]\.in\[1\]: True is not a language code \(YAML reads "
                                                    r"unquoted yes/on/true as a boolean: quote the code\)"):
        expand({"any": [{"col": "lang", "in": ["en", True]}]})


def test_unknown_language_code_is_refused_with_the_known_ones():
    with pytest.raises(FilterExpressionError) as err:
        expand({"all": [{"col": "lang", "in": ["en", "english"]}]})
    assert str(err.value).startswith("all[0].in[1]: unknown language code 'english'; known codes: af, am, an, ar,")
    with pytest.raises(ValueError, match=r"eq: unknown language code 'xx'"):
        Filter({"expr": {"col": "lang", "eq": "xx"}})


def test_multilingual_preset_names_gristmill_codes():
    expr = expand({"preset": "multilingual"})
    lang_values = [clause["any"][0]["ne"] for clause in expr["all"] if "any" in clause]
    assert lang_values and set(lang_values) == {"en"}


def reasons_by_arrow(expr, table: pa.Table, prefix: str = "filter") -> list:
    """The reference: each top-level clause evaluated with Arrow's SQL logic, the first one a row fails."""
    out = [None] * table.num_rows
    for clause in reversed(top_level_clauses(expr)):
        for row, keep in enumerate(evaluate(clause, table).to_pylist()):
            if not keep:
                out[row] = f"{prefix}:{describe(clause)}"
    return out


def mixed_table(rows: int, seed: int) -> pa.Table:
    """Columns of every kind a clause compares, with nulls, NaN, infinities and values on the thresholds."""
    rng = np.random.default_rng(seed)
    pick = lambda values: [values[i] for i in rng.integers(0, len(values), rows)]  # noqa: E731
    floats = [0.0, 0.1, 0.3, 0.30000001, 0.9, 1.0, -1.0, float("nan"), float("inf"), 50.0, 2.5]
    ints = [0, 1, 2, 49, 50, 51, 100_000, 100_001, -3]
    return pa.table({
        "f64": pa.array(pick(floats), pa.float64()),
        "f32": pa.array(pick(floats), pa.float32()),
        "i64": pa.array(pick(ints), pa.int64()),
        "u8": pa.array(pick([0, 1, 2, 49, 50, 255]), pa.uint8()),
        "flag": pa.array(pick([True, False]), pa.bool_()),
        "f64_nulls": pa.array(pick(floats + [None, None]), pa.float64()),
        "i32_nulls": pa.array(pick(ints + [None]), pa.int32()),
        "flag_nulls": pa.array(pick([True, False, None]), pa.bool_()),
        "lang": pa.array(pick(["en", "de", "zh", None]), pa.string()),
    })


def test_reasons_match_arrow_on_every_column_kind_with_nulls():
    """The first failing clause is found with numpy where numpy compares as Arrow does; it must give Arrow's
    reasons exactly: nulls unknown through not/any/all, NaN, float32 against a float64 threshold, ints against
    floats, presets."""
    rng = random.Random(7)
    leaves = [{"col": c, op: v} for c in ("f64", "f32", "i64", "u8", "f64_nulls", "i32_nulls")
              for op in ("eq", "ne", "lt", "le", "gt", "ge") for v in (0.3, 50, 0.1, 1, 300, -1, 2.5)]
    leaves += [{"col": c, op: v} for c in ("flag", "flag_nulls") for op in ("eq", "ne") for v in (True, False)]
    leaves += [{"col": "lang", "in": ["en"]}, {"col": "lang", "ne": "en"}, {"col": "f64_nulls", "is_null": True},
               {"col": "i32_nulls", "not_in": [1, 2]}, {"col": "u8", "in": [0, 50]}]

    def random_expr(depth: int) -> dict:
        if depth == 0 or rng.random() < 0.4:
            return rng.choice(leaves)
        kind = rng.choice(["all", "any", "not"])
        if kind == "not":
            return {"not": random_expr(depth - 1)}
        return {kind: [random_expr(depth - 1) for _ in range(rng.randint(1, 4))]}

    table = mixed_table(300, seed=3)
    for _ in range(300):
        expr = expand({"all": [random_expr(3) for _ in range(rng.randint(1, 6))]} if rng.random() < 0.8
                      else random_expr(3))
        assert Filter({"expr": expr}).process(table).reject_reason.to_pylist() == reasons_by_arrow(expr, table)
    for preset in ("gopher", "gopher_repetition", "c4", "fineweb", "multilingual"):
        expr = expand({"preset": preset})
        rows = preset_signals(expr, mixed_table(200, seed=5))
        assert Filter({"expr": expr}).process(rows).reject_reason.to_pylist() == reasons_by_arrow(expr, rows)


def preset_signals(expr: dict, mixed: pa.Table) -> pa.Table:
    """A table with every column a preset reads: numbers from ``f64`` / ``f64_nulls`` (alternating), flags from
    ``flag`` / ``flag_nulls``, languages from ``lang``."""
    def like(name: str, i: int) -> pa.ChunkedArray:
        if name == "lang":
            return mixed["lang"]
        kind = "flag" if name in ("q_c4_lorem_ipsum", "q_c4_curly_bracket") else "f64"
        return mixed[kind if i % 2 else f"{kind}_nulls"]

    return pa.table({name: like(name, i) for i, name in enumerate(sorted(columns_of(expr)))})


def test_a_clause_over_a_column_in_several_chunks():
    table = pa.Table.from_batches([pa.record_batch({"x": pa.array([0.5, 0.1], pa.float64())}),
                                   pa.record_batch({"x": pa.array([0.7], pa.float64())})])
    assert Filter({"expr": {"col": "x", "ge": 0.5}}).process(table).reject_reason.to_pylist() == [
        None, "filter:x>=0.5", None]


def test_numpy_compares_only_columns_it_compares_as_arrow_does():
    """Null-free numeric and boolean columns are compared in numpy, widened to Arrow's common type (float32 to
    float64, ints to int64); nulls, uint64, strings and a bool against a number are left to Arrow."""
    table = mixed_table(20, seed=1).append_column("u64", pa.array(range(20), pa.uint64()))
    assert _comparable_numbers(table, "f32", 0.1).dtype == np.float64
    assert _comparable_numbers(table, "u8", 300).dtype == np.int64
    assert _comparable_numbers(table, "i64", 0.5).dtype == np.float64
    assert _comparable_numbers(table, "flag", True).dtype == np.bool_
    for name, value in [("f64_nulls", 0.5), ("i32_nulls", 1), ("u64", 1), ("lang", "en"), ("flag", 1),
                        ("i64", True), ("i64", 2**64), ("missing", 1)]:
        assert _comparable_numbers(table, name, value) is None, (name, value)
