from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from gristmill.dedup.normalize import TABLE_SIZE, Normalization, char_class, lower_cp, normalize_batch, normalize_py, tables

EDGE_CASES = ["", "  \t\n ", "Hello,   World!!", "ẞtraße İstanbul ǅx\u200bY Ⱥ", "東京タワー is 333m", "ｆｕｌｌ－ｗｉｄｔｈ", "a\u00adb"]


def test_tables_agree_with_unicodedata_rules():
    cls, low = tables()
    sample = np.r_[np.arange(0, 0x3000), np.arange(0x3000, TABLE_SIZE, 7)]
    sample = sample[(sample < 0xD800) | (sample > 0xDFFF)]
    assert [int(cls[cp]) for cp in sample] == [char_class(int(cp)) for cp in sample]
    assert [int(low[cp]) for cp in sample] == [lower_cp(int(cp)) for cp in sample]


def assert_equals_reference(texts: list[str], norm: Normalization) -> None:
    """The compiled batch gives every text's normalized text and tokens as the pure-Python reference does."""
    batch = normalize_batch(pa.array(texts, pa.large_string()), norm)
    for i, text in enumerate(texts):
        ref_text, ref_tokens = normalize_py(text, norm)
        assert batch.texts()[i].as_py() == ref_text, (norm, text)
        toks = range(batch.tok_off[i], batch.tok_off[i + 1])
        got = [bytes(batch.data[batch.tok_start[t] : batch.tok_end[t]]).decode() for t in toks]
        assert got == ref_tokens, (norm, text)


def test_compiled_normalization_equals_reference(en_sentences, zh_sentences):
    texts = en_sentences[:80] + zh_sentences[:20] + EDGE_CASES
    for norm in (Normalization(), Normalization(lowercase=False, punctuation=False), Normalization(nfkc=True)):
        assert_equals_reference(texts, norm)


def test_rules_on_examples():
    text, tokens = normalize_py("Hello,   World!! 東京タワー x\u200by", Normalization())
    assert text == "hello world 東京タワー xy"
    assert tokens == ["hello", "world", "東", "京", "タ", "ワ", "ー", "xy"]
    assert normalize_py("ｆｕｌｌ", Normalization(nfkc=True))[0] == "full"


def test_every_ascii_character_under_every_folding_equals_reference():
    ascii_text = "".join(chr(b) for b in range(128))
    texts = [ascii_text, ascii_text[::-1], "Mixed ASCII, ünïcode; and CAPS!"]
    for lowercase in (True, False):
        for punctuation in (True, False):
            assert_equals_reference(texts, Normalization(lowercase=lowercase, punctuation=punctuation))


# Every class and transition the kernel distinguishes: ASCII words, separators and punctuation; non-ASCII words
# that lowercase (to another length, too), punctuation, separators, dropped and solo characters.
MIXED_ALPHABET = list("aZ9 ,.\t\n-") + ["é", "É", "Ж", "ß", "İ", "中", "タ", "ก", "\u3000", "\u00a0", "\u2014", "\u200b", "\u00ad", "😀"]


@pytest.mark.parametrize("seed", range(6))
def test_random_mixtures_of_every_character_class_equal_reference(seed):
    rng = np.random.default_rng(seed)
    texts = ["".join(rng.choice(MIXED_ALPHABET, int(rng.integers(0, 40)))) for _ in range(300)]
    for lowercase in (True, False):
        for punctuation in (True, False):
            assert_equals_reference(texts, Normalization(lowercase=lowercase, punctuation=punctuation))


def test_invalid_and_overlong_utf8_bytes_are_decoded_and_re_encoded_as_valid_utf8():
    # Arrow does not validate buffers it is handed. A stray continuation byte reads as U+FFFD; a lead byte
    # takes the low bits of the bytes after it whatever they are ("\xc3 " reads as "à", the space consumed);
    # an overlong "a" (0xC1 0xA1) reads as "a". The output is their valid encoding, never the bytes copied.
    raw = b"ok\x80x caf\xc3 \xc1\xa1 \xd0\x96\xd0\xb8"
    arr = pa.LargeStringArray.from_buffers(1, pa.py_buffer(np.array([0, len(raw)], np.int64)), pa.py_buffer(raw))
    batch = normalize_batch(arr, Normalization(punctuation=False))
    assert bytes(batch.data).decode("utf-8") == "ok\ufffdx caf\u00e0a \u0436\u0438"


def test_invalid_bytes_that_each_become_a_replacement_character_fit_the_output():
    # Each stray byte is U+FFFD, three bytes, a word character when punctuation does not separate: the output is
    # three times the input (a buffer sized for valid text overflowed here).
    raw = b"\x80" * 1000 + b" ok " + b"\xff" * 999
    arr = pa.LargeStringArray.from_buffers(1, pa.py_buffer(np.array([0, len(raw)], np.int64)), pa.py_buffer(raw))
    batch = normalize_batch(arr, Normalization(punctuation=False))
    assert bytes(batch.data).decode("utf-8") == "\ufffd" * 1000 + " ok " + "\ufffd" * 999
    assert [int(batch.tok_end[t] - batch.tok_start[t]) for t in range(batch.tok_off[1])] == [3000, 2, 2997]


def test_class_tables_are_built_once_then_read_from_the_cache_folder(tmp_path, monkeypatch):
    """Per-process set-up: the Unicode class and lowercase tables (~0.05-0.1 CPU s of unicodedata calls) are
    read back by later processes, equal to a fresh build."""
    from gristmill.dedup import normalize

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    normalize.tables.cache_clear()
    try:
        built = normalize.tables()
        assert len(list((tmp_path / "tables").glob("dedup-normalize-*.bin"))) == 1
        normalize.tables.cache_clear()
        monkeypatch.setattr(normalize, "_build_tables", lambda: pytest.fail("tables built again"))
        read = normalize.tables()
    finally:
        normalize.tables.cache_clear()
    for got, want in zip(read, built):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
