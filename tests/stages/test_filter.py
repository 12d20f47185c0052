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
