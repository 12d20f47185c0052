"""clean.normalize_v1 (stages/clean/normalize.py): mojibake repair, Unicode forms, controls, whitespace."""

from __future__ import annotations

import random
import unicodedata

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from gristmill.stages.clean import normalize as N
from gristmill.stages.clean.normalize import Normalize

from .conftest import lines_of, run

ONLY = dict(fix_mojibake=False, form=None, remove_control_chars=False, normalize_whitespace=False)


def only(**switch) -> Normalize:
    """The stage with every step off except the ones named."""
    return Normalize({**ONLY, **switch})


# --- mojibake -------------------------------------------------------------------------------------------


def test_mojibake_is_repaired():
    broken = ["cafÃ© au lait", "donâ€™t stop", "ä¸­æ–‡ text", "Ã  la carte"]
    texts, _ = run(only(fix_mojibake=True), broken)
    assert texts == ["café au lait", "don’t stop", "中文 text", "à la carte"]


def test_real_mojibake_lines_are_repaired():
    broken = lines_of("mojibake.txt")  # real sentences of the Leipzig corpora, UTF-8 read as cp1252
    texts, _ = run(only(fix_mojibake=True), broken)
    joined = "\n".join(texts)
    for word in ["März", "Für", "gefährlich", "spät", "während", "à l'aide"]:
        assert word in joined
    assert "Ã" not in joined


def test_mojibake_switch_off_leaves_it():
    texts, _ = run(only(), ["cafÃ© au lait"])
    assert texts == ["cafÃ© au lait"]


def test_clean_text_in_many_scripts_is_not_touched_by_the_repair(real_texts):
    texts = [line for lines in real_texts.values() for line in lines] + ["Fuß weiß Straße. Ça va, garçon ?"]
    out, _ = run(only(fix_mojibake=True), texts)
    assert out == texts


def test_precheck_flags_mojibake_and_not_clean_text(real_texts):
    pattern = N.mojibake_pattern()
    assert pc.match_substring_regex(pa.array(lines_of("mojibake.txt")), pattern).to_pylist() == [True] * 5
    clean = pa.array(real_texts["zh"] + real_texts["ja"] + real_texts["hi"] + real_texts["en"])
    assert pc.sum(pc.match_substring_regex(clean, pattern)).as_py() == 0


# --- Unicode normalization --------------------------------------------------------------------------------


def test_nfc_by_default_composes():
    texts, _ = run(only(form="NFC"), ["e\u0301te\u0301", "\u1100\u1161"])  # e + combining acute; Hangul jamo
    assert texts == ["été", "가"]


def test_nfkc_and_none():
    assert run(only(form="NFKC"), ["ﬁne Ａ１"])[0] == ["fine A1"]
    assert run(only(), ["e\u0301"])[0] == ["e\u0301"]
    assert Normalize().params.form == "NFC"


