"""clean.boilerplate_v1 (stages/clean/boilerplate.py): C4 line rules, vectorized over all lines of a batch."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gristmill.stages.clean.boilerplate import Boilerplate

from .conftest import lines_of, run

GOOD = "The committee approved the new budget after a long debate."
GOOD2 = "Tickets for the concert go on sale next Monday morning."


def doc(*lines: str) -> str:
    return "\n".join(lines)


def kept_lines(params: dict, *lines: str) -> list[str]:
    """Lines kept from a document of ``GOOD`` + ``lines`` (GOOD keeps the document from being rejected)."""
    texts, reasons = run(Boilerplate(params), [doc(GOOD, *lines)])
    assert reasons == [None]
    return texts[0].split("\n")[1:]


# --- a reference: the C4 rules written the obvious way, one line at a time ---------------------------------


def c4_reference(text: str, min_words: int = 3) -> str:
    """tensorflow_datasets c4_utils.clean_page's line rules (without sentence counting), plus ours for … and
    the extra terminal marks; for text without CJK characters. Used to check the vectorized implementation."""
    policy = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]
    kept = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[-1] not in '.!?"…。！？．”」』।؟' or line.endswith(("...", "…")):
            continue
        if len(line.split()) < min_words or any(len(w) > 1000 for w in line.split()):
            continue
        low = line.lower()
        if "javascript" in low or any(p in low for p in policy):
            continue
        kept.append(line)
    return "\n".join(kept)


def test_vectorized_rules_match_the_line_by_line_reference(real_texts):
    en = real_texts["en"]
    noise = ["Home", "About us", "Contact", "Read more...", "Share this…", "Please enable JavaScript.",
             "This site uses cookies to help us.", "Terms of Use apply to all content.", "Next page »",
             "   indented sentence with enough words.   ", "", "  ", "x" * 1200 + " ends with a dot.",
             "Two words.", '"A quoted line that ends in a quote mark"', "Ends with a colon:"]
    docs = [doc(*en[i : i + 10], *noise[i % len(noise) :: 3]) for i in range(0, len(en), 10)]
    texts, reasons = run(Boilerplate(), docs)
    expected = [c4_reference(d) for d in docs]
    assert [t if r is None else "" for t, r in zip(texts, reasons)] == expected
    assert reasons.count(None) == len(docs)


# --- each rule on and off ------------------------------------------------------------------------------------


def test_terminal_punctuation():
    assert kept_lines({}, "Home", "Products and services") == []
    assert kept_lines({"require_terminal_punctuation": False}, "Products and services") == ["Products and services"]
    assert kept_lines({}, "Is it raining today?", 'He said "come here now"', "What a great day!") == [
        "Is it raining today?", 'He said "come here now"', "What a great day!"]


def test_ellipsis_lines():
    assert kept_lines({}, "Read the rest of this story...", "Read the rest of this story…") == []
    assert kept_lines({"drop_ellipsis_lines": False}, "Read the rest of this story…") == [
        "Read the rest of this story…"]


def test_javascript_lines():
    line = "Please enable JavaScript to view the comments."
    assert kept_lines({}, line) == []
    assert kept_lines({"drop_javascript_lines": False}, line) == [line]


def test_policy_lines():
    lines = ["This website uses cookies to improve your experience.", "Read our Privacy Policy before you sign up.",
             "By using the site you accept the terms of use."]
    assert kept_lines({}, *lines) == []
    assert kept_lines({"drop_policy_lines": False}, *lines) == lines
    assert kept_lines({"policy_phrases": ["(c) all rights reserved"]}, "Copyright (C) All rights reserved.",
                      lines[0]) == [lines[0]]


def test_min_words_per_line():
    assert kept_lines({}, "Too short.") == []
    assert kept_lines({"min_words_per_line": 2}, "Too short.") == ["Too short."]
    assert kept_lines({"min_words_per_line": 0}, "Short.") == ["Short."]


def test_long_words():
    line = "See " + "a" * 1500 + " here."
    assert kept_lines({}, line) == []
    assert kept_lines({"max_word_length": 0}, line) == [line]
    assert kept_lines({"max_word_length": 2000}, line) == [line]


def test_cjk_characters_count_as_words():
    # 4 Han characters = 2 words at the default 2 characters a word; 6 = 3 words.
    assert kept_lines({}, "联系我们。", "今天天气很好。") == ["今天天气很好。"]
    assert kept_lines({"cjk_chars_per_word": 1.0}, "联系我们。") == ["联系我们。"]
    # Punctuation is no word: 4 characters and two commas are still 2 words.
    assert kept_lines({}, "你好，世界，。") == []


def test_lorem_ipsum():
    text = doc(GOOD, "Lorem ipsum dolor sit amet, consectetur adipiscing elit.")
    assert run(Boilerplate(), [text]) == ([text], ["boilerplate_lorem_ipsum"])
    assert run(Boilerplate({"lorem_ipsum": "line"}), [text]) == ([GOOD], [None])
    assert run(Boilerplate({"lorem_ipsum": "off"}), [text]) == ([text], [None])


def test_curly_braces_are_an_opt_in_document_rule():
    text = doc(GOOD, "Call it as f(x) { return x; } in the shell.")
    assert run(Boilerplate(), [text])[1] == [None]
    assert run(Boilerplate({"reject_curly_braces": True}), [text]) == ([text], ["boilerplate_curly_brace"])


def test_all_line_rules_off_leaves_text_as_is():
    off = {"require_terminal_punctuation": False, "drop_ellipsis_lines": False, "drop_javascript_lines": False,
           "drop_policy_lines": False, "lorem_ipsum": "off", "min_words_per_line": 0, "max_word_length": 0}
    text = "  Home\n\nJavaScript...\n  x  "
    assert run(Boilerplate(off), [text]) == ([text], [None])


# --- what is left of a document ---------------------------------------------------------------------------------


def test_empty_and_too_short_documents_are_rejected_with_their_original_text():
    menu = doc("Home", "About", "Contact us", "Enable JavaScript...")
    texts, reasons = run(Boilerplate({"min_lines": 2}), [menu, GOOD, doc(GOOD, GOOD2), "", None])
    assert reasons == ["boilerplate_empty", "boilerplate_too_short", None, "boilerplate_empty", "boilerplate_empty"]
    assert texts[:3] == [menu, GOOD, doc(GOOD, GOOD2)]
    assert run(Boilerplate({"min_chars": 100}), [GOOD])[1] == ["boilerplate_too_short"]
    assert run(Boilerplate({"min_chars": 10}), [GOOD])[1] == [None]


def test_kept_lines_are_stripped_and_joined_without_blank_lines():
    texts, _ = run(Boilerplate(), [f"  {GOOD}  \n\n\n\t{GOOD2}\r\n"])
    assert texts == [doc(GOOD, GOOD2)]


# --- languages and sources --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["zh", "ja", "hi", "en"])
def test_real_sentences_survive_default_params(lang, real_texts):
    lines = real_texts[lang]
    docs = [doc(*lines[i : i + 20]) for i in range(0, len(lines), 20)]
    texts, reasons = run(Boilerplate(), docs)
    assert reasons == [None] * len(docs)
    kept = sum(len(t.split("\n")) for t in texts)
    assert kept >= 0.8 * len(lines), f"{lang}: kept {kept} of {len(lines)} lines"


def test_rows_of_other_sources_pass_untouched():
    code = "\n".join(lines_of("code_colorsys.py.txt"))
    menu = doc("Home", "About")
    texts, reasons = run(Boilerplate({"sources": ["c4", "common_crawl"]}), [code, menu, doc(GOOD, "Home")],
                         sources=["github", "c4", "common_crawl"])
    assert texts == [code, menu, GOOD]
    assert reasons == [None, "boilerplate_empty", None]
    # Applied to code, the line rules destroy it: that is why the sources switch exists.
    assert run(Boilerplate(), [code], sources="github")[0][0] != code


def test_bad_params_are_refused():
    with pytest.raises(ValidationError):
        Boilerplate({"lorem_ipsum": "page"})
    with pytest.raises(ValidationError):
        Boilerplate({"cjk_chars_per_word": 0})
    with pytest.raises(ValidationError):
        Boilerplate({"min_word": 3})
