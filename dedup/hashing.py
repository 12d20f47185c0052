"""Vectorized 64-bit hashing of many byte strings at once, plus the pure-Python reference of the same hash.

Every string of an Arrow string array is cut into 8-byte little-endian blocks (the last one zero-padded);
each block is salted with its position, passed through the MurmurHash3 64-bit finalizer (a bijection), the
mixed blocks of one string are summed modulo 2^64 and the sum is finalized together with the byte length.
All of it is numpy over the flat data buffer and the offsets: one gather per block, no per-string loop.
Unlike a plain polynomial hash over Z/2^64, the non-linear mix of every block keeps structured inputs (the
Thue-Morse strings) from colliding; for natural text it behaves like a random 64-bit function.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core.compile_cache import CheckedKernels, load_kernels
from gristmill.dedup.hash_constants import FMIX_C1 as _C1
from gristmill.dedup.hash_constants import FMIX_C2 as _C2
from gristmill.dedup.hash_constants import GOLDEN64, LENGTH_MULT
from gristmill.stages.base import require

MASK64 = (1 << 64) - 1

_U33 = np.uint64(33)
_UC1 = np.uint64(_C1)
_UC2 = np.uint64(_C2)


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer, element-wise on a uint64 array (multiplication wraps mod 2^64)."""
    x = x ^ (x >> _U33)
    x *= _UC1
    x ^= x >> _U33
    x *= _UC2
    x ^= x >> _U33
    return x


def fmix64_int(x: int) -> int:
    """The same finalizer on a Python int (reference implementation)."""
    x &= MASK64
    x ^= x >> 33
    x = (x * _C1) & MASK64
    x ^= x >> 33
    x = (x * _C2) & MASK64
    return x ^ (x >> 33)


def _seed_mix(seed: int) -> int:
    return fmix64_int((seed * GOLDEN64 + 1) & MASK64)


def _block_salt(block_index: np.ndarray, seed: int) -> np.ndarray:
    k = block_index.astype(np.uint64) + np.uint64(1)
    return fmix64(k * np.uint64(GOLDEN64) ^ np.uint64(_seed_mix(seed)))


