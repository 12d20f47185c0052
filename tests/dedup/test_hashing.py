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
