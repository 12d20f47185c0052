"""Vectorized Gopher / C4 / FineWeb quality signals over a batch of texts (compiled kernels + Arrow compute + numpy,
no per-document Python loop).

Each rule follows datatrove's per-document implementation (``GopherQualityFilter``, ``GopherRepetitionFilter``,
``C4QualityFilter``, ``FineWebQualityFilter``, v0.10.1, with its default English word tokenizer), which the tests
use as the oracle. Per rule, keep/drop decisions agree with datatrove's on 100% of 955 real documents
(benchmarks/heuristics_agreement.py, BENCHMARKS.md "Issue 17, item 8"). How:

* Words are datatrove's ``split_into_words``: spaCy's English tokenizer, reproduced by the compiled tokenizer
  (``_kernels.split_tokens``): chunks between ``str.isspace`` characters; per chunk spaCy's loop of special cases
  (its 1,343 tokenizer exceptions, ``spacy_exceptions``), prefixes and suffixes (leftmost-longest, with the
  lookbehinds for "." and units after numbers), then its URL test and infixes; then its special-case matcher.
  So "don't" is "do" "n't", "2020-01-01" stays whole, "10km" is "10" "km", "‘" and "©" are tokens of their own.
* C4 sentences are spaCy's Sentencizer on those tokens: a sentence starts at a token that is neither punctuation
  nor one of its sentence-ending characters after one of those, per line.
* Repeated n-grams follow ``find_all_duplicate``'s walk exactly (a repeat counts and jumps n words).

Where the result can still differ (each measured in BENCHMARKS.md): spaCy's ALPHA / ALPHA_LOWER / ALPHA_UPPER
character classes are approximated by Unicode letter categories plus the whole blocks of its uncased scripts, and
its LIST_ICONS by ``\p{So}`` (a letter outside its scripts, such as "º", can change where a "." is split); URL
matching is a simplified form of spaCy's ``URL_MATCH``; the special-case matcher takes the longest match left to
right where spaCy filters overlapping matches longest-first; a whitespace token between a sentence end and a
closing punctuation mark starts a sentence for spaCy, not here; n-grams are compared as word sequences (by 40-bit
hash per document), where ``find_all_duplicate`` compares the words joined without a separator; C4 counts the
sentences of a line before its citation markers ("[1]") are removed. With ``cjk_split`` (the default) Chinese and
Japanese characters are words of their own, where datatrove's English tokenizer keeps a run of them as one word.

Division by zero (an empty document, no lines) gives null, which every ``filter`` comparison treats as failing,
so such documents are dropped as datatrove drops them.

``compute(backend="numba")``, the default, counts Gopher's n-grams and finds repeated lines with compiled kernels
(``gristmill.stages.quality._kernels``: one pass per batch); ``backend="arrow"`` is the Arrow/numpy formulation of
everything but the tokenizer (which exists only compiled), the reference the kernels are tested against.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
from collections.abc import Iterable
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core.compile_cache import CheckedKernels, cached_bytes, load_kernels
from gristmill.stages.base import require
from gristmill.stages.quality import kernel_constants as kc
from gristmill.stages.clean.boilerplate import C4_POLICY_PHRASES, CJK_CHAR
from gristmill.stages.quality.charsets import PUNCTUATION_SET, TERMINAL_PUNCTUATION

GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)
# "numba": tokenizer, n-gram counts and first-occurrence tests as compiled kernels (stages/quality/_kernels.py);
# "arrow": the RE2 / Arrow / numpy formulation below, the reference the kernels reproduce value for value.
Backend = Literal["numba", "arrow"]


def _re2_class(chars: Iterable[str]) -> str:
    """An RE2 character class body matching exactly ``chars`` (every character escaped as \\x{HEX})."""
    return "".join(f"\\x{{{ord(c):x}}}" for c in sorted(chars))


PUNCT_CLASS = _re2_class(PUNCTUATION_SET)
# The character lists of spaCy's English tokenizer (spacy/lang/char_classes.py and punctuation.py, spaCy 3.8, MIT
# licence), which datatrove's default word tokenizer is: its prefixes, suffixes and infixes are built from them.
SPACY_PUNCT = "… , : ; ! ? ¿ ؟ ¡ ( ) [ ] { } < > _ # * & 。 ？ ！ ， 、 ； ： ～ · । ، ۔ ؛ ٪".split()
SPACY_QUOTES = "' \" ” “ ` ‘ ´ ’ ‚ , „ » « 「 」 『 』 （ ） 〔 〕 【 】 《 》 〈 〉 〈 〉 ⟦ ⟧".split()
SPACY_CURRENCY = "$ £ € ¥ ฿ ₽ ﷼ ₴ ₠ ₡ ₢ ₣ ₤ ₥ ₦ ₧ ₨ ₩ ₪ ₫ € ₭ ₮ ₯ ₰ ₱ ₲ ₳ ₴ ₵ ₶ ₷ ₸ ₹ ₺ ₻ ₼ ₽ ₾ ₿".split()  # + US$ C$ A$
SPACY_UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s km/h kmh mph hPa "
    "Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² см³ мм мм² мм³ нм кг г мг м/с "
    "км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тбكم كم² كم³ م م² م³ سم سم² سم³ مم مم² مم³ كم غرام جرام جم "
    "كغ ملغ كوب اكواب"
).split()
# The blocks of spaCy's uncased scripts that its ALPHA holds whole, marks and punctuation of those blocks included
# (Ethiopic, Bengali, Hebrew, Arabic/Persian, Sinhala, Devanagari, Kannada, Tamil, Telugu, Hangul, Kana, CJK with its
# symbols and punctuation); the rest of it is approximated by \pL.
SPACY_UNCASED_BLOCKS = (
    (0x1200, 0x137F), (0x0980, 0x09FF), (0x0591, 0x05F4), (0xFB1D, 0xFB4F), (0x0620, 0x064A), (0x066E, 0x06D5),
    (0x06E5, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08BD), (0xFB50, 0xFBB1), (0xFBD3, 0xFD3D), (0xFD50, 0xFDC7),
    (0xFDF0, 0xFDFB), (0xFE70, 0xFEFC), (0x1EE00, 0x1EEBB), (0x0D80, 0x0DFF), (0x0900, 0x097F), (0x0C80, 0x0CFF),
    (0x0B80, 0x0BFF), (0x0C00, 0x0C7F), (0xAC00, 0xD7AF), (0x1100, 0x11FF), (0x3040, 0x30FF), (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF), (0x20000, 0x2EBEF), (0x2E80, 0x2FFF), (0x3000, 0x303F), (0x31C0, 0x31EF), (0x3200, 0x33FF),
    (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0x1F200, 0x1F2FF), (0x2F800, 0x2FA1F),
)
# spaCy's Sentencizer.default_punct_chars: the tokens after which it starts a sentence (C4's sentence count).
SPACY_SENTENCE_END = (
    "!.?։؟۔܀܁܂߹।॥၊။።፧፨᙮᜵᜶᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᰻᰼᱾᱿‼‽⁇⁈⁉⸮⸼꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉꩝꩞꩟꫰꫱꯫﹒﹖﹗！．？𐩖𐩗𑁇𑁈𑂾𑂿𑃀𑃁𑅁𑅂𑅃𑇅𑇆𑇍𑇞𑇟"
    "𑈸𑈹𑈻𑈼𑊩𑑋𑑌𑗂𑗃𑗉𑗊𑗋𑗌𑗍𑗎𑗏𑗐𑗑𑗒𑗓𑗔𑗕𑗖𑗗𑙁𑙂𑜼𑜽𑜾𑩂𑩃𑪛𑪜𑱁𑱂𖩮𖩯𖫵𖬷𖬸𖭄𛲟𝪈｡。"
)
PUNCT_TOKEN = f"^[{PUNCT_CLASS}]+$"
# str.splitlines() separators.
SPLITLINES = r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x{85}\x{2028}\x{2029}]"
# What str.strip()/lstrip() remove (str.isspace), as an RE2 class body.
SPACE = r"\s\p{Z}\x1c-\x1f\x{85}"
BULLET_LINE = f"^[{SPACE}]*[•\\-]"
ELLIPSIS_LINE = f"(\\.\\.\\.|…)[{SPACE}]*$"
CITATION = r"\[\d*\]|\[edit\]|\[citation needed\]"
C4_END_PUNCT = "[.?!\"']$"
C4_POLICY = "|".join(C4_POLICY_PHRASES)  # plain phrases: no RE2 metacharacter to escape
LINE_END_TERMINAL = pa.array(sorted(TERMINAL_PUNCTUATION), pa.large_string())


# --- small vectorized helpers ---------------------------------------------------------------------------


def _np(array) -> np.ndarray:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.to_numpy(zero_copy_only=False)


def _flags(array) -> np.ndarray:
    return _np(pc.fill_null(array, False)).astype(bool)


def _per_doc(parent: np.ndarray, n_docs: int, weights=None) -> np.ndarray:
    return np.bincount(parent, weights=weights, minlength=n_docs).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> pa.Array:
    """num / den as float64, null where den == 0."""
    den = np.asarray(den, dtype=np.float64)
    safe = np.where(den == 0, 1.0, den)
    return pa.array(np.asarray(num, dtype=np.float64) / safe, pa.float64(), mask=den == 0)


def _split(text: pa.Array, pattern: str, regex: bool = True) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Flattened pieces, their row index and the piece count per row."""
    lists = pc.split_pattern_regex(text, pattern) if regex else pc.split_pattern(text, pattern)
    return pc.list_flatten(lists), _np(pc.list_parent_indices(lists)), _np(pc.list_value_length(lists))


