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


# Array indices are cast to unsigned (``U``) where they are computed: numba adds negative-index handling to every
# access with a signed index that LLVM cannot prove non-negative, which took a third of this pass's time.
U = np.uint64


@njit(cache=True, nogil=True)
def put_utf8(out, o, cp):
    u = U(o)
    if cp < 0x80:
        out[u] = cp
        return o + 1
    if cp < 0x800:
        out[u] = 0xC0 | (cp >> 6)
        out[u + U(1)] = 0x80 | (cp & 0x3F)
        return o + 2
    if cp < 0x10000:
        out[u] = 0xE0 | (cp >> 12)
        out[u + U(1)] = 0x80 | ((cp >> 6) & 0x3F)
        out[u + U(2)] = 0x80 | (cp & 0x3F)
        return o + 3
    out[u] = 0xF0 | (cp >> 18)
    out[u + U(1)] = 0x80 | ((cp >> 12) & 0x3F)
    out[u + U(2)] = 0x80 | ((cp >> 6) & 0x3F)
    out[u + U(3)] = 0x80 | (cp & 0x3F)
    return o + 4

LOWER_CHANGES = 0x80  # flag added to a class in the kernel's table: lowercasing changes the character
# UTF8_MIN[n] <= cp < UTF8_MIN[n + 1]: the code points whose shortest encoding has n bytes (n = 1..4)
UTF8_MIN = np.array([0, 0, 0x80, 0x800, 0x10000, 0x110000], dtype=np.int64)

@njit(cache=True, nogil=True, inline="always")
def put_char(out, o, data, src, length, cp):
    """Write code point ``cp``: its source bytes ``data[src:src+length]`` copied when ``length`` > 0, else
    encoded."""
    if length == 0:
        return put_utf8(out, o, cp)
    for q in range(length):
        out[U(o + q)] = data[U(src + q)]
    return o + length

@njit(cache=True, nogil=True)
def normalize_tokenize(data, doc_off, cls, low, ascii_out, lowercase, punct_sep, out, out_off, tok_start, tok_end,
                       tok_off):
    """``ascii_out[b]`` for an ASCII byte b: the byte it becomes inside a word (lowercased), or 0 when it
    separates words (ASCII has no dropped or solo characters). ``cls`` is ``normalize.kernel_classes()``: the
    class of each code point, plus ``LOWER_CHANGES`` where lowercasing changes it.

    A separator writes one space at once when it follows text (``after_text``), and the space written after a
    document's last word is taken back at its end: so an ASCII byte needs no branch (word boundaries are
    unpredictable; branching on them cost a mispredicted jump every few bytes)."""
    n_docs = doc_off.shape[0] - 1
    o = 0
    t = 0
    table = cls.shape[0]
    for d in range(n_docs):
        out_off[d] = o
        tok_off[d] = t
        in_word = 0  # a word token is open; it starts at cur_start
        after_text = 0  # the last character written is text, not the space after it
        cur_start = o
        i = doc_off[d]
        end = doc_off[d + 1]
        while i < end:
            b0 = np.int64(data[U(i)])
            if b0 < 0x80:
                # Every ASCII byte writes its output byte, the open token's start and end and moves o and t by
                # 0 or 1: a word byte always advances, a separator only right after text.
                mapped = np.int64(ascii_out[U(b0)])
                w = np.int64(mapped != 0)
                out[U(o)] = mapped | ((1 - w) * 32)
                cur_start = o if w > in_word else cur_start
                tok_start[U(t)] = cur_start
                tok_end[U(t)] = o
                t += in_word & (1 - w)
                o += w | after_text
                in_word = w
                after_text = w
                i += 1
                continue
            length = 1
            cp = b0
            copyable = False
            if (b0 >> 5) == 6 and i + 1 < end:
                cp = ((b0 & 0x1F) << 6) | (np.int64(data[U(i + 1)]) & 0x3F)
                length = 2
                copyable = (data[U(i + 1)] & 0xC0) == 0x80
            elif (b0 >> 4) == 14 and i + 2 < end:
                cp = (
                    ((b0 & 0x0F) << 12)
                    | ((np.int64(data[U(i + 1)]) & 0x3F) << 6)
                    | (np.int64(data[U(i + 2)]) & 0x3F)
                )
                length = 3
                copyable = ((data[U(i + 1)] & 0xC0) == 0x80) and ((data[U(i + 2)] & 0xC0) == 0x80)
            elif (b0 >> 3) == 30 and i + 3 < end:
                cp = (
                    ((b0 & 0x07) << 18)
                    | ((np.int64(data[U(i + 1)]) & 0x3F) << 12)
                    | ((np.int64(data[U(i + 2)]) & 0x3F) << 6)
                    | (np.int64(data[U(i + 3)]) & 0x3F)
                )
                length = 4
                copyable = (
                    ((data[U(i + 1)] & 0xC0) == 0x80)
                    and ((data[U(i + 2)] & 0xC0) == 0x80)
                    and ((data[U(i + 3)] & 0xC0) == 0x80)
                )
            else:
                cp = 0xFFFD  # invalid UTF-8 byte: a replacement character, one byte consumed
            i += length
            c = cls[U(cp)] if cp < table else 0
            # Copy the bytes as they are when lowercasing leaves the character alone and they are its valid,
            # shortest encoding; otherwise (lowercased, or read from invalid UTF-8) encode the code point.
            if c >= LOWER_CHANGES:
                c -= LOWER_CHANGES
                if lowercase:
                    cp = low[U(cp)]
                    copyable = False
            if not copyable or cp < UTF8_MIN[U(length)] or cp >= UTF8_MIN[U(length + 1)]:
                length = 0
            if c == 3:  # DROP
                continue
            if c == 2:  # PUNCT
                c = 1 if punct_sep else 0
            if c == 1:  # SEP
                if in_word:
                    tok_end[U(t)] = o
                    t += 1
                    in_word = 0
                if after_text:
                    out[U(o)] = 32
                    o += 1
                    after_text = 0
                continue
            if c == 4:  # SOLO: a token of its own
                if in_word:
                    tok_end[U(t)] = o
                    t += 1
                    in_word = 0
                tok_start[U(t)] = o
                o = put_char(out, o, data, i - length, length, cp)
                tok_end[U(t)] = o
                t += 1
            else:
                if not in_word:
                    tok_start[U(t)] = o
                    cur_start = o
                    in_word = 1
                o = put_char(out, o, data, i - length, length, cp)
            after_text = 1
        if in_word:
            tok_start[U(t)] = cur_start
            tok_end[U(t)] = o
            t += 1
        if o > out_off[d] and after_text == 0:
            o -= 1  # the space written after the document's last word
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

