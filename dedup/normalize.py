"""Text normalization and tokenization for dedup: one compiled pass over the flat UTF-8 buffer of a batch.

Rules (the same for MinHash shingles and Bloom keys):

* every code point has a class from Unicode tables built once per process: word character, separator
  (whitespace, control characters, line/paragraph separators), punctuation/symbol (categories P* and S*; a
  separator when ``punctuation`` folding is on, else a word character), dropped (format characters such as
  zero-width spaces and soft hyphens: removed without splitting), or "solo";
* "solo" characters belong to scripts written without spaces between words (Han, Hiragana, Katakana, Thai,
  Lao, Khmer, Myanmar): each is a token of its own, so word n-grams over Chinese or Japanese text are
  character n-grams, the usual rule for CJK near-duplicate detection;
* ``lowercase`` maps each code point with its simple (one-to-one) Unicode lowercase mapping;
* the normalized text is the words joined by single spaces (runs of separators fold into one space,
  leading and trailing ones are dropped); ``nfkc`` applies Unicode NFKC (Arrow) first.

``normalize_py`` is an independent pure-Python implementation of the same rules (per character with
``unicodedata``), used as the reference in tests and by ``gristmill.dedup.minhash.shingles_py``.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from gristmill.core.compile_cache import cached_bytes
from gristmill.dedup.scratch import Scratch


WORD, SEP, PUNCT, DROP, SOLO = 0, 1, 2, 3, 4
TABLE_SIZE = 0x30000  # planes 0-2 (BMP, SMP, CJK extension B+); code points above are word characters
# Scripts written without spaces between words (letter and mark code points of these blocks).
SOLO_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x2FFFF),  # CJK extensions B-F, compatibility supplement
)
EXTRA_SEPARATORS = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x85}


class Normalization(BaseModel):
    """How text is folded before hashing. The defaults make case, punctuation and spacing not count.
    Whitespace always folds: tokens are what lies between separators."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lowercase: bool = True
    punctuation: bool = True  # punctuation and symbols separate words (and vanish from the normalized text)
    nfkc: bool = False  # Unicode NFKC first (full-width forms, ligatures); about doubles the cost


def char_class(cp: int) -> int:
    """The class of one code point (the reference for the tables)."""
    ch = chr(cp)
    cat = unicodedata.category(ch)
    if cp in EXTRA_SEPARATORS or cat in ("Zs", "Zl", "Zp", "Cc"):
        return SEP
    if cat == "Cf":
        return DROP
    if cat[0] in "PS":
        return PUNCT
    if cat[0] in "LMN" and any(lo <= cp <= hi for lo, hi in SOLO_RANGES):
        return SOLO
    return WORD


def lower_cp(cp: int) -> int:
    """Simple lowercase mapping: the lowercase of a character when it is a single code point."""
    if 0xD800 <= cp <= 0xDFFF:
        return cp
    low = chr(cp).lower()
    return ord(low) if len(low) == 1 else cp


@functools.lru_cache(maxsize=1)
def tables() -> tuple[np.ndarray, np.ndarray]:
    """(class uint8, lowercase int32) indexed by code point, for code points below ``TABLE_SIZE``; the same
    classes as :func:`char_class`. Built once per Unicode version and source of this module (~0.05-0.1 CPU s of
    ``unicodedata`` calls), then read from the cache folder."""
    key = "\0".join((unicodedata.unidata_version, sys.version, Path(__file__).read_text(encoding="utf-8")))
    data = cached_bytes("dedup-normalize", key, lambda: b"".join(t.tobytes() for t in _build_tables()))
    cls = np.frombuffer(data, np.uint8, count=TABLE_SIZE)
    return cls, np.frombuffer(data, np.int32, count=TABLE_SIZE, offset=TABLE_SIZE)