@pytest.mark.parametrize("form", ["NFC", "NFKC", "NFD", "NFKD"])
def test_skipping_stable_rows_gives_exactly_utf8_normalize(form, real_texts):
    """Only rows with a character that can change are normalized; the result must equal normalizing all."""
    rng = random.Random(7)
    pool = [chr(c) for r in [(0x20, 0x250), (0x300, 0x370), (0x900, 0x980), (0x1100, 0x1200),
                             (0xAC00, 0xAC20), (0x2000, 0x2140), (0xF900, 0xF910), (0xFB00, 0xFB50)]
            for c in range(*r)]
    texts = [line for lines in real_texts.values() for line in lines]
    texts += [unicodedata.normalize("NFD", t) for t in texts[::3]]
    texts += ["".join(rng.choice(pool) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    array = pa.array(texts, pa.large_string())
    assert N.normalize_form(array, form).equals(pc.utf8_normalize(array, form))


def test_the_unstable_characters_kept_on_disk_are_the_derived_ones():
    """unstable_chars_pattern() is read from the tables cache after its first derivation: it must be that one."""
    assert N.unstable_chars_pattern("NFKC") == N._derive_unstable_chars_pattern("NFKC")


# --- control characters -------------------------------------------------------------------------------------


def test_control_characters_are_removed_but_tab_and_newline_kept():
    texts, _ = run(only(remove_control_chars=True), ["a\x00b\x07c\x1bd\x7fe\x9f\ufefff", "col1\tcol2\nrow"])
    assert texts == ["abcdef", "col1\tcol2\nrow"]


def test_line_breaks_become_newlines_instead_of_vanishing():
    texts, _ = run(only(remove_control_chars=True), ["one\r\ntwo\rthree\x0cfour\u2028five"])
    assert texts == ["one\ntwo\nthree\nfour\nfive"]


def test_control_switch_off_keeps_them():
    assert run(only(), ["a\x00b"])[0] == ["a\x00b"]


# --- whitespace ------------------------------------------------------------------------------------------------


def test_whitespace_cleanup():
    text = "  Title\u00a0here  \n\nfirst   line\t\twith  runs   \n\n\n\n\nsecond\u3000line\u2009end \n\n"
    texts, _ = run(only(normalize_whitespace=True), [text])
    assert texts == ["Title here\n\nfirst line with runs\n\nsecond line end"]


def test_indentation_is_kept_for_code():
    code = lines_of("code_colorsys.py.txt")
    text = "\n".join(code)
    out, _ = run(only(normalize_whitespace=True), [text])
    out_lines = out[0].split("\n")
    indents = [len(l) - len(l.lstrip(" ")) for l in out_lines if l.strip()]
    assert indents == [len(l) - len(l.lstrip(" ")) for l in code if l.strip()]
    assert max(indents) >= 8


def test_whitespace_switch_off_keeps_it():
    assert run(only(), ["a   b  \n\n\n\nc"])[0] == ["a   b  \n\n\n\nc"]


@pytest.mark.parametrize("remove_control", [True, False])
def test_skipping_rows_without_work_changes_nothing(remove_control):
    """The pre-checks that skip rows must never skip a row the passes would change."""
    rng = random.Random(3)
    pool = list("ab c\t\n\r\x0b\x0c\x85\u2028\u2029\xa0\u3000\u200a\x00\x07\x1c\x1f\ufeffé") + ["  ", "\n\n\n"]
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 15))) for _ in range(20000)]
    array = pa.array(texts, pa.large_string())
    stage = only(remove_control_chars=remove_control, normalize_whitespace=True)
    expected = N.normalize_line_breaks(array)
    if remove_control:
        expected = N.remove_control_chars(expected)
    expected = N.clean_whitespace(expected)
    assert stage.clean(array).to_pylist() == expected.to_pylist()


# --- rejects, sources, defaults --------------------------------------------------------------------------------


def test_documents_left_empty_are_rejected():
    texts, reasons = run(Normalize(), ["fine text", " \n\t\u3000\x00 ", "", None])
    assert reasons == [None, "normalize_empty", "normalize_empty", "normalize_empty"]
    assert texts[0] == "fine text"
    assert run(Normalize({"reject_empty": False}), ["  "])[1] == [None]


def test_sources_limit_the_rows_touched():
    texts, reasons = run(
        Normalize({"sources": ["common_crawl"]}),
        ["cafÃ©   ok", "cafÃ©   ok", "   "],
        sources=["common_crawl", "github", "github"],
    )
    assert texts == ["café ok", "cafÃ©   ok", "   "]
    assert reasons == [None, None, None]


def test_all_steps_together_on_real_text(real_texts):
    text = "\r\n".join(lines_of("mojibake.txt")) + "\x00  \n\n\n\n" + "\n".join(real_texts["zh"][:5])
    out, reasons = run(Normalize(), [text])
    assert reasons == [None]
    assert "März" in out[0] and "\r" not in out[0] and "\x00" not in out[0] and "\n\n\n" not in out[0]
    assert real_texts["zh"][0] in out[0]


def test_unknown_params_and_forms_are_refused():
    with pytest.raises(ValidationError):
        Normalize({"form": "NFX"})
    with pytest.raises(ValidationError):
        Normalize({"fix_mojibakes": True})
