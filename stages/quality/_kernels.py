"""The compiled (numba) kernels of ``quality.heuristics_v1``, each one pass over a whole batch. Defined at module
level so numba's on-disk cache (``cache=True``, in ``gristmill.core.compile_cache.numba_cache_dir()``) serves every later process; imported only through
``gristmill.stages.quality.signals.kernels()`` (``gristmill.stages.base.require("numba", ...)``). ``gristmill.stages.quality.signals`` holds the
Arrow/numpy reference path (``backend="arrow"``) that these kernels reproduce value for value; the tests compare
the two.

* ``split_tokens``: datatrove's default words, i.e. spaCy's English tokenizer (``signals`` module docstring):
  chunks between ``str.isspace`` characters, then per chunk spaCy's special cases, prefixes, suffixes, URL test,
  infixes and special-case matcher, over code points. Character classes come from a table that
  ``signals.char_classes()`` fills (Unicode properties asked of RE2 / Arrow, spaCy's character lists), special
  cases from ``signals.special_case_tables()``. The same pass counts "#", "..." and "…" per document (Gopher's
  hash and ellipsis ratios) and gives each token its line (C4's sentences, ``sentences_per_line``).
* ``ngram_chars``: ``_top_ngram_chars`` and ``_dup_ngram_chars`` (datatrove's ``find_all_duplicate`` walk) for
  every size in one pass per document, with the same rolling 64-bit keys and the same 40-bit per-document key
  comparison, counted in an open-addressing hash table.
* ``first_occurrence``: ``_first_occurrence`` (repeated lines and paragraphs, distinct stop words) with a hash
  table instead of a sort.
"""

from __future__ import annotations

import numpy as np

from gristmill.core.compile_cache import use_numba_cache_dir

use_numba_cache_dir()  # before the decorators below: their cache in a stated, writable folder
from numba import njit  # noqa: E402

from gristmill.stages.quality.kernel_constants import (  # noqa: E402  (module globals: numba compiles them in)
    LETTER, NUMBER, CJK, SPLIT_SPACE, PUNCT, RE2_SPACE, WORD, SPACE, LOWER, UPPER, PREFIX, SUFFIX, ICON, QUOTE,
    DOT_AFTER, HYPHEN, INFIX_OP, CURRENCY, UNIT_END, SENT_END, UNI_PUNCT, LINE_BREAK, ALPHA, SYMBOL, HAS_LETTER,
    SENT_PUNCT, ALL_PUNCT, AFFIX, MAX_SPECIAL, _SEED, _KEY_MULT, _EMPTY, _APOSTROPHE, _RIGHT_QUOTE, _DOT, _HYPHEN,
    _AT)