def _first_occurrence(parent: np.ndarray, ids: np.ndarray, backend: Backend = "arrow") -> np.ndarray:
    """True where (row, id) occurs for the first time in array order."""
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    key = parent.astype(np.int64) * (int(ids.max()) + 1) + ids.astype(np.int64)
    if backend == "numba":
        return kernels().first_occurrence(key)
    first = np.zeros(len(key), dtype=bool)
    first[_unique_first(key)[0]] = True
    return first


def _unique_first(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(key, return_index=True, return_counts=True)[1:]`` (groups in key order, the first index of
    each group, its size) for a non-empty ``key``, from an unstable argsort and a per-group minimum of the
    indices: half the time of the stable sort ``np.unique`` needs for ``return_index``."""
    order = np.argsort(key)
    ordered = key[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    return np.minimum.reduceat(order, starts), np.diff(np.append(starts, len(key)))


def _duplicates(pieces: pa.Array, parent: np.ndarray, n_docs: int, backend: Backend = "arrow") \
        -> tuple[np.ndarray, np.ndarray]:
    """datatrove ``find_duplicates`` per row: (repeated pieces, characters in repeated pieces)."""
    if len(pieces) == 0:
        return np.zeros(n_docs), np.zeros(n_docs)
    ids = _np(pc.dictionary_encode(pieces).indices)
    dup = ~_first_occurrence(parent, ids, backend)
    lengths = _np(pc.utf8_length(pieces)).astype(np.float64)
    return _per_doc(parent[dup], n_docs), _per_doc(parent, n_docs, lengths * dup)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads a combined n-gram key over 64 bits (collisions ~ n^2 / 2^64)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


class Tokens:
    """The words of every document of a batch, flattened: ids, lengths, row index and per-row offsets, and per
    word whether it is a symbol (PUNCT_TOKEN) and whether it has a letter. Built from ``tokenize()``'s lists
    (the reference) or by ``from_kernel`` (the same values from one compiled pass)."""

    def __init__(self, words: pa.ListArray, n_docs: int):
        flat = pc.list_flatten(words)
        parent = _np(pc.list_parent_indices(words)).astype(np.int64)
        lengths = _np(pc.utf8_length(flat)).astype(np.int64) if len(flat) else np.zeros(0, np.int64)
        # Arrow's whitespace split keeps an empty piece at each end (and for ""); str.split() does not.
        keep = lengths > 0
        self.flat = flat.filter(pa.array(keep)) if len(flat) else flat
        self.parent = parent[keep]
        self.lengths = lengths[keep]
        self.count = np.bincount(self.parent, minlength=n_docs).astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.count)])
        self.cum_len = np.concatenate([[0], np.cumsum(self.lengths)])
        self.ids = (_np(pc.dictionary_encode(self.flat).indices).astype(np.uint64) + np.uint64(1)) \
            if len(self.flat) else np.zeros(0, np.uint64)
        flat = self.flat
        self.n_docs = n_docs
        position = np.arange(len(flat), dtype=np.int64)
        self.pos_in_doc = position - self.offsets[:-1][self.parent] if len(flat) else position
        self._keys: tuple[int, np.ndarray] | None = None
        self.symbol = _flags(pc.match_substring_regex(flat, PUNCT_TOKEN)) if len(flat) else np.zeros(0, bool)
        self.has_alpha = _flags(pc.match_substring_regex(flat, r"\pL")) if len(flat) else np.zeros(0, bool)
        self.marks: tuple[np.ndarray, np.ndarray] | None = None  # counts of "#" and of "..." / "…" per row
        self.backend: Backend = "arrow"

    @classmethod
    def from_kernel(cls, text: pa.Array, cjk_split: bool) -> Tokens:
        """``Tokens(tokenize(text, cjk_split), len(text))`` from the compiled tokenizer (``_kernels``)."""
        data, offsets = _string_buffers(text)
        k = kernels()
        out, tok_off, doc_count, tok_chars, tok_flags, tok_line, hashes, ellipses = k.split_tokens(
            data, offsets, char_classes(), cjk_split, *special_case_tables(), *_unit_tables(),
            *special_case_tables(matched=True))
        self = cls.__new__(cls)
        self.n_docs = len(text)
        self.flat = pa.LargeStringArray.from_buffers(len(tok_chars), pa.py_buffer(tok_off), pa.py_buffer(out))
        self.count = doc_count
        self.offsets = np.concatenate([[0], np.cumsum(doc_count)])
        self.parent = np.repeat(np.arange(self.n_docs, dtype=np.int64), doc_count)
        self.lengths = tok_chars
        self.ids = (_np(pc.dictionary_encode(self.flat).indices).astype(np.uint64) + np.uint64(1)) \
            if len(self.flat) else np.zeros(0, np.uint64)
        self.symbol = (tok_flags & kc.SYMBOL) != 0
        self.has_alpha = (tok_flags & kc.HAS_LETTER) != 0
        self.marks = (hashes.astype(np.float64), ellipses.astype(np.float64))
        self.line = tok_line  # the str.splitlines() line of the token within its document
        self.sentence_flags = tok_flags & (kc.SENT_PUNCT | kc.ALL_PUNCT)
        self.backend = "numba"
        return self

    def ngram_keys(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Start positions of all n-grams that fit inside their document, and a 64-bit key per n-gram."""
        starts = np.flatnonzero(self.pos_in_doc <= self.count[self.parent] - n)
        return starts, self._rolling_keys(n)[starts]

    def _rolling_keys(self, n: int) -> np.ndarray:
        """The n-gram key at every position (``h_k = mix(h_{k-1} * C + id[i + k - 1])``, ``h_0 = 0``), built
        from the (n-1)-gram keys of the previous call: callers ask for n = 2, 3, 4, 5, ... in turn, so each
        size costs one mixing pass instead of n. Only the last size is kept (bounded memory)."""
        k, h = self._keys if self._keys is not None and self._keys[0] <= n \
            else (0, np.zeros(len(self.ids), dtype=np.uint64))
        with np.errstate(over="ignore"):
            while k < n:
                k += 1
                m = len(self.ids) - k + 1  # positions where a k-gram fits in the batch at all
                nxt = np.zeros(len(self.ids), dtype=np.uint64)
                if m > 0:
                    nxt[:m] = _mix(h[:m] * np.uint64(0x9E3779B97F4A7C15) + self.ids[k - 1:k - 1 + m])
                h = nxt
        self._keys = (k, h)
        return h

    def ngram_chars(self, starts: np.ndarray, n: int) -> np.ndarray:
        """Characters of the words of each n-gram (without separators)."""
        return self.cum_len[starts + n] - self.cum_len[starts]


def _valid_utf8(text: pa.Array) -> bool:
    """Whether every string is valid UTF-8 (Arrow's full validation)."""
    try:
        text.validate(full=True)  # ~4 GB/s
    except pa.ArrowInvalid:
        return False
    return True


# The kernels of ``_kernels`` called here, with the types they are called with (the notation of
# ``gristmill.core.compile_cache.KernelSignature``): what their ahead-of-time build is compiled for.
_TABLES = "u8[] i8[] i8[] i8[] i8[] u4[]"  # special_case_tables(): hashes, offsets, chars, cut offsets, cuts, filter
KERNEL_SIGNATURES = {
    "split_tokens": f"u1[] i8[] u4[] b1 {_TABLES} i8[,] i8[] {_TABLES} -> (u1[],i8[],i8[],i8[],u1[],i8[],i8[],i8[])",
    "ngram_chars": "u8[] i8[] i8[] i8[] i8[] -> (f8[,],f8[,])",
    "first_occurrence": "i8[] -> b1[]",
    "sentences_per_line": "u1[] i8[] i8[] i8[] i8 -> i8[]",
}
KERNEL_MODULE = "gristmill.stages.quality._kernels"
KERNEL_SOURCES = (KERNEL_MODULE, "gristmill.stages.quality.kernel_constants")


@functools.lru_cache(maxsize=1)
def kernels() -> CheckedKernels:
    """The compiled kernels (numba, today installed with the ``dedup`` extra): their ahead-of-time build once
    there is one, which loads without importing numba, else numba's JIT (``compile_cache.load_kernels``)."""
    if importlib.util.find_spec("numba") is None:
        require("numba", "dedup")  # raises, with the install hint
    return load_kernels(KERNEL_MODULE, KERNEL_SIGNATURES, KERNEL_SOURCES)


def _string_buffers(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes and int64 offsets (from 0) of a string array without nulls."""
    text = text.cast(pa.large_string())
    _, offsets_buf, data_buf = text.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[text.offset:text.offset + len(text) + 1]
    if data_buf is None or len(text) == 0:
        return np.zeros(0, np.uint8), np.zeros(len(text) + 1, np.int64)
    return np.frombuffer(data_buf, dtype=np.uint8)[offsets[0]:offsets[-1]], offsets - offsets[0]


@functools.lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """A class bitmask per code point (``_kernels.LETTER`` ...). Unicode properties are asked of RE2 and Arrow
    themselves over every code point, so the tokenizer and the Arrow formulations use the same tables; spaCy's
    character lists come from the ``SPACY_*`` constants. Deriving it costs ~0.3 s of CPU: it is kept on disk
    (``compile_cache.cached_bytes``), keyed by this module's and the kernels' source, pyarrow's and Python's
    versions."""
    key = "|".join([pa.__version__, sys.version, _source_digest(__file__),
                    *(_source_digest(importlib.util.find_spec(name).origin) for name in KERNEL_SOURCES)])
    data = cached_bytes("char-classes", key, lambda: _derive_char_classes().tobytes())
    return np.frombuffer(data, dtype=np.uint32).copy()


def _source_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _derive_char_classes() -> np.ndarray:
    k = kc
    code = np.concatenate([np.arange(0xD800), np.arange(0xE000, 0x110000)]).astype(np.uint32)  # no surrogates
    every_char = pa.array([code.tobytes().decode("utf-32-le")], pa.large_string())
    table = np.zeros(0x110000, dtype=np.uint32)
    for bit, pattern in ((k.LETTER, r"\pL"), (k.NUMBER, r"\pN"), (k.CJK, CJK_CHAR), (k.PUNCT, f"[{PUNCT_CLASS}]"),
                         (k.RE2_SPACE, r"\s"), (k.WORD, r"\w"), (k.LOWER, r"[\p{Ll}\p{Lo}]"),
                         (k.UPPER, r"[\p{Lu}\p{Lt}\p{Lo}]"), (k.ICON, r"\p{So}"), (k.UNI_PUNCT, r"\pP")):
        # every match is one character: the pieces between matches locate them
        pieces = _np(pc.utf8_length(pc.list_flatten(pc.split_pattern_regex(every_char, pattern))))
        table[code[np.cumsum(pieces[:-1] + 1) - 1]] |= bit
    # utf8_split_whitespace splits where utf8_is_space holds (the tests check it over every code point)
    one_char = pa.LargeStringArray.from_buffers(len(code), pa.py_buffer(_utf8_offsets(code)),
                                                every_char.buffers()[2])
    table[code[_flags(pc.utf8_is_space(one_char))]] |= k.SPLIT_SPACE
    table[[c for c in range(0x3100) if chr(c).isspace()]] |= k.SPACE  # every str.isspace character is below
    one = functools.partial(_set_bits, table)
    one(k.PREFIX, "§%=—–", SPACY_PUNCT, SPACY_QUOTES, SPACY_CURRENCY)
    table[table & k.ICON != 0] |= k.PREFIX | k.SUFFIX
    one(k.SUFFIX, "—–", SPACY_PUNCT, SPACY_QUOTES)
    one(k.QUOTE, SPACY_QUOTES)
    one(k.DOT_AFTER, "0123456789%²-+|(?:)", SPACY_PUNCT, SPACY_QUOTES)
    table[table & k.LOWER != 0] |= k.DOT_AFTER
    one(k.HYPHEN, "-–—~")
    one(k.INFIX_OP, ":<>=/")
    one(k.CURRENCY, SPACY_CURRENCY)
    one(k.UNIT_END, [unit[-1] for unit in SPACY_UNITS])
    table[table & k.LETTER != 0] |= k.ALPHA
    for first, last in SPACY_UNCASED_BLOCKS:
        table[first:last + 1] |= k.ALPHA | k.LOWER | k.UPPER | k.DOT_AFTER
    one(k.SENT_END, SPACY_SENTENCE_END)
    one(k.LINE_BREAK, "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
    return table


def _set_bits(table: np.ndarray, bit: int, *char_lists) -> None:
    table[[ord(c) for chars in char_lists for c in chars]] |= bit


@functools.lru_cache(maxsize=2)
def special_case_tables(matched: bool = False) -> tuple[np.ndarray, ...]:
    """spaCy's English special cases (``spacy_exceptions``) as the compiled tokenizer looks them up: sorted
    64-bit hashes of their code points, offsets into their code points, and per special case the positions where
    it is split into tokens. ``matched``: only those the affix rules split into several tokens, which spaCy's
    special-case matcher puts back together after them."""
    from gristmill.stages.quality.spacy_exceptions import SPECIAL_CASES

    k = kernels()
    keys = ["".join(entry.split("\u241f")) for entry in SPECIAL_CASES]
    cuts = [np.cumsum([len(p) for p in entry.split("\u241f")[:-1]]).astype(np.int64) for entry in SPECIAL_CASES]
    assert max(map(len, keys)) <= kc.MAX_SPECIAL
    if matched:
        data, offsets = _string_buffers(pa.array(keys, pa.large_string()))
        none = (np.zeros(0, np.uint64), np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(1, np.int64),
                np.zeros(0, np.int64), np.zeros(4096, np.uint32))
        count = k.split_tokens(data, offsets, char_classes(), False, *none, *_unit_tables(), *none)[2]
        keys, cuts = [key for key, c in zip(keys, count) if c > 1], [cut for cut, c in zip(cuts, count) if c > 1]
    hashes = np.array([_special_hash(key) for key in keys], dtype=np.uint64)
    order = np.argsort(hashes, kind="stable")
    chars = [np.array([ord(c) for c in keys[i]], np.int64) for i in order]
    cut_lists = [cuts[i] for i in order]
    length_filter = np.zeros(4096, np.uint32)  # _kernels._may_be_special
    for key in keys:
        length_filter[(ord(key[0]) * 31 + ord(key[-1])) & 4095] |= np.uint32(1 << len(key))
    return (hashes[order], np.concatenate([[0], np.cumsum([len(c) for c in chars])]).astype(np.int64),
            np.concatenate(chars), np.concatenate([[0], np.cumsum([len(c) for c in cut_lists])]).astype(np.int64),
            np.concatenate(cut_lists + [np.zeros(0, np.int64)]), length_filter)


def _special_hash(key: str) -> int:
    """``_kernels._special``'s hash of a string's code points."""
    h = np.array([kc._SEED], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in key:
            h = _mix(h * np.uint64(0x9E3779B97F4A7C15) + np.uint64(ord(c)))
    return int(h[0])


@functools.lru_cache(maxsize=1)
def _unit_tables() -> tuple[np.ndarray, np.ndarray]:
    """SPACY_UNITS as code points (padded) and their lengths."""
    units = np.zeros((len(SPACY_UNITS), max(map(len, SPACY_UNITS))), dtype=np.int64)
    for i, unit in enumerate(SPACY_UNITS):
        units[i, :len(unit)] = [ord(c) for c in unit]
    return units, np.array([len(u) for u in SPACY_UNITS], dtype=np.int64)


def _utf8_offsets(code: np.ndarray) -> np.ndarray:
    """Byte offsets of the characters ``code`` in their UTF-8 concatenation."""
    width = 1 + (code >= 0x80).astype(np.int64) + (code >= 0x800) + (code >= 0x10000)
    return np.concatenate([[0], np.cumsum(width)]).astype(np.int64)


def tokenize(text: pa.Array, cjk_split: bool) -> pa.ListArray:
    """The tokens of every document as lists (datatrove's ``split_into_words``: spaCy's English tokenizer, see
    the module docstring). The tokenizer exists only compiled; this is its output for the Arrow formulation."""
    tokens = Tokens.from_kernel(text, cjk_split)
    return pa.LargeListArray.from_arrays(pa.array(tokens.offsets, pa.int64()), tokens.flat)


# --- the rule families ----------------------------------------------------------------------------------


def gopher_quality(text: pa.Array, tokens: Tokens, stop_words: tuple[str, ...],
                   lines: tuple[pa.Array, np.ndarray, np.ndarray]) -> dict[str, pa.Array]:
    n = tokens.n_docs
    word = ~tokens.symbol
    n_words = _per_doc(tokens.parent[word], n)
    word_chars = _per_doc(tokens.parent, n, tokens.lengths * word)
    if tokens.marks is not None:
        hashes, ellipses = tokens.marks
    else:
        hashes = _np(pc.count_substring(text, "#")).astype(np.float64)
        ellipses = _np(pc.count_substring(text, "...")).astype(np.float64) + _np(pc.count_substring(text, "…"))

    lines, line_parent, pieces = lines
    # splitlines() yields no empty piece after a final line break (or for ""); split does: drop it.
    n_lines = pieces - _flags(pc.match_substring_regex(text, f"({SPLITLINES})$|^$"))
    bullets = _per_doc(line_parent, n, _flags(pc.match_substring_regex(lines, BULLET_LINE)))
    ellipsis_lines = _per_doc(line_parent, n, _flags(pc.match_substring_regex(lines, ELLIPSIS_LINE)))

    # Gopher's stop-word rule counts distinct stop words present (case-sensitive, as datatrove does).
    stop_idx = _np(pc.fill_null(pc.index_in(tokens.flat, value_set=pa.array(stop_words, tokens.flat.type)), -1)) \
        if len(tokens.flat) else np.zeros(0, np.int64)
    hit = stop_idx >= 0
    distinct = _first_occurrence(tokens.parent[hit], stop_idx[hit], tokens.backend)
    stop_count = _per_doc(tokens.parent[hit][distinct], n)

    token_count = tokens.count.astype(np.float64)
    return {
        "q_word_count": pa.array(n_words.astype(np.int64)),
        "q_mean_word_length": _ratio(word_chars, n_words),
        "q_hash_word_ratio": _ratio(hashes, token_count),
        "q_ellipsis_word_ratio": _ratio(ellipses, token_count),
        "q_bullet_lines_frac": _ratio(bullets, n_lines),
        "q_ellipsis_lines_frac": _ratio(ellipsis_lines, n_lines),
        "q_alpha_words_frac": _ratio(_per_doc(tokens.parent, n, tokens.has_alpha), token_count),
        "q_stop_word_count": pa.array(stop_count.astype(np.int64)),
    }


def gopher_repetition(text: pa.Array, tokens: Tokens, n_chars: np.ndarray) -> dict[str, pa.Array]:
    n, backend = tokens.n_docs, tokens.backend
    out: dict[str, pa.Array] = {}
    paragraphs, para_parent, n_paras = _split(pc.utf8_trim_whitespace(text), r"\n{2,}")
    dup, dup_chars = _duplicates(paragraphs, para_parent, n, backend)
    out["q_dup_para_frac"] = _ratio(dup, n_paras)
    out["q_dup_para_char_frac"] = _ratio(dup_chars, n_chars)
    lines, line_parent, n_lines = _split(text, r"\n+")
    dup, dup_chars = _duplicates(lines, line_parent, n, backend)
    out["q_dup_line_frac"] = _ratio(dup, n_lines)
    out["q_dup_line_char_frac"] = _ratio(dup_chars, n_chars)
    if backend == "numba":
        top, dup = kernels().ngram_chars(tokens.ids, tokens.offsets, tokens.lengths,
                                         np.array(TOP_NGRAMS, np.int64), np.array(DUP_NGRAMS, np.int64))
    else:
        top = [_top_ngram_chars(tokens, size) for size in TOP_NGRAMS]
        dup = [_dup_ngram_chars(tokens, size) for size in DUP_NGRAMS]
    for size, chars in zip(TOP_NGRAMS, top):
        out[f"q_top_{size}gram_char_frac"] = _ratio(chars, n_chars)
    for size, chars in zip(DUP_NGRAMS, dup):
        out[f"q_dup_{size}gram_char_frac"] = _ratio(chars, n_chars)
    return out


def _doc_keys(tokens: Tokens, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-gram starts, their row, and a key that sorts by row first: (row << 40) | 40 bits of the n-gram hash.

    Two distinct n-grams of one document share a key with probability ~ m^2 / 2^41 (m n-grams in it)."""
    starts, h = tokens.ngram_keys(n)
    doc = tokens.parent[starts]
    key = (doc.astype(np.uint64) << np.uint64(40)) | (h >> np.uint64(24))
    return starts, doc, key


def _top_ngram_chars(tokens: Tokens, n: int) -> np.ndarray:
    """Characters covered by the most frequent n-gram (ties: the first seen), as Counter.most_common(1) picks it;
    0 when the document has fewer than n words."""
    out = np.zeros(tokens.n_docs)
    starts, doc, key = _doc_keys(tokens, n)
    if len(starts) == 0:
        return out
    first, counts = _unique_first(key)  # groups ordered by row
    first_start, group_doc = starts[first], doc[first]
    # most frequent first, then earliest: one integer score, maximal per row
    score = counts.astype(np.int64) * (len(tokens.lengths) + 1) - first_start
    row_start = np.flatnonzero(np.concatenate([[True], group_doc[1:] != group_doc[:-1]]))
    best_score = np.maximum.reduceat(score, row_start)
    pick = np.flatnonzero(score == np.repeat(best_score, np.diff(np.append(row_start, len(score)))))
    # " ".join of the n words: word characters plus n-1 separators.
    chars = tokens.ngram_chars(first_start[pick], n) + (n - 1)
    out[group_doc[pick]] = counts[pick] * chars
    return out


def _dup_ngram_chars(tokens: Tokens, n: int) -> np.ndarray:
    """Characters of repeated n-grams as datatrove's ``find_all_duplicate`` walks each document: a repeated
    n-gram counts and the walk jumps n words ahead, a new one is remembered. The walk is sequential: this
    reference steps through it in Python over the n-gram keys (``_kernels.ngram_chars`` is the fast path)."""
    out = np.zeros(tokens.n_docs)
    starts, doc, key = _doc_keys(tokens, n)
    if len(starts) == 0:
        return out
    bounds = np.searchsorted(doc, np.arange(tokens.n_docs + 1))
    chars, keys = tokens.ngram_chars(starts, n), key.tolist()
    for d in np.flatnonzero(np.diff(bounds)):
        seen: set[int] = set()
        i, stop = int(bounds[d]), int(bounds[d + 1])
        while i < stop:
            if keys[i] in seen:
                out[d] += chars[i]
                i += n
            else:
                seen.add(keys[i])
                i += 1
    return out


def c4(text: pa.Array, n_docs: int, lines: tuple[pa.Array, np.ndarray, np.ndarray], tokens: Tokens,
       max_word_length: int = 1000) -> dict[str, pa.Array]:
    """C4's document decisions. Lines with "lorem ipsum" or "{" are counted as kept lines (datatrove's filter
    drops the whole document at them: so do the two flags), so each clause decides on its own."""
    lines, parent, per_doc = lines
    stripped = pc.utf8_trim_whitespace(lines)
    line_words = pc.utf8_split_whitespace(stripped)
    n_line_words = _np(pc.list_value_length(line_words))
    word_lengths = _np(pc.utf8_length(pc.list_flatten(line_words)))
    long_word = np.bincount(_np(pc.list_parent_indices(line_words))[word_lengths > max_word_length],
                            minlength=len(lines)) > 0
    cleaned = pc.replace_substring_regex(stripped, CITATION, "")
    terminal = _flags(pc.match_substring_regex(cleaned, C4_END_PUNCT)) & ~_flags(pc.ends_with(cleaned, "..."))
    eligible = ~long_word & terminal & (n_line_words >= 3)
    lower = pc.utf8_lower(cleaned)
    lorem = eligible & _flags(pc.match_substring(lower, "lorem ipsum"))
    javascript = _flags(pc.match_substring(lower, "javascript"))
    curly = eligible & ~javascript & _flags(pc.match_substring(cleaned, "{"))
    policy = _flags(pc.match_substring_regex(lower, C4_POLICY))
    kept = eligible & ~javascript & ~policy
    sentences = _sentences_per_line(tokens, np.concatenate([[0], np.cumsum(per_doc)]), len(lines))
    return {
        "q_c4_sentence_count": pa.array(_per_doc(parent, n_docs, kept * sentences).astype(np.int64)),
        "q_c4_kept_line_count": pa.array(_per_doc(parent, n_docs, kept).astype(np.int64)),
        "q_c4_lorem_ipsum": pa.array(_per_doc(parent, n_docs, lorem) > 0),
        "q_c4_curly_bracket": pa.array(_per_doc(parent, n_docs, curly) > 0),
    }


def _sentences_per_line(tokens: Tokens, line_base: np.ndarray, n_lines: int) -> np.ndarray:
    """Sentences of every line as spaCy's Sentencizer counts them (``_kernels.sentences_per_line``)."""
    return kernels().sentences_per_line(tokens.sentence_flags, tokens.line, tokens.count, line_base, n_lines)


def fineweb(text: pa.Array, tokens: Tokens, n_chars: np.ndarray, short_line_length: int = 30) -> dict:
    n = tokens.n_docs
    lines, parent, _ = _split(text, "\n", regex=False)
    nonblank = ~_flags(pc.equal(pc.utf8_trim_whitespace(lines), ""))
    lines, parent = lines.filter(pa.array(nonblank)), parent[nonblank]
    n_lines = _per_doc(parent, n)
    last_char = pc.utf8_slice_codeunits(lines, -1)
    punct_end = _flags(pc.is_in(last_char, value_set=LINE_END_TERMINAL.cast(last_char.type)))
    short = _np(pc.utf8_length(lines)) <= short_line_length
    _, dup_chars = _duplicates(lines, parent, n, tokens.backend)
    newlines = _np(pc.count_substring(text, "\n")).astype(np.float64)
    return {
        "q_fw_line_punct_frac": _ratio(_per_doc(parent, n, punct_end), n_lines),
        "q_fw_short_line_frac": _ratio(_per_doc(parent, n, short), n_lines),
        "q_fw_char_dup_frac": _ratio(dup_chars, n_chars - newlines),
        "q_fw_newline_word_ratio": _ratio(newlines, tokens.count),
    }


def compute(text: pa.Array | pa.ChunkedArray, cjk_split: bool = True,
            stop_words: tuple[str, ...] = GOPHER_STOP_WORDS, backend: Backend = "numba") -> dict[str, pa.Array]:
    """All ``q_*`` signals for a batch of texts, in a fixed column order. ``backend="numba"`` tokenizes and
    counts n-grams with the compiled kernels (``_kernels``); ``"arrow"`` is the RE2/numpy reference they equal."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = pc.fill_null(text, "")
    n_docs = len(text)
    if not _valid_utf8(text):  # the compiled tokenizer decodes valid UTF-8 only
        text.validate(full=True)  # raises ArrowInvalid, naming the problem
    compiled = Tokens.from_kernel(text, cjk_split)
    tokens = compiled if backend == "numba" \
        else Tokens(pa.LargeListArray.from_arrays(pa.array(compiled.offsets), compiled.flat), n_docs)
    n_chars = _np(pc.utf8_length(text)).astype(np.float64)
    lines = _split(text, SPLITLINES)  # str.splitlines(): Gopher's and C4's lines
    out = gopher_quality(text, tokens, stop_words, lines)
    out.update(gopher_repetition(text, tokens, n_chars))
    out.update(c4(text, n_docs, lines, compiled))
    out.update(fineweb(text, tokens, n_chars))
    return out


def column_types() -> dict[str, pa.DataType]:
    """The ``q_*`` columns in ``compute()``'s order (without compiling anything at import)."""
    count, ratio, flag = pa.int64(), pa.float64(), pa.bool_()
    names = (["q_word_count", "q_mean_word_length", "q_hash_word_ratio", "q_ellipsis_word_ratio",
              "q_bullet_lines_frac", "q_ellipsis_lines_frac", "q_alpha_words_frac", "q_stop_word_count",
              "q_dup_para_frac", "q_dup_para_char_frac", "q_dup_line_frac", "q_dup_line_char_frac"]
             + [f"q_top_{n}gram_char_frac" for n in TOP_NGRAMS] + [f"q_dup_{n}gram_char_frac" for n in DUP_NGRAMS]
             + ["q_c4_sentence_count", "q_c4_kept_line_count", "q_c4_lorem_ipsum", "q_c4_curly_bracket",
                "q_fw_line_punct_frac", "q_fw_short_line_frac", "q_fw_char_dup_frac", "q_fw_newline_word_ratio"])
    types = {"q_word_count": count, "q_stop_word_count": count, "q_c4_sentence_count": count,
             "q_c4_kept_line_count": count, "q_c4_lorem_ipsum": flag, "q_c4_curly_bracket": flag}
    return {name: types.get(name, ratio) for name in names}

