"""MinHash signatures equal datasketch's for the same shingles and seed, on real English and Chinese text."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import datasketch
import numpy as np
import pyarrow as pa
import pytest

from gristmill.dedup import minhash
from gristmill.dedup.minhash import (
    ShingleSpec, concat_ragged, csr_take, estimated_jaccard, exact_jaccard, reference_hashfunc, shingle_hashes,
    shingle_sets, shingled_chunks, shingles_py, signatures, signatures_and_shingles, signatures_from_hashes,
    sorted_sets,
)
from gristmill.dedup.scratch import KEEP_BYTES, SCRATCH, Scratch
from gristmill.dedup.normalize import Normalization

EDGE_CASES = ["", "   ", "...!!!", "one", "two words", "ẞtraße İstanbul ǅx\u200bY Ⱥ café", "混合 text 中文字符 and ｆｕｌｌ"]


@pytest.fixture(scope="module")
def docs(en_sentences, zh_sentences):
    # Real sentences alone and grouped into paragraphs (documents of 1 to 8 sentences), plus edge cases.
    grouped = [" ".join(en_sentences[i : i + 8]) for i in range(0, 120, 8)]
    return en_sentences[:60] + zh_sentences[:30] + grouped + EDGE_CASES


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize("unit,ngram", [("word", 5), ("word", 3), ("char", 5)])
def test_signatures_equal_datasketch(docs, scheme, unit, ngram):
    spec = ShingleSpec(ngram=ngram, unit=unit)
    sig = signatures(pa.array(docs, pa.large_string()), spec, num_perm=64, seed=42, scheme=scheme)
    hashfunc = reference_hashfunc(unit)
    for i, text in enumerate(docs):
        ref = datasketch.MinHash(num_perm=64, seed=42, hashfunc=hashfunc, scheme=scheme)
        ref.update_batch(shingles_py(text, spec))
        assert sig[i].dtype == ref.hashvalues.dtype
        np.testing.assert_array_equal(sig[i], ref.hashvalues, err_msg=f"document {i}: {text[:60]!r}")


def test_numpy_backend_equals_compiled(docs):
    texts = pa.array(docs, pa.large_string())
    for scheme in ("affine32", "legacy"):
        np.testing.assert_array_equal(
            signatures(texts, num_perm=32, seed=3, scheme=scheme, backend="numpy"),
            signatures(texts, num_perm=32, seed=3, scheme=scheme),
        )


def test_seed_changes_signatures_and_empty_document_keeps_empty_value(docs):
    texts = pa.array(docs, pa.large_string())
    a, b = signatures(texts, num_perm=16, seed=1), signatures(texts, num_perm=16, seed=2)
    assert (a != b).any(axis=1)[:60].all()
    empty = docs.index("")
    assert (a[empty] == np.uint32(2**32 - 1)).all()
    assert (a[docs.index("...!!!")] == np.uint32(2**32 - 1)).all()  # only punctuation: no shingles


def test_normalization_makes_case_and_punctuation_not_count(en_sentences):
    text = " ".join(en_sentences[:5])
    variant = text.upper().replace(",", " ;  ").replace(".", "!")
    sig = signatures(pa.array([text, variant], pa.large_string()), num_perm=64)
    assert estimated_jaccard(sig[:1], sig[1:])[0] == 1.0
    strict = ShingleSpec(normalization=Normalization(lowercase=False, punctuation=False))
    sig = signatures(pa.array([text, variant], pa.large_string()), strict, num_perm=64)
    assert estimated_jaccard(sig[:1], sig[1:])[0] < 0.2


def test_cjk_text_is_shingled_by_character(zh_sentences):
    shingles = shingles_py(zh_sentences[0], ShingleSpec(ngram=3))
    assert all(len(s.decode().split(" ")) == 3 for s in shingles)
    assert len(shingles) > 10  # a sentence without spaces still yields one shingle per character position


def test_estimated_jaccard_tracks_true_jaccard(en_sentences):
    base = " ".join(en_sentences[:20]).split(" ")
    half = base[: len(base) // 2] + " ".join(en_sentences[40:50]).split(" ")
    texts = pa.array([" ".join(base), " ".join(half)], pa.large_string())
    spec = ShingleSpec()
    a, b = (set(shingles_py(t, spec)) for t in texts.to_pylist())
    true = len(a & b) / len(a | b)
    sig = signatures(texts, spec, num_perm=256)
    assert abs(estimated_jaccard(sig[:1], sig[1:])[0] - true) < 0.08


def test_exact_jaccard_of_shingle_sets_equals_python_sets(en_sentences):
    texts = [" ".join(en_sentences[i : i + 8]) for i in range(0, 40, 3)] + ["", "one two"]
    spec = ShingleSpec()
    off, values = shingle_sets(pa.array(texts, pa.large_string()), spec)
    hashfunc = reference_hashfunc()
    sets = [{hashfunc(s) for s in shingles_py(t, spec)} for t in texts]
    assert [set(values[off[i] : off[i + 1]].tolist()) for i in range(len(texts))] == sets
    ia, ib = np.meshgrid(np.arange(len(texts)), np.arange(len(texts)))
    got = exact_jaccard(off, values, ia.ravel(), ib.ravel())
    want = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) if sets[i] | sets[j] else 1.0
            for i, j in zip(ia.ravel(), ib.ravel())]
    np.testing.assert_allclose(got, want)
    # rows of a ragged array, taken in any order
    rows = np.array([3, 0, 3, len(texts) - 2])
    t_off, t_values = csr_take(off, values, rows)
    assert [set(t_values[t_off[k] : t_off[k + 1]].tolist()) for k in range(len(rows))] == [sets[r] for r in rows]


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_every_document_length_gives_datasketch_signatures(en_sentences, scheme):
    # 1 to 21 shingles per document: every remainder of the compiled kernel's eight-shingle passes.
    words = " ".join(en_sentences[:5]).split(" ")
    texts = [" ".join(words[i : i + n]) for i, n in enumerate(range(1, 26))]
    spec = ShingleSpec()
    sig = signatures(pa.array(texts, pa.large_string()), spec, num_perm=48, seed=7, scheme=scheme)
    for i, text in enumerate(texts):
        ref = datasketch.MinHash(num_perm=48, seed=7, hashfunc=reference_hashfunc(), scheme=scheme)
        ref.update_batch(shingles_py(text, spec))
        np.testing.assert_array_equal(sig[i], ref.hashvalues, err_msg=f"{len(text.split())} words")


def test_compiled_shingle_hashes_equal_numpy_and_one_shingling_serves_signatures_and_sets(docs):
    texts = pa.array(docs, pa.large_string())
    for spec in (ShingleSpec(), ShingleSpec(ngram=3, unit="char")):
        hashes, off = shingle_hashes(texts, spec)
        np_hashes, np_off = shingle_hashes(texts, spec, backend="numpy")
        np.testing.assert_array_equal(off, np_off)
        np.testing.assert_array_equal(hashes, np_hashes)
        np.testing.assert_array_equal(signatures_from_hashes(hashes, off, 32, 5), signatures(texts, spec, 32, 5))
        set_off, values = sorted_sets(off, hashes)
        ref_off, ref_values = shingle_sets(texts, spec)
        np.testing.assert_array_equal(set_off, ref_off)
        np.testing.assert_array_equal(values, ref_values)


def test_sorted_sets_sort_and_deduplicate_every_row():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 40, 200)
    off = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=off[1:])
    values = rng.integers(0, 30, off[-1]).astype(np.uint32)  # small range: many repeats within a row
    set_off, sets = sorted_sets(off, values)
    for i in range(len(lengths)):
        assert sets[set_off[i] : set_off[i + 1]].tolist() == sorted(set(values[off[i] : off[i + 1]].tolist()))


def test_sorted_sets_of_hashes_crowded_into_few_buckets():
    # Distinct values sharing their top bits (the kernel's buckets), in reverse order: the worst case of its
    # insertion sort, which then falls back to a comparison sort.
    crowded = np.arange(5000, 0, -1, dtype=np.uint32)
    values = np.concatenate([crowded, np.array([7, 7, 7, 3], np.uint32)])
    off = np.array([0, len(crowded), len(values)], np.int64)
    set_off, sets = sorted_sets(off, values)
    assert set_off.tolist() == [0, 5000, 5002]
    assert sets[:5000].tolist() == list(range(1, 5001)) and sets[5000:].tolist() == [3, 7]


def test_jit_kernels_give_what_the_ahead_of_time_build_gives(docs, monkeypatch):
    """The JIT kernels serve where no module compiled ahead of time can be built: same values, bit for bit."""
    from gristmill.dedup.hashing import kernels

    texts = pa.array(docs, pa.large_string())

    def outputs():
        hashes, off = shingle_hashes(texts, ShingleSpec())
        set_off, values = sorted_sets(off, hashes)
        pairs = np.arange(len(docs) - 1)
        return [signatures(texts, num_perm=32, scheme="affine32"), signatures(texts, num_perm=32, scheme="legacy"),
                hashes, set_off, values, exact_jaccard(set_off, values, pairs, pairs + 1)]

    default = outputs()
    monkeypatch.setenv("GRISTMILL_AOT", "0")
    kernels.cache_clear()
    try:
        assert kernels().source == "jit"
        for got, want in zip(outputs(), default):
            np.testing.assert_array_equal(got, want)
    finally:
        kernels.cache_clear()


def test_a_batch_is_shingled_a_chunk_at_a_time_with_the_values_of_one_pass(docs, monkeypatch):
    """The compiled path normalizes and hashes a chunk of documents at a time in reused buffers; chunks of any
    size (one document each, documents longer than a chunk, the whole batch) give the same shingles, sets and
    signatures as the numpy path over the whole batch."""
    texts = pa.array(docs * 2, pa.large_string())
    for spec in (ShingleSpec(), ShingleSpec(ngram=3, unit="char")):
        want_hashes, want_off = shingle_hashes(texts, spec, backend="numpy")
        want_sig = {scheme: signatures(texts, spec, 32, 5, scheme, backend="numpy")
                    for scheme in ("affine32", "legacy")}
        for chunk_bytes in (1, 37, 1000, 1 << 30):
            chunks = [(d0, d1, hashes.copy(), off.copy())  # views of the scratch buffers: copied before the next
                      for d0, d1, hashes, off in shingled_chunks(texts, spec, chunk_bytes=chunk_bytes)]
            assert [c[0] for c in chunks] == [0] + [c[1] for c in chunks[:-1]] and chunks[-1][1] == len(texts)
            off, hashes = concat_ragged([(off, hashes) for _, _, hashes, off in chunks])
            np.testing.assert_array_equal(off, want_off)
            np.testing.assert_array_equal(hashes, want_hashes)
            monkeypatch.setattr(minhash, "CHUNK_BYTES", chunk_bytes)
            for scheme, want in want_sig.items():
                np.testing.assert_array_equal(signatures(texts, spec, 32, 5, scheme), want)
            for got, want in zip(shingle_sets(texts, spec), sorted_sets(want_off, want_hashes)):
                np.testing.assert_array_equal(got, want)


def test_scratch_buffers_are_reused_from_batch_to_batch_and_kept_per_thread(docs):
    texts = pa.array(docs, pa.large_string())
    want = signatures(texts, num_perm=32)
    addresses = {name: buffer.ctypes.data for name, buffer in SCRATCH.buffers.items()}
    assert {"normalized", "tok_start", "tok_end", "token_hash"} <= set(addresses)
    np.testing.assert_array_equal(signatures(texts, num_perm=32), want)
    shingle_sets(texts, ShingleSpec())
    assert {name: SCRATCH.buffers[name].ctypes.data for name in addresses} == addresses  # nothing reallocated
    with ThreadPoolExecutor(4) as pool:  # threads at once: each has its own buffers
        for sig in pool.map(lambda _: signatures(texts, num_perm=32), range(16)):
            np.testing.assert_array_equal(sig, want)


def test_scratch_grows_and_does_not_keep_buffers_above_its_limit():
    scratch = Scratch()
    small = scratch.array("x", 10, np.int64)
    assert scratch.array("x", 8, np.int64).ctypes.data == small.ctypes.data  # reused
    grown = scratch.array("x", 11, np.int64)
    assert len(grown) == 11 and len(scratch.buffers["x"]) == 20  # doubled: growing batches reallocate rarely
    assert scratch.array("x", 5, np.uint32).dtype == np.uint32
    huge = scratch.array("y", KEEP_BYTES + 1, np.uint8)
    assert len(huge) == KEEP_BYTES + 1 and "y" not in scratch.buffers


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_signatures_and_shingles_of_one_pass_equal_each_on_its_own(docs, scheme, monkeypatch):
    """Exact verification takes the candidates' shingles from the signing pass: the same signatures and shingle
    hashes as ``signatures`` and ``shingle_hashes``, whatever the chunks, and nothing for no documents."""
    texts = pa.array(docs * 2, pa.large_string())
    for spec in (ShingleSpec(), ShingleSpec(ngram=3, unit="char")):
        want_hashes, want_off = shingle_hashes(texts, spec, backend="numpy")
        want_sig = signatures(texts, spec, 32, 5, scheme, backend="numpy")
        for chunk_bytes in (37, 1000, 1 << 30):
            monkeypatch.setattr(minhash, "CHUNK_BYTES", chunk_bytes)
            sig, off, hashes = signatures_and_shingles(texts, spec, 32, 5, scheme)
            np.testing.assert_array_equal(sig, want_sig)
            np.testing.assert_array_equal(off, want_off)
            np.testing.assert_array_equal(hashes, want_hashes)
    sig, off, hashes = signatures_and_shingles(pa.array([], pa.large_string()), ShingleSpec(), 32, 5, scheme)
    assert sig.shape == (0, 32) and off.tolist() == [0] and len(hashes) == 0