@njit(cache=True, nogil=True, inline="always")
def load8(data, p):
    """The 8 bytes at ``data[p:p+8]`` as a little-endian uint64 (fixed loads: no loop to mispredict)."""
    u = U(p)
    return (
        np.uint64(data[u])
        | (np.uint64(data[u + U(1)]) << np.uint64(8))
        | (np.uint64(data[u + U(2)]) << np.uint64(16))
        | (np.uint64(data[u + U(3)]) << np.uint64(24))
        | (np.uint64(data[u + U(4)]) << np.uint64(32))
        | (np.uint64(data[u + U(5)]) << np.uint64(40))
        | (np.uint64(data[u + U(6)]) << np.uint64(48))
        | (np.uint64(data[u + U(7)]) << np.uint64(56))
    )

ALL_BITS = np.uint64(0xFFFFFFFFFFFFFFFF)

@njit(cache=True, nogil=True, inline="always")
def block_at(data, p, rem):
    """The block at ``data[p:]`` of a range with ``rem`` >= 1 bytes left: its first min(rem, 8) bytes as a
    little-endian uint64, zero above (one load and a mask, unless the buffer ends within 8 bytes)."""
    if p + 8 <= data.shape[0]:
        return load8(data, p) & (ALL_BITS >> np.uint64(64 - 8 * min(rem, 8)))
    block = np.uint64(0)
    for q in range(min(8, rem)):
        block |= np.uint64(data[U(p + q)]) << np.uint64(8 * q)
    return block

@njit(cache=True, nogil=True, inline="always")
def hash_range(data, s, n, salts, smix):
    """The 64-bit hash of ``data[s:s+n]``; ``salts[k]`` is block k's salt, precomputed for the first blocks.
    The first block is taken outside the loop, which only ranges longer than 8 bytes enter (a sixth of word
    tokens): 17% less time than one loop over all blocks, whose exit was mispredicted after short tokens."""
    acc = np.uint64(0)
    if n > 0:
        acc = fmix(block_at(data, s, n) ^ salts[0])
        k = 1
        while 8 * k < n:
            if k < salts.shape[0]:
                salt = salts[U(k)]
            else:
                salt = fmix((np.uint64(k + 1) * np.uint64(GOLDEN64)) ^ smix)
            acc += fmix(block_at(data, s + 8 * k, n - 8 * k) ^ salt)
            k += 1
    return fmix((acc + np.uint64(n) * np.uint64(LENGTH_MULT)) ^ smix)

@njit(cache=True, nogil=True)
def hash_ranges(data, starts, ends, salts, smix, out):
    for j in range(starts.shape[0]):
        s = starts[j]
        out[j] = hash_range(data, s, ends[j] - s, salts, smix)


# --- MinHash: shingle hash, permutations, minimum (gristmill.dedup.minhash) -------------------------------------------

M32 = np.uint64(0xFFFFFFFF)

