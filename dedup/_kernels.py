"""The compiled (numba) kernels of dedup, each one pass over a whole batch. Defined at module level so
numba's on-disk cache (``cache=True``, in ``gristmill.core.compile_cache.numba_cache_dir()``) serves every later process; imported only through
``gristmill.stages.base.require("numba", "dedup")`` by the modules that use them (``normalize``, ``hashing``,
``minhash``, ``bloom``), whose docstrings define what each kernel computes and hold the pure-Python or numpy
references the tests compare against."""

from __future__ import annotations

import numpy as np

from gristmill.core.compile_cache import use_numba_cache_dir

use_numba_cache_dir()  # before the decorators below: their cache in a stated, writable folder
from numba import njit  # noqa: E402

from gristmill.dedup.hash_constants import FMIX_C1 as _C1
from gristmill.dedup.hash_constants import FMIX_C2 as _C2
from gristmill.dedup.hash_constants import GOLDEN64, H1_SALT, H2_SALT, LENGTH_MULT, SHINGLE_LEN_MULT, SHINGLE_MULT

# --- normalization and tokenization (gristmill.dedup.normalize) ------------------------------------------------------


@njit(cache=True, nogil=True)
def put_utf8(out, o, cp):
    if cp < 0x80:
        out[o] = cp
        return o + 1
    if cp < 0x800:
        out[o] = 0xC0 | (cp >> 6)
        out[o + 1] = 0x80 | (cp & 0x3F)
        return o + 2
    if cp < 0x10000:
        out[o] = 0xE0 | (cp >> 12)
        out[o + 1] = 0x80 | ((cp >> 6) & 0x3F)
        out[o + 2] = 0x80 | (cp & 0x3F)
        return o + 3
    out[o] = 0xF0 | (cp >> 18)
    out[o + 1] = 0x80 | ((cp >> 12) & 0x3F)
    out[o + 2] = 0x80 | ((cp >> 6) & 0x3F)
    out[o + 3] = 0x80 | (cp & 0x3F)
    return o + 4

