"""The compiled path of quality.heuristics_v1 (stages/quality/_kernels.py, ``backend="numba"``) against its
Arrow/numpy reference (``backend="arrow"``): identical q_* values, on real text and on generated strings built from
the characters the tokenizer treats specially. The tokenizer itself exists only compiled (both backends use it);
test_heuristics.py checks it against spaCy's, which it reproduces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gristmill.stages.quality import kernel_constants, signals
from gristmill.stages.quality.charsets import PUNCTUATION_SET

DATA = Path(__file__).parents[2] / "data"
TOKEN_FIELDS = ("count", "lengths", "symbol", "has_alpha", "ids")


def assert_same_tokens(text: pa.Array, cjk_split: bool) -> None:
    text = pc.fill_null(text, "")
    ref = signals.Tokens(signals.tokenize(text, cjk_split), len(text))
    new = signals.Tokens.from_kernel(text, cjk_split)
    assert new.flat.to_pylist() == ref.flat.to_pylist()
    for field in TOKEN_FIELDS:
        np.testing.assert_array_equal(getattr(new, field), getattr(ref, field), err_msg=field)
    hashes, ellipses = new.marks
    np.testing.assert_array_equal(hashes, pc.count_substring(text, "#").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(
        ellipses, pc.add(pc.count_substring(text, "..."), pc.count_substring(text, "…")).to_numpy(zero_copy_only=False))


def assert_same_signals(text: pa.Array, cjk_split: bool) -> None:
    ref = signals.compute(text, cjk_split, backend="arrow")
    new = signals.compute(text, cjk_split, backend="numba")
    assert list(new) == list(ref)
    for name in ref:
        assert new[name].equals(ref[name]), (name, new[name], ref[name])


def real_texts(real_documents) -> list[str]:
    """Prose of 12 languages, navigation boilerplate, a Chinese page, Python code, mojibake, PII-laden text."""
    files = sorted((DATA / "python-stdlib").glob("*.py")) + sorted((DATA / "clean").glob("*.txt"))
    return real_documents + [p.read_text(encoding="utf-8") for p in files]


@pytest.mark.parametrize("cjk_split", [True, False])
def test_identical_on_real_documents(real_documents, cjk_split):
    texts = real_texts(real_documents)
    whole = pa.array(texts, pa.large_string())
    assert_same_tokens(whole, cjk_split)
    assert_same_signals(whole, cjk_split)
    # batch boundaries and sliced (offset) arrays, as Ray hands them over
    for start in range(0, len(texts), 37):
        assert_same_signals(whole.slice(start, 37), cjk_split)


@pytest.mark.parametrize("texts", [[], [""], [None, "", " \n\t "], ["...", "#", "…"], ["a"] * 3, ["x. "] * 2])
def test_identical_on_edge_cases(texts):
    text = pa.array(texts, pa.large_string())
    for cjk_split in (True, False):
        assert_same_tokens(text, cjk_split)
        assert_same_signals(text, cjk_split)


# Pieces that exercise the tokenizer's prefix, suffix, infix and special-case rules and their boundaries:
# apostrophes and contractions, URLs, e-mails, abbreviations, units after numbers, dotted names and numbers, runs of
# "." and "-", emoticons, scripts without case or spaces, combining marks, letter-like numbers, 4-byte characters,
# every kind of whitespace (RE2's \s, Arrow's and Python's differ).
FRAGMENTS = [
    "http://", "https://", "www.", "http", "www", "Mr", "Mrs", "Co", "Corp", "vs", "Sept", "Dr", "U", "S",
    ".", "..", "-", "--", ",", "/", ":", "@", "_", "'", "’", "”", ")", "]", '"', "!", "?", ";", "#", "…",
    "n't", "'s", "don", "ca", "km", "GB", "pm", "$", "US$", "+", "%", "©", "):", ":)", "z.", "Calif.", "—", "‘",
    "a", "b", "x", "é", "ß", "Ω", "я", "ا", "क", "ि", "\u0301", "中", "文", "あ", "カ", "ー", "한",
    "0", "1", "9", "²", "Ⅻ", "٣", "１", "3.5", "1,000", "12:30", "a@b.c", "@me", "U.S.", "e.g.",
    " ", "  ", "\n", "\n\n", "\t", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u00a0", "\u2028", "\u3000", "\u200b",
    "\x00", "\x7f", "😀", "𝐀", "\U00020000", "、", "，", "。", "「", "\ufeff",
]
ALPHABET = sorted(set("".join(FRAGMENTS)) | set(sorted(PUNCTUATION_SET)[::3]))
TEXTS = st.one_of(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join),
                  st.text(alphabet=ALPHABET, max_size=60))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TEXTS, min_size=1, max_size=6), st.booleans())
def test_identical_on_generated_text(texts, cjk_split):
    text = pa.array(texts, pa.large_string())
    assert_same_tokens(text, cjk_split)
    assert_same_signals(text, cjk_split)


def test_ngram_counts_merge_the_same_hash_collisions():
    """One 250,000-word document of random words: two distinct 6-grams share their 40-bit key (checked; the
    reference then counts 30 characters of "repeated" 6-grams where there are none), and the kernel merges them
    exactly as the sort-based reference does."""
    rng = np.random.default_rng(0)
    vocabulary = np.array([f"w{i}" for i in range(5000)])
    tokens = signals.Tokens(pa.array([vocabulary[rng.integers(0, 5000, 250_000)].tolist()]), 1)
    collisions = 0
    for n in (*signals.TOP_NGRAMS, *signals.DUP_NGRAMS):
        _, h = tokens.ngram_keys(n)
        collisions += len(np.unique(h)) - len(np.unique(h >> np.uint64(24)))
    assert collisions > 0
    top, dup = signals.kernels().ngram_chars(tokens.ids, tokens.offsets, tokens.lengths,
                                             np.array(signals.TOP_NGRAMS), np.array(signals.DUP_NGRAMS))
    for i, n in enumerate(signals.TOP_NGRAMS):
        np.testing.assert_array_equal(top[i], signals._top_ngram_chars(tokens, n))
    for i, n in enumerate(signals.DUP_NGRAMS):
        np.testing.assert_array_equal(dup[i], signals._dup_ngram_chars(tokens, n))


def test_ngram_counts_on_repeated_runs():
    """Runs of repeats longer than n, overlapping repeats and documents shorter than n."""
    texts = ["a b c a b c a b c a b c d", "x x x x x x x x x x x x x", "one two", "p q r s t u v w x y z " * 3,
             "k l m n o p q r s t k l m n o p q r s t k l m n o p q r s t u"]
    assert_same_signals(pa.array(texts, pa.large_string()), True)


def test_first_occurrence_kernel():
    key = np.array([5, 3, 5, 7, 3, 3, 9, -1, -1], dtype=np.int64)
    expected = [True, True, False, True, False, False, True, True, False]
    assert signals.kernels().first_occurrence(key).tolist() == expected
    parent, ids = np.array([0, 0, 1, 1, 1]), np.array([2, 2, 2, 0, 2])
    assert signals._first_occurrence(parent, ids, "numba").tolist() == signals._first_occurrence(parent, ids).tolist()


def test_the_character_table_kept_on_disk_is_the_derived_one():
    """char_classes() is read from the tables cache after its first derivation: it must be that derivation."""
    np.testing.assert_array_equal(signals.char_classes(), signals._derive_char_classes())


def test_space_class_is_str_isspace():
    """The tokenizer separates chunks where Python's str.isspace holds, as spaCy does (checked over every code
    point)."""
    table = signals.char_classes()
    code = np.concatenate([np.arange(0xD800), np.arange(0xE000, 0x110000)])
    expected = np.array([chr(c).isspace() for c in code.tolist()])
    np.testing.assert_array_equal((table[code] & kernel_constants.SPACE) != 0, expected)


def test_tokenize_reads_nothing_past_the_last_string():
    """Bytes after the last string of a buffer (here invalid UTF-8) are never read."""
    data = b"x. \x80"  # the string is "x. "; the byte after it is not UTF-8
    text = pa.LargeStringArray.from_buffers(1, pa.py_buffer(np.array([0, 3], np.int64)), pa.py_buffer(data))
    assert signals.tokenize(text, True).to_pylist() == [["x."]]  # "x." is one of spaCy's special cases
    assert signals.Tokens.from_kernel(text, True).flat.to_pylist() == ["x."]


def test_invalid_utf8_fails_as_the_reference_does():
    """Arrow arrays can hold broken UTF-8 (built from buffers, read from foreign files). The kernels would decode
    past a truncated sequence, so compute() refuses such a batch with Arrow's own error."""
    data = b"ok. bad \xf0\x9f"  # a 4-byte sequence cut after 2 bytes
    text = pa.LargeStringArray.from_buffers(1, pa.py_buffer(np.array([0, len(data)], np.int64)),
                                            pa.py_buffer(data))
    for backend in ("arrow", "numba"):
        with pytest.raises(pa.ArrowInvalid, match="Invalid UTF8"):
            signals.compute(text, backend=backend)