@njit(cache=True, nogil=True, inline="always")
def shingle_hash32(token_hash, first, length):
    acc = np.uint64(0)
    for i in range(length):
        acc = acc * np.uint64(SHINGLE_MULT) + token_hash[U(first + i)]
    x = acc + np.uint64(length) * np.uint64(SHINGLE_LEN_MULT)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x >> np.uint64(32)

@njit(cache=True, nogil=True)
def shingle_hash_array(token_hash, tok_off, n, sh_off, out):
    """``out[sh_off[d]:sh_off[d+1]]``: document d's shingle hashes in order (a document of fewer than n tokens
    is one shingle of all its tokens)."""
    for d in range(tok_off.shape[0] - 1):
        t0 = tok_off[d]
        count = tok_off[d + 1] - t0
        if count == 0:
            continue
        length = min(count, n)
        o = sh_off[d]
        for s in range(count - length + 1):
            out[U(o + s)] = np.uint32(shingle_hash32(token_hash, t0 + s, length))

@njit(cache=True, nogil=True, inline="always")
def fmix32(h):
    # datasketch's affine32 pre-mix: the 32-bit MurmurHash3 finalizer
    h ^= h >> np.uint32(16)
    h = np.uint32(h * np.uint32(0x85EBCA6B))
    h ^= h >> np.uint32(13)
    h = np.uint32(h * np.uint32(0xC2B2AE35))
    return h ^ (h >> np.uint32(16))

@njit(cache=True, nogil=True, inline="always")
def affine_min8(ak, bk, h0, h1, h2, h3, h4, h5, h6, h7):
    v0 = min(np.uint32(ak * h0 + bk), np.uint32(ak * h1 + bk))
    v1 = min(np.uint32(ak * h2 + bk), np.uint32(ak * h3 + bk))
    v2 = min(np.uint32(ak * h4 + bk), np.uint32(ak * h5 + bk))
    v3 = min(np.uint32(ak * h6 + bk), np.uint32(ak * h7 + bk))
    return min(min(v0, v1), min(v2, v3))

@njit(cache=True, nogil=True)
def minhash_affine32(hashes, off, a, b, out):
    """Signatures (uint32, mod 2^32 arithmetic) from the shingle hashes of each document. Eight shingles per
    pass over the signature row: the row is loaded and stored once per eight shingles and the inner loop over
    the permutations is vectorized (SIMD) by LLVM. Where fewer than eight remain, the last one is repeated,
    which leaves the minimum unchanged."""
    num_perm = a.shape[0]
    for d in range(off.shape[0] - 1):
        row = out[d]
        s = off[d]
        last = off[d + 1] - 1
        while s <= last:
            h0 = fmix32(hashes[U(s)])
            h1 = fmix32(hashes[U(min(s + 1, last))])
            h2 = fmix32(hashes[U(min(s + 2, last))])
            h3 = fmix32(hashes[U(min(s + 3, last))])
            h4 = fmix32(hashes[U(min(s + 4, last))])
            h5 = fmix32(hashes[U(min(s + 5, last))])
            h6 = fmix32(hashes[U(min(s + 6, last))])
            h7 = fmix32(hashes[U(min(s + 7, last))])
            for k in range(num_perm):
                v = affine_min8(a[k], b[k], h0, h1, h2, h3, h4, h5, h6, h7)
                if v < row[k]:
                    row[k] = v
            s += 8

@njit(cache=True, nogil=True, inline="always")
def premixed_shingle(token_hash, first, length):
    return fmix32(np.uint32(shingle_hash32(token_hash, first, length)))

@njit(cache=True, nogil=True)
def minhash_tokens_affine32(token_hash, tok_off, n, a, b, out):
    """``minhash_affine32`` of the shingles ``shingle_hash_array(token_hash, tok_off, n)`` would store, each
    hashed where it is used: the eight shingle hashes of a pass are computed side by side and no array of them
    is written and read back. (The pass over the row is ``minhash_affine32``'s, written out again: as a shared
    inlined helper both kernels measured ~25% slower.)"""
    num_perm = a.shape[0]
    for d in range(tok_off.shape[0] - 1):
        t0 = tok_off[d]
        count = tok_off[d + 1] - t0
        if count == 0:
            continue
        length = min(count, n)
        last = t0 + count - length  # the last shingle's first token
        row = out[d]
        s = t0
        while s <= last:
            h0 = premixed_shingle(token_hash, s, length)
            h1 = premixed_shingle(token_hash, min(s + 1, last), length)
            h2 = premixed_shingle(token_hash, min(s + 2, last), length)
            h3 = premixed_shingle(token_hash, min(s + 3, last), length)
            h4 = premixed_shingle(token_hash, min(s + 4, last), length)
            h5 = premixed_shingle(token_hash, min(s + 5, last), length)
            h6 = premixed_shingle(token_hash, min(s + 6, last), length)
            h7 = premixed_shingle(token_hash, min(s + 7, last), length)
            for k in range(num_perm):
                v = affine_min8(a[k], b[k], h0, h1, h2, h3, h4, h5, h6, h7)
                if v < row[k]:
                    row[k] = v
            s += 8

