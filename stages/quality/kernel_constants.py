"""The constants of ``quality.heuristics_v1``'s compiled kernels (``_kernels``): the character-class and token
bits, and the hash seeds. Apart from the kernels so that ``signals`` reads them without importing numba (the
kernels themselves load from their ahead-of-time build, ``gristmill.core.compile_cache.load_kernels``)."""

import numpy as np

# Bits of the character-class table (signals.char_classes()).
LETTER = 1  # RE2 \pL (Python's str.isalpha)
NUMBER = 2  # RE2 \pN
CJK = 4  # RE2 [\p{Han}\p{Hiragana}\p{Katakana}]
SPLIT_SPACE = 8  # a separator of Arrow's utf8_split_whitespace
PUNCT = 16  # PUNCTUATION_SET (datatrove's symbols: a token of these only is not a word)
RE2_SPACE = 32  # RE2 \s
WORD = 64  # RE2 \w
SPACE = 1 << 7  # str.isspace: spaCy's chunk separator
LOWER = 1 << 8  # spaCy's ALPHA_LOWER (lower-case and uncased letters)
UPPER = 1 << 9  # spaCy's ALPHA_UPPER (upper-case and uncased letters)
PREFIX = 1 << 10  # a one-character prefix of spaCy's English tokenizer
SUFFIX = 1 << 11  # a one-character suffix (without conditions)
ICON = 1 << 12  # spaCy's LIST_ICONS (\p{So}): prefix, suffix and infix
QUOTE = 1 << 13  # spaCy's CONCAT_QUOTES
DOT_AFTER = 1 << 14  # a '.' after this character is a suffix: [0-9{al}%²\-\+{p}(?:{q})]
HYPHEN = 1 << 15  # the first character of spaCy's HYPHENS (- – — ~)
INFIX_OP = 1 << 16  # [:<>=/]
CURRENCY = 1 << 17  # a one-character currency symbol
UNIT_END = 1 << 18  # the last character of one of spaCy's UNITS
SENT_END = 1 << 19  # one of the punct_chars of spaCy's Sentencizer
UNI_PUNCT = 1 << 20  # Unicode category P* (spaCy's is_punct)
LINE_BREAK = 1 << 21  # a str.splitlines() separator
ALPHA = 1 << 22  # spaCy's ALPHA: \pL and the whole blocks of its uncased scripts (vowel signs included)

# Flags of a token.
SYMBOL = 1  # every character in PUNCT (PUNCT_TOKEN)
HAS_LETTER = 2  # some character in \pL
SENT_PUNCT = 4  # one character of SENT_END: the Sentencizer's sentence-ending token
ALL_PUNCT = 8  # every character UNI_PUNCT: spaCy's Token.is_punct

AFFIX = PREFIX | SUFFIX | ICON | HYPHEN | INFIX_OP | CURRENCY  # characters some affix or infix rule tests

MAX_SPECIAL = 16  # longer than every special case (signals.special_case_tables checks it)
_SEED = np.uint64(0x243F6A8885A308D3)
_APOSTROPHE, _RIGHT_QUOTE = 0x27, 0x2019
_DOT, _HYPHEN, _AT = 0x2E, 0x2D, 0x40
_KEY_MULT = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
