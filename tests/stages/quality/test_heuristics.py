"""quality.heuristics_v1 and its presets against datatrove's per-document filters (the oracle) on real text."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest

from gristmill.pipeline.registry import get_stage
from gristmill.stages.base import PART_COLUMN
from gristmill.stages.filter import Filter, evaluate, expand, filter_presets
from gristmill.stages.quality import presets
from gristmill.stages.quality.heuristics import QualityHeuristics

from .conftest import QUALITY_DATA, doc_table

FAMILIES = ("gopher", "gopher_repetition", "c4", "fineweb")


def scored(texts, **params) -> pa.Table:
    return QualityHeuristics(params).process(doc_table(texts)).table


def keeps(table: pa.Table, preset: str) -> list[bool]:
    return evaluate(expand({"preset": preset}), table).to_pylist()


def datatrove_keeps(texts: list[str], family: str) -> list[bool]:
    filters = pytest.importorskip("datatrove.pipeline.filters")
    pytest.importorskip("spacy")
    from datatrove.data import Document

    flt = {"gopher": filters.GopherQualityFilter, "gopher_repetition": filters.GopherRepetitionFilter,
           "c4": filters.C4QualityFilter, "fineweb": filters.FineWebQualityFilter}[family]()
    return [flt.filter(Document(text=t, id=str(i))) is True for i, t in enumerate(texts)]


def test_registered_with_presets():
    assert get_stage("quality.heuristics_v1") is QualityHeuristics
    registered = filter_presets()
    for name in (*FAMILIES, "multilingual"):
        assert registered[name] == presets.PRESETS[name]
    # every column a preset reads is one the stage declares
    from gristmill.stages.filter import columns_of

    for name in FAMILIES:
        assert columns_of(expand({"preset": name})) <= set(QualityHeuristics.output_columns)


@pytest.mark.parametrize("family", FAMILIES)
def test_agrees_with_datatrove_on_real_documents(family, real_documents):
    """Keep/drop decisions match datatrove's filter on >= 95% of real documents of many languages and shapes
    (the disagreement classes are listed in stages/quality/signals.py; benchmarks/heuristics.py measures them)."""
    table = scored(real_documents, cjk_split=False)  # datatrove splits CJK text with its English tokenizer
    ours = keeps(table, family)
    theirs = datatrove_keeps(real_documents, family)
    agreement = sum(a == b for a, b in zip(ours, theirs)) / len(theirs)
    assert agreement >= 0.95, (family, agreement)
    assert 0 < sum(theirs) < len(theirs)  # the sample exercises both outcomes


def test_gopher_signals_match_datatrove_exactly_on_plain_prose():
    dt_filters = pytest.importorskip("datatrove.pipeline.filters.gopher_quality_filter")
    pytest.importorskip("spacy")
    from datatrove.utils.text import PUNCTUATION_SET, split_into_words

    text = ("The quick brown fox jumps over the lazy dog and runs to the forest with a friend.\n"
            "- It was a sunny day... Nobody knew #why.\n• Then the dog woke up and barked at the fox.")
    words = split_into_words(text, "en")
    non_symbol = [w for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
    row = scored([text]).to_pylist()[0]
    assert row["q_word_count"] == len(non_symbol)
    assert row["q_mean_word_length"] == pytest.approx(sum(map(len, non_symbol)) / len(non_symbol))
    assert row["q_hash_word_ratio"] == pytest.approx(text.count("#") / len(words))
    assert row["q_bullet_lines_frac"] == pytest.approx(2 / 3)
    assert row["q_ellipsis_lines_frac"] == pytest.approx(0.0)
    assert row["q_alpha_words_frac"] == pytest.approx(sum(any(c.isalpha() for c in w) for w in words) / len(words))
    assert row["q_stop_word_count"] == len(set(dt_filters.STOP_WORDS) & set(words))


def test_repetition_signals_on_repeated_text():
    paragraph = "Buy cheap watches online today and save money on every order you place here."
    spam = "\n\n".join([paragraph] * 6)
    row = scored([spam]).to_pylist()[0]
    assert row["q_dup_para_frac"] == pytest.approx(5 / 6)
    assert row["q_dup_line_frac"] == pytest.approx(5 / 6)
    assert row["q_dup_para_char_frac"] == pytest.approx(5 * len(paragraph) / len(spam))
    assert row["q_dup_10gram_char_frac"] > 0.5
    assert keeps(scored([spam]), "gopher_repetition") == [False]
    assert datatrove_keeps([spam], "gopher_repetition") == [False]


def test_c4_document_rules():
    sentences = " ".join(f"This is sentence number {i} of a normal page." for i in range(6))
    texts = [sentences, sentences + "\nLorem ipsum dolor sit amet, consectetur.", sentences + "\nvar x = {a: 1};.",
             "Too short. Really short."]
    table = scored(texts)
    assert table["q_c4_lorem_ipsum"].to_pylist() == [False, True, False, False]
    assert table["q_c4_curly_bracket"].to_pylist() == [False, False, True, False]
    assert keeps(table, "c4") == [True, False, False, False]
    assert keeps(table, "c4") == datatrove_keeps(texts, "c4")


def test_cjk_split_keeps_chinese_word_signals_meaningful(zh_page):
    with_split = scored([zh_page]).to_pylist()[0]
    without = scored([zh_page], cjk_split=False).to_pylist()[0]
    han = sum("\u4e00" <= c <= "\u9fff" for c in zh_page)
    assert with_split["q_word_count"] >= han  # every Han character is a word
    assert without["q_word_count"] < han / 5  # space-split: a few long runs
    assert without["q_mean_word_length"] > 4 * with_split["q_mean_word_length"]


def test_rows_columns_empty_and_null():
    texts = ["Some text here.", "", None, "   \n\n  "]
    table = doc_table(texts)
    out = QualityHeuristics().process(table)
    assert out.reject_reason is None
    for name in table.column_names:
        assert out.table[name].equals(table[name]), name
    assert out.table[PART_COLUMN].to_pylist() == [2] * 4
    assert set(QualityHeuristics.output_columns) <= set(out.table.column_names)
    for name, dtype in QualityHeuristics.output_columns.items():
        assert out.table.schema.field(name).type == dtype, name
    # empty documents fail every preset (null ratios count as failing), as datatrove drops them; a document of
    # whitespace only is decided as datatrove decides it (its repetition filter keeps it, the others drop it)
    for family in FAMILIES:
        assert keeps(out.table, family)[1:3] == [False, False], family
        assert keeps(out.table, family)[3] == datatrove_keeps([texts[3]], family)[0], family
    empty = QualityHeuristics().process(doc_table([])).table
    assert empty.num_rows == 0 and set(QualityHeuristics.output_columns) <= set(empty.column_names)


def test_deterministic_across_batchings(real_documents):
    whole = scored(real_documents)
    parts = pa.concat_tables([scored(real_documents[:17]), scored(real_documents[17:])])
    for name in QualityHeuristics.output_columns:
        assert whole[name].to_pylist() == parts[name].to_pylist(), name


def test_filter_step_records_drops_by_reason(real_documents):
    table = scored(real_documents)
    out = Filter({"expr": {"preset": "gopher"}}).process(table)
    reasons = [r for r in out.reject_reason.to_pylist() if r is not None]
    assert reasons and all(r.startswith("filter:q_") for r in reasons)
    assert "filter:q_word_count>=50" in reasons


def test_chinese_page_survives_multilingual_heuristics_when_lang_is_zh(zh_page):
    """The default English-agnostic preset keeps a real Chinese Common Crawl page tagged zh; Gopher's English
    rules (mean word length, English stop words) would drop it, and so would splitting words on spaces only."""
    lang = {"lang": pa.array(["zh"], pa.string())}
    table = QualityHeuristics().process(doc_table([zh_page], lang)).table
    assert Filter({"expr": {"preset": "multilingual"}}).process(table).reject_reason.to_pylist() == [None]
    gopher = Filter({"expr": {"preset": "gopher"}}).process(table).reject_reason.to_pylist()
    assert gopher[0] is not None and gopher[0].startswith("filter:q_mean_word_length")
    spaces_only = QualityHeuristics({"cjk_split": False}).process(doc_table([zh_page], lang)).table
    assert Filter({"expr": {"preset": "multilingual"}}).process(spaces_only).reject_reason.to_pylist() != [None]
    as_english = QualityHeuristics().process(doc_table([zh_page], {"lang": pa.array(["en"])})).table
    assert Filter({"expr": {"preset": "multilingual"}}).process(as_english).reject_reason.to_pylist() != [None]


def crawled_pages() -> list[str]:
    """20 crawled pages (Common Crawl sample pages in Chinese, German, English..., and article pages, as ingest
    extracts them and as whole pages) on which gristmill's signals once disagreed with datatrove's."""
    path = QUALITY_DATA / "heuristics-agreement.jsonl"
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def datatrove_signals(text: str) -> dict:
    """datatrove's value of every word-, n-gram- and sentence-based q_* signal, computed with its own helpers as
    its filters do (English spaCy tokenizer)."""
    pytest.importorskip("spacy")
    from datatrove.data import Document
    from datatrove.pipeline.filters.c4_filters import C4QualityFilter
    from datatrove.pipeline.filters.gopher_quality_filter import STOP_WORDS
    from datatrove.pipeline.filters.gopher_repetition_filter import (find_all_duplicate, find_top_duplicate,
                                                                     get_n_grams)
    from datatrove.utils.text import PUNCTUATION_SET, split_into_sentences, split_into_words

    words = split_into_words(text, "en")
    non_symbol = [w for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
    out = {
        "q_word_count": len(non_symbol),
        "q_mean_word_length": sum(map(len, non_symbol)) / len(non_symbol) if non_symbol else None,
        "q_hash_word_ratio": text.count("#") / len(words) if words else None,
        "q_ellipsis_word_ratio": (text.count("...") + text.count("…")) / len(words) if words else None,
        "q_alpha_words_frac": sum(any(c.isalpha() for c in w) for w in words) / len(words) if words else None,
        "q_stop_word_count": len(set(STOP_WORDS) & set(words)),
        "q_fw_newline_word_ratio": text.count("\n") / len(words) if words else None,
    }
    for n in (2, 3, 4):
        grams = get_n_grams(words, n)
        out[f"q_top_{n}gram_char_frac"] = find_top_duplicate(grams) / len(text) if grams else 0.0
    for n in range(5, 11):
        out[f"q_dup_{n}gram_char_frac"] = find_all_duplicate(words, n) / len(text)
    # C4: sentences of the lines its filter keeps, with its document-level rules off (the filter rewrites
    # doc.text to those lines)
    c4 = C4QualityFilter(filter_lorem_ipsum=False, filter_curly_bracket=False, min_num_sentences=-1)
    doc = Document(text=text, id="0")
    assert c4.filter(doc) is True
    out["q_c4_sentence_count"] = sum(len(split_into_sentences(line, "en")) for line in doc.text.split("\n") if line)
    return out


def test_word_signals_equal_datatroves_on_crawled_pages():
    """Every signal built on datatrove's words (spaCy's English tokenizer: prefixes, suffixes, infixes, special
    cases, its special-case matcher) or sentences equals datatrove's on crawled pages where they once differed
    (alpha-word fraction, word counts, n-gram fractions, C4 sentences, FineWeb's newline ratio)."""
    pages = crawled_pages()
    table = scored(pages, cjk_split=False)  # datatrove splits every language with its English tokenizer
    for i, page in enumerate(pages):
        expected = datatrove_signals(page)
        row = {name: table[name][i].as_py() for name in expected}
        assert row == pytest.approx(expected, rel=1e-12, abs=1e-12), (i, page[:80])


def test_tokens_are_datatroves_words(real_documents):
    """The tokenizer returns datatrove's default words (spaCy's English tokenizer) token for token."""
    pytest.importorskip("spacy")
    from datatrove.utils.text import split_into_words

    from gristmill.stages.quality import signals

    texts = crawled_pages() + real_documents + [
        "Don't stop: it's 10km/h at 5pm... U.S. e.g. well-known 2020-01-01 and/or Disney+ “quoted” ‘single’ ©2019",
        "See http://example.com/a/b?x=1, hello.World, 4K 16GB $100 10% (Calif.) Mr. Smith can't; z.B. a): ;)",
    ]
    tokens = signals.tokenize(pa.array(texts, pa.large_string()), cjk_split=False).to_pylist()
    for text, words in zip(texts, tokens):
        assert words == split_into_words(text, "en"), text[:80]


@pytest.mark.parametrize("family", FAMILIES)
def test_filters_decide_as_datatrove_on_crawled_pages(family):
    pages = crawled_pages()
    table = scored(pages, cjk_split=False)
    assert keeps(table, family) == datatrove_keeps(pages, family)