@njit(cache=True, nogil=True, inline="always")
def _decode(data, i):
    """(code point, byte length) of the valid UTF-8 character at ``data[i]``."""
    b0 = np.int64(data[i])
    if b0 < 0x80:
        return b0, 1
    if b0 < 0xE0:
        return ((b0 & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F), 2
    if b0 < 0xF0:
        return (((b0 & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6)
                | (np.int64(data[i + 2]) & 0x3F)), 3
    return (((b0 & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12)
            | ((np.int64(data[i + 2]) & 0x3F) << 6) | (np.int64(data[i + 3]) & 0x3F)), 4


@njit(cache=True, nogil=True, inline="always")
def _is_digit(c):
    return 0x30 <= c <= 0x39  # spaCy's rules say [0-9]: ASCII digits only


@njit(cache=True, nogil=True, inline="always")
def _may_be_special(cps, s, e, sp_filter):
    """False when no special case has this length, first and last character (a 4096-slot filter)."""
    return (sp_filter[(cps[s] * 31 + cps[e - 1]) & 4095] >> (e - s)) & 1 != 0


@njit(cache=True, nogil=True)
def _special(cps, s, e, sp_hash, sp_off, sp_chars, sp_filter):
    """Index of the special case (spaCy tokenizer exception) equal to ``cps[s:e]``, or -1."""
    if e - s > MAX_SPECIAL or e <= s or not _may_be_special(cps, s, e, sp_filter):
        return -1
    h = _SEED
    for i in range(s, e):
        h = _mix(h * _KEY_MULT + np.uint64(cps[i]))
    return _special_hashed(cps, s, e, h, sp_hash, sp_off, sp_chars)


@njit(cache=True, nogil=True)
def _special_hashed(cps, s, e, h, sp_hash, sp_off, sp_chars):
    """``_special`` with the hash of ``cps[s:e]`` given."""
    lo, hi = 0, sp_hash.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if sp_hash[mid] < h:
            lo = mid + 1
        else:
            hi = mid
    while lo < sp_hash.shape[0] and sp_hash[lo] == h:
        a, b = sp_off[lo], sp_off[lo + 1]
        if b - a == e - s:
            same = True
            for k in range(b - a):
                if sp_chars[a + k] != cps[s + k]:
                    same = False
                    break
            if same:
                return lo
        lo += 1
    return -1


@njit(cache=True, nogil=True, inline="always")
def _prefix_len(cps, cl, s, e):
    """Length of spaCy's English prefix at the start of ``cps[s:e]`` (``prefix_search``: the first listed
    alternative that matches there), 0 if none."""
    c = cps[s]
    if c == 0x2B:  # \+(?![0-9])
        return 0 if s + 1 < e and _is_digit(cps[s + 1]) else 1
    if c == _DOT:  # \.\.+
        r = s
        while r < e and cps[r] == _DOT:
            r += 1
        return r - s if r - s >= 2 else 0
    if cl[s] & PREFIX:
        return 1
    if c == 0x55 and s + 2 < e and cps[s + 1] == 0x53 and cps[s + 2] == 0x24:  # US$
        return 3
    if (c == 0x43 or c == 0x41) and s + 1 < e and cps[s + 1] == 0x24:  # C$ A$
        return 2
    return 0


@njit(cache=True, nogil=True, inline="always")
def _suffix_len(cps, cl, s, e, units, unit_len):
    """Length of spaCy's English suffix at the end of ``cps[s:e]`` (``suffix_search``: the leftmost of the
    alternatives that match up to the end, i.e. the longest), 0 if none."""
    n = e - s
    c = cps[e - 1]
    best = 0
    if cl[e - 1] & SUFFIX:
        best = 1
    if c == _DOT:
        r = e
        while r > s and cps[r - 1] == _DOT:
            r -= 1
        if e - r >= 2:
            return e - r  # \.\.+ starts at the run
        if n >= 2 and cl[e - 2] & DOT_AFTER:  # (?<=[0-9{al}%²\-\+{p}(?:{q})])\.
            best = 1
        elif n >= 3 and cl[e - 2] & UPPER and cl[e - 3] & UPPER:  # (?<=[{au}][{au}])\.
            best = 1
        elif n >= 3 and cps[e - 3] == 0xB0 and (cps[e - 2] == 0x46 or cps[e - 2] == 0x66 or cps[e - 2] == 0x43
                                                 or cps[e - 2] == 0x63 or cps[e - 2] == 0x4B or cps[e - 2] == 0x6B):
            best = 1  # (?<=°[FfCcKk])\.
    if c == 0x2026 and n >= 2 and cps[e - 2] == 0x2026:  # ……
        best = 2
    if (c == 0x73 or c == 0x53) and n >= 2 and (cps[e - 2] == _APOSTROPHE or cps[e - 2] == _RIGHT_QUOTE):
        best = 2  # 's 'S ’s ’S
    if n >= 2 and _is_digit(cps[e - 2]) and (c == 0x2B or cl[e - 1] & CURRENCY):
        best = max(best, 1)  # (?<=[0-9])\+ and (?<=[0-9])(?:{c})
    if c == 0x24 and n >= 3 and (cps[e - 2] == 0x43 or cps[e - 2] == 0x41) and _is_digit(cps[e - 3]):
        best = max(best, 2)  # C$ A$ after a digit
    if c == 0x24 and n >= 4 and cps[e - 3] == 0x55 and cps[e - 2] == 0x53 and _is_digit(cps[e - 4]):
        best = max(best, 3)  # US$ after a digit
    if cl[e - 1] & UNIT_END and _digit_before_end(cps, s, e, units.shape[1] + 1):  # (?<=[0-9])(?:{u})
        for u in range(units.shape[0]):
            m = unit_len[u]
            if m <= best or n < m + 1 or not _is_digit(cps[e - m - 1]):
                continue
            same = True
            for k in range(m):
                if cps[e - m + k] != units[u, k]:
                    same = False
                    break
            if same:
                best = m
    return best


@njit(cache=True, nogil=True, inline="always")
def _digit_before_end(cps, s, e, width):
    """Whether one of the ``width`` characters before the last one of ``cps[s:e]`` is an ASCII digit."""
    for i in range(max(s, e - 1 - width), e - 1):
        if _is_digit(cps[i]):
            return True
    return False


@njit(cache=True, nogil=True)
def _url_match(cps, cl, s, e):
    """spaCy's ``URL_MATCH`` on ``cps[s:e]``, simplified: optional ``scheme://`` and ``user@``, then host labels,
    a lower-case TLD of 2-63 letters, an optional port and an optional ``/``, ``?`` or ``#`` path."""
    i = s
    r = s
    while r < e and (cl[r] & WORD or cps[r] == 0x2B or cps[r] == _HYPHEN or cps[r] == _DOT):
        r += 1
    if r - s >= 2 and r + 2 < e and cps[r] == 0x3A and cps[r + 1] == 0x2F and cps[r + 2] == 0x2F:
        i = r + 3
    for k in range(e - 1, i, -1):
        if cps[k] == _AT:
            i = k + 1
            break
    t = i
    while t < e and (cps[t] == _DOT or cps[t] == 0x5F or cps[t] == _HYPHEN or _host_char(cps[t])):
        t += 1
    if t < e:
        c = cps[t]
        if c == 0x3A:
            d = t + 1
            while d < e and _is_digit(cps[d]):
                d += 1
            if d - t - 1 < 2 or d - t - 1 > 5 or (d < e and not (cps[d] == 0x2F or cps[d] == 0x3F or cps[d] == 0x23)):
                return False
        elif not (c == 0x2F or c == 0x3F or c == 0x23):
            return False
    dot = -1
    for k in range(t - 1, i - 1, -1):
        if cps[k] == _DOT:
            dot = k
            break
    if dot <= i or t - dot - 1 < 2 or t - dot - 1 > 63:
        return False
    for k in range(dot + 1, t):
        if not (cl[k] & LOWER):
            return False
    # labels: start and end with a host character, no empty label
    prev = _DOT
    for k in range(i, dot + 1):
        c = cps[k]
        if c == _DOT and not _host_char(prev):
            return False
        if prev == _DOT and not _host_char(c):
            return False
        prev = c
    return True


@njit(cache=True, nogil=True, inline="always")
def _host_char(c):
    return (0x30 <= c <= 0x39) or (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A) or (0xA1 <= c <= 0xFFFF)


@njit(cache=True, nogil=True)
def _infix_cuts(cps, cl, s, e, cut):
    """spaCy's English infixes inside ``cps[s:e]`` (``infix_finditer``: leftmost-first, non-overlapping; a match
    at the very start is not split off)."""
    p = s
    while p < e:
        c = cps[p]
        k = cl[p]
        q = -1
        before = cl[p - 1] if p > s else np.uint32(0)
        if c == _DOT and p + 1 < e and cps[p + 1] == _DOT:  # \.\.+
            q = p + 2
            while q < e and cps[q] == _DOT:
                q += 1
        elif c == 0x2026 or k & ICON:  # … and the symbols
            q = p + 1
        elif p > s and _is_digit(cps[p - 1]) and (c == 0x2B or c == _HYPHEN or c == 0x2A or c == 0x5E) \
                and p + 1 < e and (_is_digit(cps[p + 1]) or cps[p + 1] == _HYPHEN):
            q = p + 1  # (?<=[0-9])[+\-\*^](?=[0-9-])
        elif c == _DOT and before & (LOWER | QUOTE) and p + 1 < e and cl[p + 1] & (UPPER | QUOTE):
            q = p + 1  # (?<=[{al}{q}])\.(?=[{au}{q}])
        elif c == 0x2C and before & ALPHA and p + 1 < e and cl[p + 1] & ALPHA:
            q = p + 1  # (?<=[{a}]),(?=[{a}])
        elif k & HYPHEN and p > s and (before & ALPHA or _is_digit(cps[p - 1])):
            q = _hyphen_infix_end(cps, cl, p, e)  # (?<=[{a}0-9])(?:{h})(?=[{a}])
            if q < 0 and k & INFIX_OP and p + 1 < e and cl[p + 1] & ALPHA:
                q = p + 1
        elif k & INFIX_OP and p > s and (before & ALPHA or _is_digit(cps[p - 1])) and p + 1 < e \
                and cl[p + 1] & ALPHA:
            q = p + 1  # (?<=[{a}0-9])[:<>=/](?=[{a}])
        if q < 0:
            p += 1
            continue
        if p > s:
            cut[p] = 1
            cut[q] = 1
        p = q


@njit(cache=True, nogil=True, inline="always")
def _hyphen_infix_end(cps, cl, p, e):
    """End of ``(?:-|–|—|--|---|——|~)(?=[{a}])`` at p (alternatives in order), or -1."""
    c = cps[p]
    if c == _HYPHEN:
        for m in range(1, 4):
            if p + m > e or cps[p + m - 1] != _HYPHEN:
                return -1
            if p + m < e and cl[p + m] & ALPHA:
                return p + m
        return -1
    if c == 0x2014:  # — or ——
        if p + 1 < e and cl[p + 1] & ALPHA:
            return p + 1
        if p + 2 < e and cps[p + 1] == 0x2014 and cl[p + 2] & ALPHA:
            return p + 2
        return -1
    if p + 1 < e and cl[p + 1] & ALPHA:  # – ~
        return p + 1
    return -1


@njit(cache=True, nogil=True)
def _chunk_cuts(cps, cl, s, e, cut, sp_hash, sp_off, sp_chars, sp_cut_off, sp_cuts, sp_filter, units, unit_len):
    """spaCy's ``Tokenizer._split_affixes`` + ``_attach_tokens`` on one whitespace-free chunk ``cps[s:e]``:
    strip prefixes and suffixes until a special case or nothing is left, then split the rest on its special
    case's pieces, keep it whole if it is a URL, or split it on infixes. Marks token starts in ``cut``."""
    last = -1
    while s < e and e - s != last:
        if _special(cps, s, e, sp_hash, sp_off, sp_chars, sp_filter) >= 0:
            break
        last = e - s
        pre = _prefix_len(cps, cl, s, e)
        if pre and s + pre < e and _special(cps, s + pre, e, sp_hash, sp_off, sp_chars, sp_filter) >= 0:
            cut[s + pre] = 1
            s += pre
            break
        suf = _suffix_len(cps, cl, s + pre, e, units, unit_len) if s + pre < e else 0
        if suf and e - suf > s and _special(cps, s, e - suf, sp_hash, sp_off, sp_chars, sp_filter) >= 0:
            cut[e - suf] = 1
            e -= suf
            break
        if pre and suf and pre + suf <= e - s:
            cut[s + pre] = 1
            cut[e - suf] = 1
            s += pre
            e -= suf
        elif pre:
            cut[s + pre] = 1
            s += pre
        elif suf:
            cut[e - suf] = 1
            e -= suf
        if s < e and _special(cps, s, e, sp_hash, sp_off, sp_chars, sp_filter) >= 0:
            break
    if s >= e:
        return
    sp = _special(cps, s, e, sp_hash, sp_off, sp_chars, sp_filter)
    if sp >= 0:
        for k in range(sp_cut_off[sp], sp_cut_off[sp + 1]):
            cut[s + sp_cuts[k]] = 1
    else:
        has_dot = False  # every URL has one: most chunks skip the URL test
        for i in range(s, e):
            if cps[i] == _DOT:
                has_dot = True
                break
        if not (has_dot and _url_match(cps, cl, s, e)):
            _infix_cuts(cps, cl, s, e, cut)


@njit(cache=True, nogil=True)
def _mark_cuts(cps, cl, nc, cut, cjk_split, sp_hash, sp_off, sp_chars, sp_cut_off, sp_cuts, sp_filter, units,
               unit_len, mt_hash, mt_off, mt_chars, mt_cut_off, mt_cuts, mt_filter):
    """Mark in ``cut`` every token start spaCy's English tokenizer (datatrove's default word tokenizer) puts
    inside the whitespace-separated chunks of one document; with ``cjk_split`` every CJK character is a token of
    its own and ends the chunk before it."""
    p = 0
    while p < nc:
        if cl[p] & SPACE:
            p += 1
            continue
        q = p
        # letters only, or ASCII digits only: no affix or infix rule applies, only a special case ("cannot")
        letters, digits = True, True
        while q < nc and not (cl[q] & SPACE) and not (cjk_split and cl[q] & CJK):
            if not (cl[q] & LETTER) or cl[q] & AFFIX:
                letters = False
            if not _is_digit(cps[q]):
                digits = False
            q += 1
        plain = letters or digits
        if q == p:  # a CJK character alone
            cut[p] = 1
            cut[p + 1] = 1
            p += 1
            continue
        if plain:
            sp = _special(cps, p, q, sp_hash, sp_off, sp_chars, sp_filter)
            if sp >= 0:
                for k in range(sp_cut_off[sp], sp_cut_off[sp + 1]):
                    cut[p + sp_cuts[k]] = 1
        else:
            _chunk_cuts(cps, cl, p, q, cut, sp_hash, sp_off, sp_chars, sp_cut_off, sp_cuts, sp_filter, units,
                        unit_len)
            if mt_hash.shape[0]:
                _match_in_chunk(cps, p, q, cut, mt_hash, mt_off, mt_chars, mt_cut_off, mt_cuts, mt_filter)
        cut[q] = 1
        p = q


@njit(cache=True, nogil=True)
def _match_in_chunk(cps, s, e, cut, mt_hash, mt_off, mt_chars, mt_cut_off, mt_cuts, mt_filter):
    """spaCy's special-case matcher, run after the affix rules, on one chunk: a run of tokens that spells a
    special case the affix rules split (":)" from ")" ":", "z." from "z" "." split off "z.B.") becomes that
    special case's tokens. Left to right, the longest match first."""
    p = s
    while p < e:
        if not (p == s or cut[p]):
            p += 1
            continue
        h = _SEED
        inner = False
        best, best_end = -1, -1
        q = p
        while q < e and q - p < MAX_SPECIAL:
            if q > p and cut[q]:
                inner = True
            h = _mix(h * _KEY_MULT + np.uint64(cps[q]))
            q += 1
            if inner and (q == e or cut[q]) and _may_be_special(cps, p, q, mt_filter):
                m = _special_hashed(cps, p, q, h, mt_hash, mt_off, mt_chars)
                if m >= 0:
                    best, best_end = m, q
        if best < 0:
            p += 1
            continue
        for j in range(p + 1, best_end):
            cut[j] = 0
        for k in range(mt_cut_off[best], mt_cut_off[best + 1]):
            cut[p + mt_cuts[k]] = 1
        p = best_end


@njit(cache=True, nogil=True)
def sentences_per_line(tok_flags, tok_line, doc_count, line_base, n_lines):
    """Sentences of every line as spaCy's Sentencizer counts them on the line's tokens: one, plus one per token
    that is neither punctuation nor sentence-ending and follows a sentence-ending token seen since the previous
    such token or the line's start. ``line_base``: the first line of each document."""
    out = np.ones(n_lines, np.int64)
    t = 0
    for d in range(doc_count.shape[0]):
        line = -1
        seen_end = False
        for _ in range(doc_count[d]):
            if tok_line[t] != line:
                line = tok_line[t]
                seen_end = False
            f = tok_flags[t]
            if f & SENT_PUNCT:
                seen_end = True
            elif not (f & ALL_PUNCT) and seen_end:
                out[line_base[d] + line] += 1
                seen_end = False
            t += 1
    return out


@njit(cache=True, nogil=True)
def split_tokens(data, doc_off, classes, cjk_split, sp_hash, sp_off, sp_chars, sp_cut_off, sp_cuts, sp_filter, units,
                 unit_len, mt_hash, mt_off, mt_chars, mt_cut_off, mt_cuts, mt_filter):
    """The tokens of every document: (token bytes, token byte offsets, tokens per document, characters per
    token, token flags, the line of each token in its document), and per document the counts of "#" and of
    "..." plus "…". Tokens are spaCy's (``_mark_cuts``); with ``cjk_split`` each CJK character is one."""
    n_docs = doc_off.shape[0] - 1
    max_bytes = 0
    for d in range(n_docs):
        max_bytes = max(max_bytes, doc_off[d + 1] - doc_off[d])
    cps = np.empty(max_bytes + 1, np.int64)
    cl = np.empty(max_bytes + 1, np.uint32)
    pos = np.empty(max_bytes + 1, np.int64)  # byte offset of each character in data
    cut = np.zeros(max_bytes + 1, np.uint8)
    out = np.empty(data.shape[0], np.uint8)  # tokens are disjoint substrings: never more bytes than the input
    cap = max(16, data.shape[0] // 4)
    tok_off = np.empty(cap + 1, np.int64)
    tok_chars = np.empty(cap, np.int64)
    tok_flags = np.empty(cap, np.uint8)
    tok_line = np.empty(cap, np.int64)
    line = np.empty(max_bytes + 1, np.int64)  # str.splitlines() line of each character
    doc_count = np.zeros(n_docs, np.int64)
    doc_hashes = np.zeros(n_docs, np.int64)
    doc_ellipses = np.zeros(n_docs, np.int64)
    tok_off[0] = 0
    t = 0
    o = 0
    for d in range(n_docs):
        nc = 0
        i = doc_off[d]
        end = doc_off[d + 1]
        dots = 0
        n_line = 0
        while i < end:
            cp, length = _decode(data, i)
            cps[nc] = cp
            cl[nc] = classes[cp]
            pos[nc] = i
            line[nc] = n_line
            if cl[nc] & LINE_BREAK and not (cp == 0x0A and nc > 0 and cps[nc - 1] == 0x0D):
                n_line += 1  # "\r\n" is one break
            nc += 1
            i += length
            # Gopher's counts of "#", "..." (non-overlapping, as Arrow's count_substring) and "…"
            if cp == _DOT:
                dots += 1
                continue
            doc_ellipses[d] += dots // 3
            dots = 0
            if cp == 0x23:
                doc_hashes[d] += 1
            elif cp == 0x2026:
                doc_ellipses[d] += 1
        doc_ellipses[d] += dots // 3
        pos[nc] = end
        cut[:nc + 1] = 0
        _mark_cuts(cps, cl, nc, cut, cjk_split, sp_hash, sp_off, sp_chars, sp_cut_off, sp_cuts, sp_filter, units,
                   unit_len, mt_hash, mt_off, mt_chars, mt_cut_off, mt_cuts, mt_filter)
        if t + nc > cap:  # a document has at most one token per character
            cap = max(2 * cap, t + nc)
            tok_off = _grow(tok_off, cap + 1)
            tok_chars = _grow(tok_chars, cap)
            tok_flags = _grow(tok_flags, cap)
            tok_line = _grow(tok_line, cap)
        # (growing here, not in the per-character loop below, keeps numba's array accesses tight there)
        o, t_end = _emit_tokens(data, cl, pos, nc, cut, cjk_split, out, o, tok_off, tok_chars, tok_flags,
                                tok_line, t)
        for j in range(t, t_end):
            tok_line[j] = line[tok_line[j]]
        doc_count[d] = t_end - t
        t = t_end
    return (out[:o], tok_off[:t + 1], doc_count, tok_chars[:t], tok_flags[:t], tok_line[:t], doc_hashes,
            doc_ellipses)


@njit(cache=True, nogil=True)
def _emit_tokens(data, cl, pos, nc, cut, cjk_split, out, o, tok_off, tok_chars, tok_flags, tok_start, t):
    """Append the tokens of one document (its characters' classes, byte positions and cuts); returns the new
    (byte, token) counts."""
    start = -1
    for j in range(nc + 1):
        k = cl[j] if j < nc else SPACE
        solo = cjk_split and (k & CJK) != 0
        if start >= 0 and (k & SPACE or cut[j] or solo):
            flags = SYMBOL | ALL_PUNCT
            for s in range(start, j):
                if not (cl[s] & PUNCT):
                    flags &= ~SYMBOL
                if not (cl[s] & UNI_PUNCT):
                    flags &= ~ALL_PUNCT
                if cl[s] & LETTER:
                    flags |= HAS_LETTER
            if j - start == 1 and cl[start] & SENT_END:
                flags |= SENT_PUNCT
            for b in range(pos[start], pos[j]):
                out[o] = data[b]
                o += 1
            tok_chars[t] = j - start
            tok_flags[t] = flags
            tok_start[t] = start
            t += 1
            tok_off[t] = o
            start = -1
        if j < nc and not (k & SPACE) and start < 0:
            start = j
            if solo:
                cut[j + 1] = 1  # a CJK character is a token of its own: close it at the next character
    return o, t


@njit(cache=True, nogil=True)
def _grow(a, size):
    b = np.empty(size, a.dtype)
    b[:a.shape[0]] = a
    return b


@njit(cache=True, nogil=True, inline="always")
def _mix(h):
    """splitmix64 finalizer (signals._mix)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _probe(keys, key, mask):
    """The slot of ``key`` in the open-addressing table ``keys`` (linear probing), or the empty slot it takes."""
    slot = np.int64(key & np.uint64(mask))
    while keys[slot] != key and keys[slot] != _EMPTY:
        slot = (slot + 1) & mask
    return slot


@njit(cache=True, nogil=True)
def ngram_chars(ids, doc_off, tok_chars, top_sizes, dup_sizes):
    """(top[len(top_sizes), n_docs], dup[len(dup_sizes), n_docs]): signals._top_ngram_chars and
    signals._dup_ngram_chars of every size. Keys are the reference's: ``h_k = mix(h_{k-1} * C + id)`` per
    position and n-grams compared on ``h >> 24`` (40 bits) within a document, so hash collisions merge exactly
    the n-grams the reference merges."""
    n_docs = doc_off.shape[0] - 1
    top = np.zeros((top_sizes.shape[0], n_docs))
    dup = np.zeros((dup_sizes.shape[0], n_docs))
    max_n = 0
    for n in top_sizes:
        max_n = max(max_n, n)
    for n in dup_sizes:
        max_n = max(max_n, n)
    top_slot = np.full(max_n + 1, -1, np.int64)
    dup_slot = np.full(max_n + 1, -1, np.int64)
    for i in range(top_sizes.shape[0]):
        top_slot[top_sizes[i]] = i
    for i in range(dup_sizes.shape[0]):
        dup_slot[dup_sizes[i]] = i
    max_m = 0
    for d in range(n_docs):
        max_m = max(max_m, doc_off[d + 1] - doc_off[d])
    size = 16
    while size < 2 * max_m:
        size *= 2
    keys = np.empty(size, np.uint64)
    counts = np.empty(size, np.int64)
    firsts = np.empty(size, np.int64)
    h = np.empty(max_m, np.uint64)
    cum = np.empty(max_m + 1, np.int64)
    for d in range(n_docs):
        s = doc_off[d]
        m = doc_off[d + 1] - s
        cum[0] = 0
        for i in range(m):
            h[i] = 0
            cum[i + 1] = cum[i] + tok_chars[s + i]
        for n in range(1, max_n + 1):
            cnt = m - n + 1
            if cnt <= 0:
                break
            for i in range(cnt):
                h[i] = _mix(h[i] * _KEY_MULT + ids[s + n - 1 + i])
            if top_slot[n] < 0 and dup_slot[n] < 0:
                continue
            mask = 16
            while mask < 2 * cnt:
                mask *= 2
            mask -= 1
            if top_slot[n] >= 0:
                keys[:mask + 1] = _EMPTY
                best_count, best_first = 0, 0
                for i in range(cnt):
                    key = h[i] >> np.uint64(24)
                    slot = _probe(keys, key, mask)
                    if keys[slot] == _EMPTY:
                        keys[slot] = key
                        counts[slot] = 0
                        firsts[slot] = i
                    counts[slot] += 1
                    c, f = counts[slot], firsts[slot]
                    # most frequent, then the earliest first occurrence (Counter.most_common(1))
                    if c > best_count or (c == best_count and f < best_first):
                        best_count, best_first = c, f
                top[top_slot[n], d] = best_count * (cum[best_first + n] - cum[best_first] + n - 1)
            if dup_slot[n] >= 0:
                # datatrove's find_all_duplicate: walk the n-grams; a repeated one counts and jumps n words
                # ahead, a new one is remembered (only the n-grams the walk visits are)
                keys[:mask + 1] = _EMPTY
                total = 0
                i = 0
                while i < cnt:
                    key = h[i] >> np.uint64(24)
                    slot = _probe(keys, key, mask)
                    if keys[slot] == _EMPTY:
                        keys[slot] = key
                        i += 1
                    else:
                        total += cum[i + n] - cum[i]
                        i += n
                dup[dup_slot[n], d] = total
    return top, dup


@njit(cache=True, nogil=True)
def first_occurrence(key):
    """True where ``key[i]`` (int64) occurs for the first time in array order (signals._first_occurrence)."""
    size = 16
    while size < 2 * key.shape[0]:
        size *= 2
    mask = size - 1
    table = np.empty(size, np.int64)
    used = np.zeros(size, np.bool_)
    first = np.zeros(key.shape[0], np.bool_)
    for i in range(key.shape[0]):
        k = key[i]
        slot = np.int64(_mix(np.uint64(k)) & np.uint64(mask))
        while used[slot] and table[slot] != k:
            slot = (slot + 1) & mask
        if not used[slot]:
            used[slot] = True
            table[slot] = k
            first[i] = True
    return first