def _build_tables() -> tuple[np.ndarray, np.ndarray]:
    """One ``unicodedata`` call per code point, the solo ranges vectorized."""
    by_category = {"Zs": SEP, "Zl": SEP, "Zp": SEP, "Cc": SEP, "Cf": DROP}
    cls = np.zeros(TABLE_SIZE, dtype=np.uint8)
    low = np.arange(TABLE_SIZE, dtype=np.int32)
    letter = np.zeros(TABLE_SIZE, dtype=bool)
    category = unicodedata.category
    for cp in range(TABLE_SIZE):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        cat = category(ch)
        c = by_category.get(cat)
        if c is not None:
            cls[cp] = c
        elif cat[0] in "PS":
            cls[cp] = PUNCT
        elif cat[0] in "LMN":
            letter[cp] = True
        lowered = ch.lower()
        if lowered != ch and len(lowered) == 1:
            low[cp] = ord(lowered)
    for lo, hi in SOLO_RANGES:
        span = slice(lo, min(hi, TABLE_SIZE - 1) + 1)
        cls[span] = np.where(letter[span], SOLO, cls[span])
    cls[list(EXTRA_SEPARATORS)] = SEP
    return cls, low


@functools.lru_cache(maxsize=1)
def kernel_classes() -> np.ndarray:
    """The class table of the compiled kernel: each code point's class, plus ``LOWER_CHANGES`` (0x80) where
    its lowercase is another character (one lookup tells the kernel both)."""
    cls, low = tables()
    flagged = cls | np.where(low != np.arange(TABLE_SIZE), np.uint8(0x80), np.uint8(0)).astype(np.uint8)
    flagged.flags.writeable = False
    return flagged


@functools.lru_cache(maxsize=8)
def ascii_bytes(norm: Normalization) -> np.ndarray:
    """For each ASCII byte, what it becomes inside a word under ``norm`` (lowercased when folding case), or
    0 where it separates words (whitespace, control characters, and punctuation when folded)."""
    cls, low = tables()
    out = np.zeros(128, dtype=np.uint8)
    for b in range(128):
        c = cls[b]
        if c == PUNCT:
            c = SEP if norm.punctuation else WORD
        if c == WORD:
            out[b] = low[b] if norm.lowercase else b
    if np.isin(cls[:128], (DROP, SOLO)).any():  # the kernel's ASCII path knows only words and separators
        raise RuntimeError("an ASCII character is classed as dropped or solo: the ASCII path needs a third case")
    out.flags.writeable = False
    return out


def normalize_py(text: str, norm: Normalization) -> tuple[str, list[str]]:
    """Reference implementation: (normalized text, word tokens) of one document."""
    if norm.nfkc:
        text = unicodedata.normalize("NFKC", text)
    words: list[list[str]] = []  # words as lists of characters
    tokens: list[str] = []
    current: list[str] | None = None
    for ch in text:
        cp = ord(ch)
        c = char_class(cp) if cp < TABLE_SIZE else WORD
        if c == DROP:
            continue
        if c == PUNCT:
            c = SEP if norm.punctuation else WORD
        if c == SEP:
            if current is not None:
                tokens.append("".join(current))
                current = None
            if words and words[-1]:
                words.append([])
            continue
        if norm.lowercase and cp < TABLE_SIZE:
            ch = chr(lower_cp(cp))
        if not words:
            words.append([])
        words[-1].append(ch)
        if c == SOLO:
            if current is not None:
                tokens.append("".join(current))
                current = None
            tokens.append(ch)
        else:
            current = (current or []) + [ch]
    if current is not None:
        tokens.append("".join(current))
    return " ".join("".join(w) for w in words if w), tokens


def _as_large_string(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.large_string())
    texts = texts.cast(pa.large_string())
    # only when needed: building the fill scalar imports pandas (pyarrow 26), a second in a fresh process
    return pc.fill_null(texts, "") if texts.null_count else texts