def test_jit_kernels_give_what_the_ahead_of_time_build_gives(real_documents, monkeypatch):
    """The JIT kernels serve where no module compiled ahead of time can be built: same signals, bit for bit."""
    text = pa.array(real_texts(real_documents) + ["", "x", "Don't stop 10km ... … #tag 中文字 https://a.b/c"],
                    pa.large_string())
    default = signals.compute(text)
    monkeypatch.setenv("GRISTMILL_AOT", "0")
    signals.kernels.cache_clear()
    try:
        assert signals.kernels().source == "jit"
        jit = signals.compute(text)
        assert list(jit) == list(default)
        for name, column in default.items():
            assert jit[name].equals(column), name
    finally:
        signals.kernels.cache_clear()


HEURISTICS_IN_A_FRESH_PROCESS = """
import sys
import pyarrow as pa
from gristmill.stages.quality.heuristics import QualityHeuristics
from gristmill.stages.quality.signals import kernels
stage = QualityHeuristics({})
stage.setup()
out = stage.process(pa.table({"text": pa.array(["One two three. Four five six.", "中文 text"], pa.large_string())}))
print(kernels().source, out.table["q_word_count"].to_pylist(), "numba" in sys.modules)
"""


def test_heuristics_in_a_fresh_process_load_no_numba():
    """Start-up: with the kernels built ahead of time (by this process, if not yet), a worker process sets up and
    scores a batch without importing numba (~0.45 CPU s of a process)."""
    import os
    import subprocess
    import sys

    if signals.kernels().source != "aot":
        pytest.skip("no module compiled ahead of time on this machine (no C compiler?): the JIT kernels serve")
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", HEURISTICS_IN_A_FRESH_PROCESS],
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, check=True)
    assert done.stdout.split(maxsplit=1)[0] == "aot"
    assert done.stdout.rstrip().endswith("False")