@njit(cache=True, nogil=True)
def normalize_tokenize(data, doc_off, cls, low, lowercase, punct_sep, out, out_off, tok_start, tok_end, tok_off):
    n_docs = doc_off.shape[0] - 1
    o = 0
    t = 0
    table = cls.shape[0]
    for d in range(n_docs):
        out_off[d] = o
        tok_off[d] = t
        doc_begin = o
        in_word = False
        pending_space = False
        i = doc_off[d]
        end = doc_off[d + 1]
        while i < end:
            b0 = np.int64(data[i])
            length = 1
            cp = b0
            if b0 >= 0x80:
                if (b0 >> 5) == 6 and i + 1 < end:
                    cp = ((b0 & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F)
                    length = 2
                elif (b0 >> 4) == 14 and i + 2 < end:
                    cp = (
                        ((b0 & 0x0F) << 12)
                        | ((np.int64(data[i + 1]) & 0x3F) << 6)
                        | (np.int64(data[i + 2]) & 0x3F)
                    )
                    length = 3
                elif (b0 >> 3) == 30 and i + 3 < end:
                    cp = (
                        ((b0 & 0x07) << 18)
                        | ((np.int64(data[i + 1]) & 0x3F) << 12)
                        | ((np.int64(data[i + 2]) & 0x3F) << 6)
                        | (np.int64(data[i + 3]) & 0x3F)
                    )
                    length = 4
                else:
                    cp = 0xFFFD  # invalid UTF-8 byte: a replacement character, one byte consumed
            i += length
            c = cls[cp] if cp < table else 0
            if c == 3:  # DROP
                continue
            if c == 2:  # PUNCT
                c = 1 if punct_sep else 0
            if c == 1:  # SEP
                if in_word:
                    tok_end[t] = o
                    t += 1
                    in_word = False
                if o > doc_begin:
                    pending_space = True
                continue
            if pending_space:
                out[o] = 32
                o += 1
                pending_space = False
            if lowercase and cp < table:
                cp = low[cp]
            if c == 4:  # SOLO: a token of its own
                if in_word:
                    tok_end[t] = o
                    t += 1
                    in_word = False
                tok_start[t] = o
                o = put_utf8(out, o, cp)
                tok_end[t] = o
                t += 1
            else:
                if not in_word:
                    tok_start[t] = o
                    in_word = True
                o = put_utf8(out, o, cp)
        if in_word:
            tok_end[t] = o
            t += 1
    out_off[n_docs] = o
    tok_off[n_docs] = t
    return o, t


# --- block hash of byte ranges (gristmill.dedup.hashing) -------------------------------------------------------------


@njit(cache=True, nogil=True)
def fmix(x):
    x ^= x >> np.uint64(33)
    x *= np.uint64(_C1)
    x ^= x >> np.uint64(33)
    x *= np.uint64(_C2)
    x ^= x >> np.uint64(33)
    return x

@njit(cache=True, nogil=True)
def hash_ranges(data, starts, ends, smix, out):
    for j in range(starts.shape[0]):
        s = starts[j]
        n = ends[j] - s
        acc = np.uint64(0)
        k = 0
        while 8 * k < n:
            block = np.uint64(0)
            stop = min(8, n - 8 * k)
            for q in range(stop):
                block |= np.uint64(data[s + 8 * k + q]) << np.uint64(8 * q)
            salt = fmix((np.uint64(k + 1) * np.uint64(GOLDEN64)) ^ smix)
            acc += fmix(block ^ salt)
            k += 1
        out[j] = fmix((acc + np.uint64(n) * np.uint64(LENGTH_MULT)) ^ smix)


# --- MinHash: shingle hash, permutations, minimum (gristmill.dedup.minhash) -------------------------------------------

M32 = np.uint64(0xFFFFFFFF)

@njit(cache=True, nogil=True, inline="always")
def shingle_hash32(token_hash, first, length):
    acc = np.uint64(0)
    for i in range(length):
        acc = acc * np.uint64(SHINGLE_MULT) + token_hash[first + i]
    x = acc + np.uint64(length) * np.uint64(SHINGLE_LEN_MULT)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x >> np.uint64(32)

@njit(cache=True, nogil=True)
def minhash_affine32(token_hash, tok_off, n, a, b, out):
    num_perm = a.shape[0]
    for d in range(tok_off.shape[0] - 1):
        t0 = tok_off[d]
        count = tok_off[d + 1] - t0
        if count == 0:
            continue
        length = min(count, n)
        row = out[d]
        for s in range(count - length + 1):
            h = shingle_hash32(token_hash, t0 + s, length)
            # datasketch's affine32 pre-mix: the 32-bit MurmurHash3 finalizer
            h ^= h >> np.uint64(16)
            h = (h * np.uint64(0x85EBCA6B)) & M32
            h ^= h >> np.uint64(13)
            h = (h * np.uint64(0xC2B2AE35)) & M32
            h ^= h >> np.uint64(16)
            for k in range(num_perm):
                v = np.uint32((a[k] * h + b[k]) & M32)
                if v < row[k]:
                    row[k] = v

@njit(cache=True, nogil=True)
def minhash_legacy(token_hash, tok_off, n, a, b, out):
    num_perm = a.shape[0]
    prime = np.uint64((1 << 61) - 1)
    for d in range(tok_off.shape[0] - 1):
        t0 = tok_off[d]
        count = tok_off[d + 1] - t0
        if count == 0:
            continue
        length = min(count, n)
        row = out[d]
        for s in range(count - length + 1):
            h = shingle_hash32(token_hash, t0 + s, length)
            for k in range(num_perm):
                v = ((h * a[k] + b[k]) % prime) & M32  # uint64 wraparound, as datasketch's numpy code
                if v < row[k]:
                    row[k] = v


@njit(cache=True, nogil=True)
def sorted_set_jaccard(off, values, ia, ib, out):
    for p in range(ia.shape[0]):
        i, i_end = off[ia[p]], off[ia[p] + 1]
        j, j_end = off[ib[p]], off[ib[p] + 1]
        union = (i_end - i) + (j_end - j)
        common = 0
        while i < i_end and j < j_end:
            if values[i] == values[j]:
                common += 1
                i += 1
                j += 1
            elif values[i] < values[j]:
                i += 1
            else:
                j += 1
        union -= common
        out[p] = common / union if union > 0 else 1.0


# --- Bloom filter test-and-insert (gristmill.dedup.bloom) ---------------------------------------------------------------


@njit(cache=True, nogil=True)
def bloom_test_and_insert(words, keys, m, k, read_only, new):
    """In key order: a key is new unless all its bits are set; a new key's bits are set at once (unless
    read-only), so a later equal key in the same batch is a repeat."""
    one = np.uint64(1)
    for j in range(keys.shape[0]):
        key = keys[j]
        h1 = fmix(key ^ H1_SALT) % m
        h2 = fmix(key ^ H2_SALT) % (m - one) + one
        pos = h1
        present = True
        for i in range(k):
            if (words[pos >> np.uint64(6)] >> (pos & np.uint64(63))) & one == 0:
                present = False
                break
            pos += h2
            if pos >= m:
                pos -= m
        new[j] = not present
        if not present and not read_only:
            pos = h1
            for i in range(k):
                words[pos >> np.uint64(6)] |= one << (pos & np.uint64(63))
                pos += h2
                if pos >= m:
                    pos -= m


# --- MinHash-LSH removal rule (gristmill.dedup.components.keep_first) --------------------------------------------


@njit(cache=True, nogil=True)
def keep_first_pass(a, b, removed, via):
    """Edges (a < b, dense indices in doc_id order) sorted by (b, a): b is removed through its first edge to
    an a that is kept; a's fate is final by then, since every edge into a has a smaller b and came earlier.
    ``via[b]`` is the index of that edge."""
    for e in range(a.shape[0]):
        x = a[e]
        y = b[e]
        if via[y] < 0 and not removed[x]:
            removed[y] = True
            via[y] = e