def hash_bytes64_py(data: bytes, seed: int = 0) -> int:
    """Reference (pure Python) of :func:`hash_segments64` for one byte string."""
    acc = 0
    smix = _seed_mix(seed)
    for k in range(0, (len(data) + 7) // 8):
        block = int.from_bytes(data[8 * k : 8 * k + 8].ljust(8, b"\0"), "little")
        salt = fmix64_int((((k + 1) * GOLDEN64) & MASK64) ^ smix)
        acc = (acc + fmix64_int(block ^ salt)) & MASK64
    return fmix64_int((acc + len(data) * LENGTH_MULT) ^ smix)


def hash_segments64(data: np.ndarray, offsets: np.ndarray, seed: int = 0) -> np.ndarray:
    """Hash ``data[offsets[i]:offsets[i+1]]`` for every i; ``data`` is uint8, ``offsets`` int64 (n+1)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    nblocks = (lengths + 7) // 8
    total = int(nblocks.sum())
    smix = np.uint64(_seed_mix(seed))
    acc = np.zeros(n, dtype=np.uint64)
    if total:
        block_first = np.cumsum(nblocks) - nblocks  # index of each string's first block
        owner = np.repeat(np.arange(n), nblocks)
        k = np.arange(total, dtype=np.int64) - block_first[owner]
        pos = offsets[owner] + 8 * k
        padded = np.zeros(len(data) + 8, dtype=np.uint8)
        padded[: len(data)] = data
        # An unaligned uint64 view starting at every byte: one gather reads a whole block.
        words = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
        blocks = words[pos]
        valid = np.minimum(lengths[owner] - 8 * k, 8).astype(np.uint64)
        keep = np.where(valid >= 8, np.uint64(MASK64), (np.uint64(1) << (valid * np.uint64(8))) - np.uint64(1))
        mixed = fmix64((blocks & keep) ^ _block_salt(k, seed))
        nonempty = nblocks > 0
        acc[nonempty] = np.add.reduceat(mixed, block_first[nonempty])
    return fmix64((acc + lengths.astype(np.uint64) * np.uint64(LENGTH_MULT)) ^ smix)


def string_buffers(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """The flat UTF-8 bytes and int64 offsets (rebased to 0) of a string array; nulls read as empty."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], pa.large_string())
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    arr = arr.cast(pa.large_string())
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    if data_buf is None or len(arr) == 0:
        return np.zeros(0, dtype=np.uint8), np.zeros(len(arr) + 1, dtype=np.int64)
    data = np.frombuffer(data_buf, dtype=np.uint8)[offsets[0] : offsets[-1]]
    return data, offsets - offsets[0]


def hash_strings64(arr: pa.Array | pa.ChunkedArray, seed: int = 0) -> np.ndarray:
    """64-bit hash of every string of an Arrow string array (nulls hash like the empty string); the
    compiled kernel, equal to :func:`hash_segments64` (the numpy formulation) and :func:`hash_bytes64_py`."""
    data, offsets = string_buffers(arr)
    return hash_ranges64(data, offsets[:-1], offsets[1:], seed)


# The kernels of ``gristmill.dedup._kernels`` called by dedup, with the types they are called with (the notation
# of ``gristmill.core.compile_cache.KernelSignature``): what their ahead-of-time build is compiled for.
KERNEL_SIGNATURES = {
    "normalize_tokenize": "u1[] i8[] u1[] i4[] u1[] b1 b1 u1[] i8[] i8[] i8[] i8[] -> (i8,i8)",
    "hash_ranges": "u1[] i8[] i8[] u8[] u8 u8[]",
    "shingle_hash_array": "u8[] i8[] i8 i8[] u4[]",
    "minhash_affine32": "u4[] i8[] u4[] u4[] u4[,]",
    "minhash_tokens_affine32": "u8[] i8[] i8 u4[] u4[] u4[,]",
    "minhash_legacy": "u4[] i8[] u8[] u8[] u8[,]",
    "sorted_unique_segments": "u4[] i8[] i8[] u4[] -> i8",
    "take_rows": "i8[] u4[] i8[] i8[] u4[]",
    "sorted_set_jaccard": "i8[] u4[] i8[] i8[] f8[]",
    "bloom_test_and_insert": "u8[] u8[] u8 i8 b1 b1[]",
    "keep_first_pass": "i8[] i8[] b1[] i8[]",
    "mark_repeated": "u8[] i8[] b1[]",
}
KERNEL_SOURCES = ("gristmill.dedup._kernels", "gristmill.dedup.hash_constants")


@functools.lru_cache(maxsize=1)
def kernels() -> CheckedKernels:
    """The compiled kernels (needs numba: the ``dedup`` extra): their ahead-of-time build once there is one,
    which loads without importing numba, else numba's JIT (``gristmill.core.compile_cache.load_kernels``)."""
    if importlib.util.find_spec("numba") is None:
        require("numba", "dedup")  # raises, with the install hint
    return load_kernels("gristmill.dedup._kernels", KERNEL_SIGNATURES, KERNEL_SOURCES)


SALTED_BLOCKS = 64  # block salts precomputed per seed: strings up to 512 bytes need no salt computation


@functools.lru_cache(maxsize=16)
def block_salts(seed: int = 0) -> np.ndarray:
    """The salts of the first ``SALTED_BLOCKS`` blocks for ``seed`` (the compiled kernels' lookup table)."""
    salts = _block_salt(np.arange(SALTED_BLOCKS), seed)
    salts.flags.writeable = False
    return salts


def seed_mix(seed: int) -> np.uint64:
    return np.uint64(_seed_mix(seed))


def hash_ranges64(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, seed: int = 0,
                  out: np.ndarray | None = None) -> np.ndarray:
    """:func:`hash_segments64` for arbitrary (possibly non-contiguous) byte ranges, compiled (numba); into
    ``out`` (uint64, one per range) when given."""
    out = np.empty(len(starts), dtype=np.uint64) if out is None else out
    if len(starts):
        kernels().hash_ranges(data, np.asarray(starts, np.int64), np.asarray(ends, np.int64), block_salts(seed),
                              seed_mix(seed), out)
    return out