@njit(cache=True, nogil=True)
def minhash_legacy(hashes, off, a, b, out):
    num_perm = a.shape[0]
    prime = np.uint64((1 << 61) - 1)
    for d in range(off.shape[0] - 1):
        row = out[d]
        for s in range(off[d], off[d + 1]):
            h = np.uint64(hashes[s])
            for k in range(num_perm):
                v = ((h * a[k] + b[k]) % prime) & M32  # uint64 wraparound, as datasketch's numpy code
                if v < row[k]:
                    row[k] = v

@njit(cache=True, nogil=True)
def bucket_sort_into(values, s, m, counts, tmp):
    """``values[s:s+m]`` (uint32 hashes, uniformly spread) sorted into ``tmp[:m]``: scattered into about m
    buckets by their top bits, then one insertion sort, which moves each value only within its bucket
    (expected O(m); equal values never move). Falls back to a comparison sort past 32 moves per value, so
    hashes crowded into a few buckets cannot make it quadratic."""
    bits = 1
    while (1 << bits) < m:
        bits += 1
    shift = np.uint32(32 - bits)
    for b in range((1 << bits) + 1):
        counts[b] = 0
    for i in range(m):
        counts[U((values[U(s + i)] >> shift) + 1)] += 1
    for b in range(1 << bits):
        counts[b + 1] += counts[b]
    for i in range(m):
        v = values[U(s + i)]
        k = U(v >> shift)
        tmp[U(counts[k])] = v
        counts[k] += 1
    moves = 0
    for i in range(1, m):
        v = tmp[i]
        j = i - 1
        while j >= 0 and tmp[U(j)] > v:
            tmp[U(j + 1)] = tmp[U(j)]
            j -= 1
        tmp[U(j + 1)] = v
        moves += i - 1 - j
        if moves > 32 * m:
            tmp[:m] = np.sort(values[s : s + m])
            return

@njit(cache=True, nogil=True)
def sorted_unique_segments(values, off, set_off, out):
    """Each segment ``values[off[d]:off[d+1]]`` sorted and deduplicated into ``out[set_off[d]:set_off[d+1]]``
    (``set_off`` is written here); returns the number of values written."""
    longest = 0
    for d in range(off.shape[0] - 1):
        longest = max(longest, off[d + 1] - off[d])
    counts = np.zeros(2 * longest + 2, np.int64)
    tmp = np.empty(longest, values.dtype)
    o = 0
    set_off[0] = 0
    for d in range(off.shape[0] - 1):
        m = off[d + 1] - off[d]
        if m > 0:
            bucket_sort_into(values, off[d], m, counts, tmp)
            out[U(o)] = tmp[0]
            o += 1
            for i in range(1, m):
                x = tmp[i]
                out[U(o)] = x  # branch-free: written always, kept when it differs from the last one
                o += x != tmp[i - 1]
        set_off[d + 1] = o
    return o


@njit(cache=True, nogil=True)
def take_rows(off, values, rows, new_off, out):
    """Rows ``rows`` of the ragged array (off, values), in that order, into (new_off, out)."""
    o = 0
    new_off[0] = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(off[r], off[r + 1]):
            out[U(o)] = values[U(j)]
            o += 1
        new_off[i + 1] = o


@njit(cache=True, nogil=True)
def sorted_set_jaccard(off, values, ia, ib, out):
    for p in range(ia.shape[0]):
        i, i_end = off[ia[p]], off[ia[p] + 1]
        j, j_end = off[ib[p]], off[ib[p] + 1]
        union = (i_end - i) + (j_end - j)
        common = 0
        while i < i_end and j < j_end:  # branch-free: which side advances is unpredictable
            x = values[U(i)]
            y = values[U(j)]
            common += x == y
            i += x <= y
            j += y <= x
        union -= common
        out[p] = common / union if union > 0 else 1.0


@njit(cache=True, nogil=True)
def mark_repeated(keys, table, repeated):
    """``repeated[i]`` set where ``keys[i]`` occurs more than once: one pass with an open-addressing table
    (``table``: zeros, a power-of-two size above ``len(keys)``; a slot holds a row index + 1). The keys are
    hashes, so their low bits pick the slot."""
    mask = U(table.shape[0] - 1)
    for i in range(keys.shape[0]):
        key = keys[i]
        slot = key & mask
        while True:
            held = table[slot]
            if held == 0:
                table[slot] = i + 1
                break
            if keys[U(held - 1)] == key:
                repeated[i] = True
                repeated[U(held - 1)] = True
                break
            slot = (slot + U(1)) & mask


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
