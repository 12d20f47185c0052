from __future__ import annotations

import numpy as np
import pyarrow as pa

from gristmill.dedup.hashing import hash_bytes64_py, hash_ranges64, hash_strings64, string_buffers


def test_vectorized_hash_equals_reference_and_is_collision_free_on_real_lines(en_sentences, zh_sentences):
    lines = en_sentences + zh_sentences + ["", "a", "abcdefgh", "abcdefghi", "abcdefgh\0"]
    arr = pa.array(lines, pa.large_string())
    hashes = hash_strings64(arr, seed=5)
    assert [int(h) for h in hashes] == [hash_bytes64_py(s.encode(), 5) for s in lines]
    data, offsets = string_buffers(arr)
    np.testing.assert_array_equal(hash_ranges64(data, offsets[:-1], offsets[1:], 5), hashes)
    assert len(np.unique(hashes)) == len(set(lines))
    assert (hash_strings64(arr, seed=6) != hashes).all()


def test_slices_and_nulls():
    arr = pa.array(["x", None, "hello world", "hello world"], pa.string())
    hashes = hash_strings64(arr.slice(1))
    assert int(hashes[0]) == hash_bytes64_py(b"")
    assert hashes[1] == hashes[2]


def test_long_strings_and_ranges_ending_at_the_buffer_end_equal_the_reference(en_sentences):
    # Strings past the precomputed block salts (64 blocks = 512 bytes), and every length from 0 to 17 bytes
    # ending exactly at the end of the buffer (where the kernel cannot load 8 bytes at once).
    long_text = " ".join(en_sentences[:40])
    assert len(long_text.encode()) > 8 * 64
    data = np.frombuffer(long_text.encode(), dtype=np.uint8)
    n = len(data)
    starts = np.array([0, 1, 7] + [n - k for k in range(18)], np.int64)
    ends = np.array([n, n - 3, n] + [n] * 18, np.int64)
    want = [hash_bytes64_py(data[s:e].tobytes(), 9) for s, e in zip(starts, ends)]
    assert [int(h) for h in hash_ranges64(data, starts, ends, 9)] == want