class Normalized:
    """A normalized batch: ``data[offsets[i]:offsets[i+1]]`` is document i's normalized UTF-8 text; word
    token j spans ``data[tok_start[j]:tok_end[j]]`` and document i owns tokens ``tok_off[i]:tok_off[i+1]``."""

    def __init__(self, data, offsets, tok_start, tok_end, tok_off):
        self.data, self.offsets = data, offsets
        self.tok_start, self.tok_end, self.tok_off = tok_start, tok_end, tok_off

    def texts(self) -> pa.Array:
        return pa.LargeStringArray.from_buffers(
            len(self.offsets) - 1, pa.py_buffer(self.offsets), pa.py_buffer(self.data)
        )


def flat_text(texts: pa.Array | pa.ChunkedArray, norm: Normalization) -> tuple[np.ndarray, np.ndarray]:
    """The batch's UTF-8 bytes and int64 document offsets as the kernel reads them (NFKC applied when asked)."""
    from gristmill.dedup.hashing import string_buffers

    arr = _as_large_string(texts)
    if norm.nfkc:
        arr = pc.utf8_normalize(arr, form="NFKC")
    return string_buffers(arr)


def normalized_capacity(n: int) -> int:
    """Bytes that n bytes of text may normalize to: three per byte, as an invalid UTF-8 byte becomes U+FFFD
    (three bytes; Arrow does not validate every buffer it reads, Parquet's among them). Valid text grows by at
    most half (lowercasing lengthens a two-byte character by a byte); the buffer's pages past what is written are
    never touched."""
    return 3 * n + 16


def max_tokens(n: int) -> int:
    """Tokens n bytes of text may hold: a token takes at least one byte and two word tokens need a separator
    between them; "solo" tokens take three bytes (their scripts lie above U+0800): so at most n/2 + 1."""
    return n // 2 + 2


def normalize_batch(texts: pa.Array | pa.ChunkedArray, norm: Normalization = Normalization()) -> Normalized:
    """Normalize and tokenize a whole batch in one compiled pass (see the module docstring for the rules)."""
    data, offsets = flat_text(texts, norm)
    n = len(data)
    return _normalize(data, offsets, norm, np.empty(normalized_capacity(n), dtype=np.uint8),
                      np.empty(max_tokens(n), dtype=np.int64), np.empty(max_tokens(n), dtype=np.int64), shrink=True)


def normalize_docs(data: np.ndarray, doc_off: np.ndarray, norm: Normalization, scratch: Scratch) -> Normalized:
    """Documents ``doc_off[i]:doc_off[i+1]`` of a ``flat_text`` buffer, normalized into ``scratch``'s buffers:
    the arrays are views, valid until its next use (the MinHash path's chunks)."""
    n = int(doc_off[-1] - doc_off[0])
    return _normalize(data, doc_off, norm, scratch.array("normalized", normalized_capacity(n), np.uint8),
                      scratch.array("tok_start", max_tokens(n), np.int64),
                      scratch.array("tok_end", max_tokens(n), np.int64), shrink=False)


def _normalize(data, doc_off, norm: Normalization, out, tok_start, tok_end, shrink: bool) -> Normalized:
    from gristmill.dedup.hashing import kernels

    _, low = tables()
    out_off = np.empty(len(doc_off), dtype=np.int64)
    tok_off = np.empty(len(doc_off), dtype=np.int64)
    used, n_tok = kernels().normalize_tokenize(
        data, doc_off, kernel_classes(), low, ascii_bytes(norm), norm.lowercase, norm.punctuation, out, out_off,
        tok_start, tok_end, tok_off,
    )
    fit = _shrunk if shrink else lambda buffer, size: buffer[:size]
    return Normalized(fit(out, used), out_off, fit(tok_start, n_tok), fit(tok_end, n_tok), tok_off)


def _shrunk(buffer: np.ndarray, size: int) -> np.ndarray:
    """The first ``size`` items of a buffer this module allocated (no other reference to it), shrunk in
    place: a realloc, where a copy would touch every byte again."""
    buffer.resize(size, refcheck=False)
    return buffer
