"""The declarative filter step: expressions, drop reasons by first failing clause, presets, sources."""

from __future__ import annotations

import pyarrow as pa
import pytest

from gristmill.stages.filter import Filter, FilterExpressionError, describe, expand


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
