"""Filter presets over the ``quality.heuristics_v1`` signals: the published thresholds, as datatrove's defaults.

``- filter: {preset: gopher}`` expands to the expression below; each top-level clause is a drop reason.
Thresholds are copied from datatrove 0.10.1 (GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter,
FineWebQualityFilter), which follow Gopher (Rae et al. 2021, Table A1), C4 (Raffel et al. 2020) and FineWeb.
"""

from __future__ import annotations


# GopherQualityFilter: drop if words < 50 or > 100k, mean word length outside [3, 10], '#' or ellipsis per word
# > 0.1, > 90% bullet lines, > 30% lines ending in an ellipsis, < 80% words with a letter, < 2 stop words.
GOPHER_LANGUAGE_AGNOSTIC = [
    {"col": "q_word_count", "ge": 50},
    {"col": "q_word_count", "le": 100_000},
    {"col": "q_hash_word_ratio", "le": 0.1},
    {"col": "q_ellipsis_word_ratio", "le": 0.1},
    {"col": "q_bullet_lines_frac", "le": 0.9},
    {"col": "q_ellipsis_lines_frac", "le": 0.3},
    {"col": "q_alpha_words_frac", "ge": 0.8},
]
GOPHER_ENGLISH = [
    {"col": "q_mean_word_length", "ge": 3},
    {"col": "q_mean_word_length", "le": 10},
    {"col": "q_stop_word_count", "ge": 2},
]
GOPHER = {"all": GOPHER_LANGUAGE_AGNOSTIC[:2] + GOPHER_ENGLISH[:2] + GOPHER_LANGUAGE_AGNOSTIC[2:]
          + GOPHER_ENGLISH[2:]}

GOPHER_REPETITION = {
    "all": [
        {"col": "q_dup_para_frac", "le": 0.3},
        {"col": "q_dup_para_char_frac", "le": 0.2},
        {"col": "q_dup_line_frac", "le": 0.3},
        {"col": "q_dup_line_char_frac", "le": 0.2},
        {"col": "q_top_2gram_char_frac", "le": 0.2},
        {"col": "q_top_3gram_char_frac", "le": 0.18},
        {"col": "q_top_4gram_char_frac", "le": 0.16},
        {"col": "q_dup_5gram_char_frac", "le": 0.15},
        {"col": "q_dup_6gram_char_frac", "le": 0.14},
        {"col": "q_dup_7gram_char_frac", "le": 0.13},
        {"col": "q_dup_8gram_char_frac", "le": 0.12},
        {"col": "q_dup_9gram_char_frac", "le": 0.11},
        {"col": "q_dup_10gram_char_frac", "le": 0.10},
    ]
}

# C4QualityFilter's document-level decisions (its line removal rewrites text and belongs in a clean stage).
C4 = {
    "all": [
        {"col": "q_c4_lorem_ipsum", "eq": False},
        {"col": "q_c4_curly_bracket", "eq": False},
        {"col": "q_c4_sentence_count", "ge": 5},
    ]
}

FINEWEB = {
    "all": [
        {"col": "q_fw_line_punct_frac", "ge": 0.12},
        {"col": "q_fw_short_line_frac", "le": 0.67},
        {"col": "q_fw_char_dup_frac", "le": 0.01},
        {"col": "q_fw_newline_word_ratio", "le": 0.3},
    ]
}

# The default for mixed-language crawls: Gopher's language-agnostic rules and repetition rules for everyone,
# its English-only rules (mean word length, English stop words) only where lang == en. Needs `lang` (from
# lang.fasttext_v1) and cjk_split (default) so Chinese/Japanese word counts are meaningful.
MULTILINGUAL = {
    "all": GOPHER_LANGUAGE_AGNOSTIC
    + [{"any": [{"col": "lang", "ne": "en"}, clause]} for clause in GOPHER_ENGLISH]
    + GOPHER_REPETITION["all"]
}

PRESETS = {
    "gopher": GOPHER,
    "gopher_repetition": GOPHER_REPETITION,
    "c4": C4,
    "fineweb": FINEWEB,
    "multilingual": MULTILINGUAL,
}
