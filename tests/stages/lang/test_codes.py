"""gristmill's language codes: every lid.176 label has one, aliases read as codes, unknown codes refused."""

from __future__ import annotations

import re

import pytest

from gristmill.stages.lang import fasttext_model
from gristmill.stages.lang.codes import (ALIASES, LANGUAGES, LID176_LABELS, LanguageCodeError, model_label_to_code,
                                         to_code)


@pytest.fixture(scope="module")
def lid176_labels() -> list[str]:
    model = fasttext_model.load_model(fasttext_model.default_lid_model())
    return [label.removeprefix("__label__") for label in model.get_labels()]


def test_every_lid176_label_has_its_own_code(lid176_labels):
    assert len(lid176_labels) == 176
    codes = [model_label_to_code(label) for label in lid176_labels]
    assert None not in codes
    assert len(set(codes)) == 176  # two labels never merge into one code
    assert set(codes) == set(LANGUAGES)


def test_codes_are_iso_639_1_else_639_3():
    assert all(re.fullmatch(r"[a-z]{2,3}", code) for code in LANGUAGES)
    # the labels where the model's Wikipedia code is not the ISO code of its language
    assert LID176_LABELS == {"no": "nb", "sh": "hbs", "als": "gsw", "bh": "bho"}
    assert {code: LANGUAGES[code] for code in LID176_LABELS.values()} == {
        "nb": "Norwegian Bokmål", "hbs": "Serbo-Croatian", "gsw": "Alemannic", "bho": "Bhojpuri"}
    for label in ("he", "arz", "yue", "zh", "id", "yi", "jv"):
        assert model_label_to_code(label) == label


@pytest.mark.parametrize("alias, code", [
    ("no", "nb"), ("nb", "nb"), ("nob", "nb"), ("nor", "nb"), ("iw", "he"), ("heb", "he"), ("zh-Hans", "zh"),
    ("zh-Hant", "zh"), ("zh_CN", "zh"), ("cmn", "zh"), ("in", "id"), ("ji", "yi"), ("jw", "jv"), ("sh", "hbs"),
    ("mo", "ro"), ("ger", "de"), ("deu", "de"), ("EN", "en"), ("en-US", "en"), ("pt_BR", "pt"),
    ("eng_Latn", "en"), ("sr-Latn", "sr"), ("fil", "tl"), ("bh", "bho"), ("gsw", "gsw"), (False, "nb"),
])
def test_aliases(alias, code):
    assert to_code(alias) == code


def test_alias_table_points_at_codes_and_never_shadows_one():
    assert set(ALIASES.values()) <= set(LANGUAGES)
    assert not set(ALIASES) & set(LANGUAGES)


def test_unknown_code_lists_the_known_ones():
    with pytest.raises(LanguageCodeError) as err:
        to_code("xx")
    message = str(err.value)
    assert message.startswith("unknown language code 'xx'; known codes: af, am, an, ar, arz,")
    assert all(code in message for code in LANGUAGES)
    with pytest.raises(LanguageCodeError, match="unknown language code 'xx-Latn'"):
        to_code("xx-Latn")


def test_ambiguous_and_non_string_values_are_refused_with_the_reason():
    with pytest.raises(LanguageCodeError, match=r"'als' is Alemannic .* Tosk Albanian .* gsw .* sq"):
        to_code("als")
    with pytest.raises(LanguageCodeError, match=r"True is not a language code \(YAML reads unquoted yes/on/true"):
        to_code(True)
    with pytest.raises(LanguageCodeError, match="3 is not a language code"):
        to_code(3)
