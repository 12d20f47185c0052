"""The compiled (numba) kernels of ``quality.heuristics_v1``, each one pass over a whole batch. Defined at module
level so numba's on-disk cache (``cache=True``) serves every later process; imported only through
``gristmill.stages.quality.signals.kernels()`` (``gristmill.stages.base.require("numba", ...)``). ``gristmill.stages.quality.signals`` holds the
Arrow/numpy reference path (``backend="arrow"``) that these kernels reproduce value for value; the tests compare
the two.

* ``split_tokens``: ``tokenize()`` (the ``TOKEN_SPLIT`` rewrite, the optional CJK split and Arrow's whitespace
  split) as a hand-written leftmost-first matcher over code points. Character classes come from a table that
  ``signals.char_classes()`` fills by asking RE2 / Arrow themselves, so Unicode versions cannot drift apart.
  The same pass counts "#", "..." and "…" per document (Gopher's hash and ellipsis ratios).
* ``ngram_chars``: ``_top_ngram_chars`` and ``_dup_ngram_chars`` for every size in one walk per document, with
  the same rolling 64-bit keys and the same 40-bit per-document key comparison, counted in an open-addressing
  hash table instead of a sort per size.
* ``first_occurrence``: ``_first_occurrence`` (repeated lines and paragraphs, distinct stop words) with a hash
  table instead of a sort.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Bits of the character-class table (signals.char_classes()).
LETTER = 1  # RE2 \pL
NUMBER = 2  # RE2 \pN
CJK = 4  # RE2 [\p{Han}\p{Hiragana}\p{Katakana}]
SPLIT_SPACE = 8  # a separator of Arrow's utf8_split_whitespace
PUNCT = 16  # PUNCTUATION_SET (the PUNCT_CLASS of TOKEN_SPLIT / PUNCT_TOKEN)
RE2_SPACE = 32  # RE2 \s
WORD = 64  # RE2 \w

# Flags of a token.
SYMBOL = 1  # every character in PUNCT (PUNCT_TOKEN)
HAS_LETTER = 2  # some character in \pL

_APOSTROPHE, _RIGHT_QUOTE = 0x27, 0x2019
_DOT, _HYPHEN, _AT = 0x2E, 0x2D, 0x40
_KEY_MULT = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)


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


@njit(cache=True, nogil=True)
def _url_end(cps, cl, nc, p):
    """End of ``(?:https?://|www\\.)\\S*[^\\s.,;:!?)\\]"'”’]`` at p, or -1: the greedy ``\\S*`` gives back
    characters until the last one outside the closing set."""
    c = cps[p]
    if c == 0x68:  # h
        if p + 4 > nc or cps[p + 1] != 0x74 or cps[p + 2] != 0x74 or cps[p + 3] != 0x70:
            return -1
        r = p + 4
        if r < nc and cps[r] == 0x73:  # s
            r += 1
        if r + 3 > nc or cps[r] != 0x3A or cps[r + 1] != 0x2F or cps[r + 2] != 0x2F:
            return -1
        r += 3
    else:  # w
        if p + 4 > nc or cps[p + 1] != 0x77 or cps[p + 2] != 0x77 or cps[p + 3] != _DOT:
            return -1
        r = p + 4
    last = -1
    while r < nc and not (cl[r] & RE2_SPACE):
        c = cps[r]
        if not (c == _DOT or c == 0x2C or c == 0x3B or c == 0x3A or c == 0x21 or c == 0x3F or c == 0x29
                or c == 0x5D or c == 0x22 or c == _APOSTROPHE or c == 0x201D or c == _RIGHT_QUOTE):
            last = r
        r += 1
    return last + 1 if last >= 0 else -1


@njit(cache=True, nogil=True)
def _email_end(cps, cl, nc, p):
    """(end of the ``[\\w.]`` run at p, end of ``[\\w.]+@[\\w.]*\\w`` at p or -1): the same for every p of
    the run, so the caller computes it once per run (no quadratic rescans of long runs)."""
    r = p
    while r < nc and (cl[r] & WORD or cps[r] == _DOT):
        r += 1
    if r >= nc or cps[r] != _AT:
        return r, -1
    s = r + 1
    last = -1
    while s < nc and (cl[s] & WORD or cps[s] == _DOT):
        if cl[s] & WORD:
            last = s
        s += 1
    return r, (last + 1 if last >= 0 else -1)


@njit(cache=True, nogil=True)
def _dotted_end(cps, cl, nc, p, cls_bits, sep_any):
    """(end of the run of ``cls_bits`` characters at p, end of ``X+(?:SEP X+)+`` at p or -1) with X the
    class and SEP '.' (``sep_any`` False) or one of ``.,/:``; the same for every p of the run."""
    r = p
    while r < nc and cl[r] & cls_bits:
        r += 1
    run_end = r
    last = -1
    while r + 1 < nc:
        c = cps[r]
        is_sep = c == _DOT or (sep_any and (c == 0x2C or c == 0x2F or c == 0x3A))
        if not is_sep or not (cl[r + 1] & cls_bits):
            break
        r += 1
        while r < nc and cl[r] & cls_bits:
            r += 1
        last = r
    return run_end, last


@njit(cache=True, nogil=True)
def _abbreviation_end(cps, cl, nc, p, abbrevs, abbrev_len):
    """End of ``\\b(?:Mr|Mrs|...)\\.`` at p, or -1 (at most one listed word can be followed by '.')."""
    if p > 0 and cl[p - 1] & WORD:
        return -1
    for w in range(abbrevs.shape[0]):
        n = abbrev_len[w]
        if p + n >= nc or cps[p + n] != _DOT:
            continue
        same = True
        for k in range(n):
            if cps[p + k] != abbrevs[w, k]:
                same = False
                break
        if same:
            return p + n + 1
    return -1


@njit(cache=True, nogil=True)
def _mark_cuts(cps, cl, nc, cut, abbrevs, abbrev_len, abbrev_first):
    """Mark in ``cut`` every place where the TOKEN_SPLIT rewrite inserts a space (before char j: cut[j] = 1),
    scanning leftmost-first as RE2's GlobalReplace does: at each position the first alternative that matches
    wins, the scan resumes after the match."""
    email_run, email_q = -1, -1
    alnum_run, alnum_q = -1, -1
    num_run, num_q = -1, -1
    p = 0
    while p < nc:
        k = cl[p]
        if not (k & (LETTER | NUMBER | WORD | PUNCT)):  # no alternative starts here ('.', '-', '@' are PUNCT)
            p += 1
            continue
        c = cps[p]
        q = -1
        # (\pL)(['’]\pL+): the space goes between the letter and the apostrophe, and after the match.
        if k & LETTER and p + 2 < nc and (cps[p + 1] == _APOSTROPHE or cps[p + 1] == _RIGHT_QUOTE) \
                and cl[p + 2] & LETTER:
            q = p + 3
            while q < nc and cl[q] & LETTER:
                q += 1
            cut[p + 1] = 1
            cut[q] = 1
            p = q
            continue
        # group 3, in its order: URL, e-mail, @handle, U.S., Mr., 3.5 / example.com, 1,000 / 12:30
        if (c == 0x68 and p + 1 < nc and cps[p + 1] == 0x74) or (c == 0x77 and p + 1 < nc and cps[p + 1] == 0x77):
            q = _url_end(cps, cl, nc, p)
        if q < 0 and (k & WORD or c == _DOT):
            if p >= email_run:
                email_run, email_q = _email_end(cps, cl, nc, p)
            q = email_q
        if q < 0 and c == _AT:
            r = p + 1
            while r < nc and cl[r] & WORD:
                r += 1
            if r > p + 1:
                q = r
        if q < 0 and k & LETTER:
            r = p
            reps = 0
            while r + 1 < nc and cl[r] & LETTER and cps[r + 1] == _DOT:
                r += 2
                reps += 1
            if reps >= 2:
                q = r
        if q < 0 and c < 128 and abbrev_first[c] and (p == 0 or not (cl[p - 1] & WORD)):
            q = _abbreviation_end(cps, cl, nc, p, abbrevs, abbrev_len)
        if q < 0 and k & (LETTER | NUMBER):
            if p >= alnum_run:
                alnum_run, alnum_q = _dotted_end(cps, cl, nc, p, LETTER | NUMBER, False)
            q = alnum_q
        if q < 0 and k & NUMBER:
            if p >= num_run:
                num_run, num_q = _dotted_end(cps, cl, nc, p, NUMBER, True)
            q = num_q
        # group 4: runs of '.' or '-', any other punctuation character alone
        if q < 0:
            if c == _DOT or c == _HYPHEN:
                q = p + 1
                while q < nc and cps[q] == c:
                    q += 1
            elif k & PUNCT:
                q = p + 1
        if q < 0:
            p += 1
            continue
        cut[p] = 1
        cut[q] = 1
        p = q


@njit(cache=True, nogil=True)
def split_tokens(data, doc_off, classes, cjk_split, abbrevs, abbrev_len, abbrev_first):
    """The tokens of every document: (token bytes, token byte offsets, tokens per document, characters per
    token, token flags), and per document the counts of "#" and of "..." plus "…". A token is a maximal run of characters with no separator (Arrow whitespace) and no
    inserted space (TOKEN_SPLIT cuts; around each CJK character when ``cjk_split``)."""
    n_docs = doc_off.shape[0] - 1
    max_bytes = 0
    for d in range(n_docs):
        max_bytes = max(max_bytes, doc_off[d + 1] - doc_off[d])
    cps = np.empty(max_bytes + 1, np.int64)
    cl = np.empty(max_bytes + 1, np.uint8)
    pos = np.empty(max_bytes + 1, np.int64)  # byte offset of each character in data
    cut = np.zeros(max_bytes + 1, np.uint8)
    out = np.empty(data.shape[0], np.uint8)  # tokens are disjoint substrings: never more bytes than the input
    cap = max(16, data.shape[0] // 4)
    tok_off = np.empty(cap + 1, np.int64)
    tok_chars = np.empty(cap, np.int64)
    tok_flags = np.empty(cap, np.uint8)
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
        while i < end:
            cp, length = _decode(data, i)
            cps[nc] = cp
            cl[nc] = classes[cp]
            pos[nc] = i
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
        _mark_cuts(cps, cl, nc, cut, abbrevs, abbrev_len, abbrev_first)
        if t + nc > cap:  # a document has at most one token per character
            cap = max(2 * cap, t + nc)
            tok_off = _grow(tok_off, cap + 1)
            tok_chars = _grow(tok_chars, cap)
            tok_flags = _grow(tok_flags, cap)
        # (growing here, not in the per-character loop below, keeps numba's array accesses tight there)
        o, t_end = _emit_tokens(data, cl, pos, nc, cut, cjk_split, out, o, tok_off, tok_chars, tok_flags, t)
        doc_count[d] = t_end - t
        t = t_end
    return out[:o], tok_off[:t + 1], doc_count, tok_chars[:t], tok_flags[:t], doc_hashes, doc_ellipses


@njit(cache=True, nogil=True)
def _emit_tokens(data, cl, pos, nc, cut, cjk_split, out, o, tok_off, tok_chars, tok_flags, t):
    """Append the tokens of one document (its characters' classes, byte positions and cuts); returns the new
    (byte, token) counts."""
    start = -1
    for j in range(nc + 1):
        k = cl[j] if j < nc else SPLIT_SPACE
        solo = cjk_split and (k & CJK) != 0
        if start >= 0 and (k & SPLIT_SPACE or cut[j] or solo):
            flags = SYMBOL
            for s in range(start, j):
                if not (cl[s] & PUNCT):
                    flags &= ~SYMBOL
                if cl[s] & LETTER:
                    flags |= HAS_LETTER
            for b in range(pos[start], pos[j]):
                out[o] = data[b]
                o += 1
            tok_chars[t] = j - start
            tok_flags[t] = flags
            t += 1
            tok_off[t] = o
            start = -1
        if j < nc and not (k & SPLIT_SPACE) and start < 0:
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
                keys[:mask + 1] = _EMPTY
                total = 0
                last_repeat, run_start = -2, 0
                for i in range(cnt):
                    key = h[i] >> np.uint64(24)
                    slot = _probe(keys, key, mask)
                    if keys[slot] == _EMPTY:
                        keys[slot] = key
                        continue
                    # a repeat: runs of consecutive repeats are counted every n words from their start
                    if i != last_repeat + 1:
                        run_start = i
                    last_repeat = i
                    if (i - run_start) % n == 0:
                        total += cum[i + n] - cum[i]
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
