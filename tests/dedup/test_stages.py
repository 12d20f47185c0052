"""dedup.minhash_v1 and dedup.bloom_v1 end to end over real Parquet parts: build + apply, local and Ray."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from gristmill.dedup.minhash import ShingleSpec, shingles_py
from gristmill.dedup.stages import BloomDedup, MinHashDedup, uint64_values
from gristmill.pipeline.registry import get_stage

IN_FILES = {"memory_staging_bytes": 0}  # the state passed through files, as a build too large for memory does


def test_registered_under_versioned_names():
    assert get_stage("dedup.minhash_v1") is MinHashDedup and get_stage("dedup.bloom_v1") is BloomDedup
    assert MinHashDedup.is_global and BloomDedup.is_global


def test_minhash_removes_near_duplicates_and_keeps_smallest_doc_id(tmp_path, build, near_dup_corpus):
    parts, dups = near_dup_corpus
    ctx = build.context(tmp_path, build.write_parts(tmp_path, parts))
    kept, dropped, _ = build.run_global(MinHashDedup({"threshold": 0.7}), ctx)
    assert dropped == {doc: "near_duplicate" for doc in dups}
    assert {20, 21, 22, 23, 24} <= set(kept)  # copies with a smaller doc_id than their original are kept
    assert {4030, 4031, 4032, 4033, 4034} <= set(kept)  # half-shared documents are not near duplicates

    out = os.fspath(ctx.state)
    stats = ctx.stats
    assert stats.counts["docs_in"] == 65 and stats.counts["docs_out"] == 65 - len(dups)
    assert stats.counts["clusters"] == len(dups) and stats.histograms["cluster_size"] == {2: len(dups)}
    clusters = pq.read_table(os.path.join(out, "clusters")).to_pylist()
    by_doc = {r["doc_id"]: (r["cluster_id"], r["cluster_size"]) for r in clusters}
    for dup, original in dups.items():
        root = min(dup, original)
        assert by_doc[dup] == by_doc[original] == (root, 2)


def test_minhash_params_are_validated():
    for bad in ({"threshold": 1.0}, {"num_perm": 1}, {"bands": 4}, {"bands": 20, "rows": 10}, {"nope": 1}):
        with pytest.raises(ValidationError):
            MinHashDedup(bad)
    assert MinHashDedup({"bands": 16, "rows": 8}).params.banding() == (16, 8)


def test_minhash_without_verification_and_empty_input(tmp_path, build):
    paths = build.write_parts(tmp_path, [[(1, "", None), (2, "...", None)], []])
    kept, dropped, _ = build.run_global(MinHashDedup({"verify": False}), build.context(tmp_path, paths))
    assert kept == [1, 2] and dropped == {}  # documents without shingles never cluster together


def test_bloom_document_granularity_first_occurrence_wins(tmp_path, build, near_dup_corpus):
    parts, dups = near_dup_corpus
    # an exact copy inside the same part as its original, and one with a smaller doc_id in an earlier part
    parts = [parts[0] + [(5, parts[1][3][1], None)], parts[1] + [(1100, parts[1][0][1], None)], parts[2]]
    ctx = build.context(tmp_path, build.write_parts(tmp_path, parts))
    kept, dropped, _ = build.run_global(BloomDedup(), ctx)
    exact = {d for d, o in dups.items() if d >= 3000}  # re-cased / re-punctuated copies
    assert dropped == {d: "exact_duplicate" for d in exact | {1003, 1100}}
    assert 5 in kept and 1000 in kept
    stats = ctx.stats
    assert stats.counts["docs_out"] == stats.counts["docs_in"] - len(dropped)
    assert 0 <= stats.figures["estimated_fp_rate"] < 0.01
    assert not (ctx.state / "stats.json").exists()  # statistics go through the framework only


def test_bloom_paragraphs_drop_repeats_then_thin_documents(tmp_path, build, en_sentences):
    boiler = "Cookie policy: we use cookies.\nSubscribe to our newsletter!"
    docs = [
        (1, "\n".join(en_sentences[0:6]) + "\n" + boiler, None),
        (2, "\n".join(en_sentences[6:12]) + "\n" + boiler, None),  # loses the boilerplate only
        (3, boiler + "\nThanks for reading.", None),  # mostly boilerplate: dropped
        (4, "\n".join(en_sentences[13:15]) + "\n\n", None),
    ]
    ctx = build.context(tmp_path, build.write_parts(tmp_path, [docs]))
    kept, dropped, texts = build.run_global(BloomDedup({"granularity": "paragraph"}), ctx)
    assert dropped == {3: "duplicate_paragraphs"}
    assert texts[1] == docs[0][1]
    assert texts[2] == "\n".join(en_sentences[6:12])
    assert texts[4] == docs[3][1]  # blank paragraphs are never repeats


def test_bloom_url_and_saved_filter_for_incremental_runs_and_decontamination(tmp_path, build, en_sentences):
    first = build.write_parts(tmp_path / "a", [[(i, en_sentences[i], f"https://x.org/{i}") for i in range(10)]])
    ctx = build.context(tmp_path / "a", first)
    build.run_global(BloomDedup({"capacity": 10_000}), ctx)  # room for later crawls
    saved = os.fspath(ctx.state)
    assert json.load(open(os.path.join(saved, "bloom.json")))["partitions"] == 4

    # The next crawl: two documents seen before, one repeated within the batch, two new.
    rows = [(100, en_sentences[3], None), (101, en_sentences[20], None), (102, en_sentences[20], None),
            (103, en_sentences[9].upper(), None), (104, en_sentences[21], None)]
    second = build.write_parts(tmp_path / "b", [rows])
    ctx_b = build.context(tmp_path / "b", second)
    kept, dropped, _ = build.run_global(BloomDedup({"load": saved}), ctx_b)
    assert kept == [101, 104] and set(dropped) == {100, 102, 103}
    grown = json.load(open(os.path.join(ctx_b.state, "bloom.json")))
    assert sum(f["inserted"] for f in grown["filters"]) == 12  # 10 loaded + 2 new keys, saved for the next run

    # Decontamination: read-only, drops only what the eval filter holds, keeps repeats among themselves.
    params = {"load": saved, "read_only": True, "reason": "eval_contamination"}
    kept, dropped, _ = build.run_global(BloomDedup(params), build.context(tmp_path / "b", second, step=4))
    assert kept == [101, 102, 104] and dropped == {100: "eval_contamination", 103: "eval_contamination"}

    with pytest.raises(ValueError, match="granularity"):
        BloomDedup({"load": saved, "granularity": "url"}).build(build.context(tmp_path / "b", second))
    # A filter saved with other bit positions (or partitions) than this version's is refused, naming the key.
    meta_path = os.path.join(saved, "bloom.json")
    meta = json.load(open(meta_path))
    json.dump({k: v for k, v in meta.items() if k != "layout"}, open(meta_path, "w"))
    with pytest.raises(ValueError, match="layout=None"):
        BloomDedup({"load": saved}).build(build.context(tmp_path / "b", second))
    json.dump(meta, open(meta_path, "w"))
    with pytest.raises(ValidationError):
        BloomDedup({"read_only": True})

    urls = [(200, "x", "https://x.org/1"), (201, "y", "https://x.org/1 "), (202, "z", None), (203, "w", None)]
    paths = build.write_parts(tmp_path / "c", [urls])
    kept, dropped, _ = build.run_global(BloomDedup({"granularity": "url"}), build.context(tmp_path / "c", paths))
    assert kept == [200, 202, 203] and dropped == {201: "duplicate_url"}


@pytest.mark.ray
def test_ray_gives_exactly_the_local_result(ray_cluster, tmp_path, build, en_sentences, near_dup_corpus):
    paths = build.write_parts(tmp_path, _flood_and_chain(build, en_sentences, near_dup_corpus))
    minhash = {"threshold": 0.7, "partitions": 3}
    held_and_files = []
    for n, stage in enumerate((MinHashDedup(minhash), MinHashDedup({**minhash, **IN_FILES}),
                               BloomDedup({"partitions": 2}))):
        results = {}
        for executor in ("local", "ray"):
            ctx = build.context(tmp_path / f"{n}-{executor}", paths, executor)
            kept, dropped, texts = build.run_global(stage, ctx)
            results[executor] = (kept, dropped, texts, ctx.stats)
        assert results["ray"] == results["local"], stage.name
        assert results["local"][1], stage.name  # something was removed, so the comparison means something
        held_and_files.append(results["ray"])
    # The MinHash state handed between Ray tasks as their results gives what its files give.
    assert held_and_files[0] == held_and_files[1]


def _chain(en_sentences, first_doc: int, length: int):
    """Documents D_i of sentences [4i, 4i + 40): neighbours share 36 of their 40 sentences, documents two
    apart 32. A chain of near duplicates in which D_i and D_i+2 are not near duplicates of each other."""
    return [(first_doc + i, " ".join(en_sentences[4 * i : 4 * i + 40]), None) for i in range(length)]


def _exact_jaccard(a: str, b: str) -> float:
    sa, sb = set(shingles_py(a, ShingleSpec())), set(shingles_py(b, ShingleSpec()))
    return len(sa & sb) / len(sa | sb)


@pytest.mark.parametrize("verify_with", ["shingles", "signatures"])
def test_minhash_removes_only_near_duplicates_of_kept_documents(tmp_path, build, en_sentences, verify_with):
    """In a chain of near duplicates, a document is removed only next to a kept one it nearly duplicates:
    never because it is linked through removed documents to a kept document it does not resemble."""
    chain = _chain(en_sentences, 100, 9)
    text = {doc: t for doc, t, _ in chain}
    for (d, t, _), (_, u, _) in zip(chain, chain[1:]):
        assert _exact_jaccard(t, u) > 0.78
    for (d, t, _), (_, u, _) in zip(chain, chain[2:]):
        assert _exact_jaccard(t, u) < 0.68
    ctx = build.context(tmp_path, build.write_parts(tmp_path, [chain[::2], chain[1::2]]))
    kept, dropped, _ = build.run_global(MinHashDedup({"threshold": 0.73, "num_perm": 256, "verify_with": verify_with}), ctx)
    assert kept == [100, 102, 104, 106, 108] and set(dropped) == {101, 103, 105, 107}

    out = os.fspath(ctx.state)
    rows = {r["doc_id"]: r for r in pq.read_table(os.path.join(out, "clusters")).to_pylist()}
    for doc in dropped:
        kept_doc = rows[doc]["cluster_id"]
        assert kept_doc in kept and _exact_jaccard(text[doc], text[kept_doc]) >= 0.73
        assert rows[doc]["jaccard"] >= 0.73
    stats = ctx.stats
    assert stats.counts["components"] == 1 and stats.figures["largest_component"] == 9
    assert stats.counts["clusters"] == 4 and stats.figures["largest_cluster"] == 2
    assert stats.counts["near_duplicates"] == 4
    assert stats.counts["verified_pairs"] == 8  # the chain's links; documents two apart are candidates at most


def _flood_and_chain(build, en_sentences, near_dup_corpus):
    parts, _ = near_dup_corpus
    rng = random.Random(3)
    base = " ".join(en_sentences[282:288])
    flood = [(5000 + i, build.edit_words(base, 1, rng), None) for i in range(40)]  # one bucket of 40 near copies
    chain = _chain(en_sentences, 6000, 9)
    return [parts[0] + flood[:20], parts[1] + chain[::2], parts[2] + flood[20:] + chain[1::2]]


@pytest.mark.parametrize("verify_with", ["shingles", "signatures"])
def test_minhash_result_and_statistics_do_not_depend_on_partitions(
    tmp_path, build, en_sentences, near_dup_corpus, verify_with
):
    paths = build.write_parts(tmp_path, _flood_and_chain(build, en_sentences, near_dup_corpus))
    results = {}
    for partitions in (1, 2, 4):
        ctx = build.context(tmp_path / f"p{partitions}", paths)
        params = {"threshold": 0.7, "partitions": partitions, "verify_with": verify_with}
        kept, dropped, _ = build.run_global(MinHashDedup(params), ctx)
        out = os.fspath(ctx.state)
        stats = ctx.stats
        clusters = pq.read_table(os.path.join(out, "clusters")).sort_by("doc_id")
        assert stats.figures.pop("partitions") == partitions
        results[partitions] = (kept, dropped, stats, clusters.to_pylist())
    assert results[1] == results[2] == results[4]
    kept, dropped, stats, _ = results[1]
    counts = stats.counts
    assert counts["near_duplicates"] == len(dropped) > 40
    assert counts["candidate_pairs"] >= counts["verified_pairs"] >= 40 * 39 // 2 * 0.9
    assert counts["oversized_buckets"] == counts["candidate_pairs_skipped"] == 0

    # Capped buckets: each of the 40 copies is paired with the 8 smallest only, the skipped pairs are counted,
    # and every copy is still removed as a near duplicate of the first.
    ctx = build.context(tmp_path / "capped", paths)
    capped = build.run_global(MinHashDedup({"threshold": 0.7, "partitions": 2, "max_bucket_size": 8, "verify_with": verify_with}), ctx)
    capped_counts = ctx.stats.counts
    assert capped[1] == dropped
    assert capped_counts["oversized_buckets"] > 0 and capped_counts["candidate_pairs_skipped"] > 0
    assert capped_counts["candidate_pairs"] < counts["candidate_pairs"]


def _minhash_outcome(build, ctx, params):
    kept, dropped, _ = build.run_global(MinHashDedup(params), ctx)
    clusters = pq.read_table(os.path.join(os.fspath(ctx.state), "clusters")).sort_by("doc_id").to_pylist()
    return kept, dropped, ctx.stats, clusters


def _state_files(ctx, folder: str) -> list[str]:
    from pathlib import Path

    return sorted(p.name for p in (Path(os.fspath(ctx.state)) / folder).glob("*"))


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_minhash_small_state_passes_between_tasks_in_memory_with_the_same_result(
    tmp_path, build, en_sentences, near_dup_corpus, partitions
):
    """Parts' shingle hashes and candidates' sets within ``memory_staging_bytes`` go from task to task as task
    results, no file written; larger ones through files; the outcome is the same either way, and mixed."""
    paths = build.write_parts(tmp_path, _flood_and_chain(build, en_sentences, near_dup_corpus))
    params = {"threshold": 0.7, "partitions": partitions}
    files_ctx = build.context(tmp_path / "files", paths)
    in_files = _minhash_outcome(build, files_ctx, {**params, **IN_FILES})
    sets = [f for f in _state_files(files_ctx, "shingles") if f.endswith(".docs.npy")]
    assert len(sets) == 3 and not _state_files(files_ctx, "shingle_hashes")  # removed once the sets are taken

    held_ctx = build.context(tmp_path / "held", paths)
    assert _minhash_outcome(build, held_ctx, params) == in_files
    assert not _state_files(held_ctx, "shingles") and not _state_files(held_ctx, "shingle_hashes")

    # A share per part between the parts' sizes of candidate sets: some parts' sets held, the others' in files.
    set_bytes = sorted(sum(os.path.getsize(os.path.join(os.fspath(files_ctx.state), "shingles", name.replace(
        ".docs.npy", suffix))) - 128 for suffix in (".docs.npy", ".set_off.npy", ".sets.npy")) for name in sets)
    assert set_bytes[0] < set_bytes[-1]
    mixed_ctx = build.context(tmp_path / "mixed", paths)
    assert _minhash_outcome(build, mixed_ctx, {**params, "memory_staging_bytes": 3 * set_bytes[0]}) == in_files
    assert 0 < len(_state_files(mixed_ctx, "shingles")) < 3 * len(sets)


def test_doc_ids_are_read_from_slices_and_chunks_and_nulls_are_refused():
    ids = pa.array([5, 2**63 + 1, 7, 0], pa.uint64())
    assert uint64_values(ids.slice(1, 2)).tolist() == [2**63 + 1, 7]
    assert uint64_values(pa.chunked_array([ids.slice(0, 1), ids.slice(2)])).tolist() == [5, 7, 0]
    assert uint64_values(pa.array([3, 4], pa.int64())).dtype == np.uint64
    assert len(uint64_values(pa.chunked_array([], pa.uint64()))) == 0
    with pytest.raises(ValueError, match="1 nulls"):
        uint64_values(pa.array([1, None], pa.uint64()))


STAGE_IN_A_FRESH_PROCESS = """
import sys
from gristmill.core.runtime import LocalRuntime
from gristmill.dedup.hashing import kernels
from gristmill.dedup.stages import MinHashDedup
from gristmill.stages.base import GlobalContext
ctx = GlobalContext.for_step(sys.argv[1], MinHashDedup.name, 0, sys.argv[2:], LocalRuntime(), seed=0)
removed = MinHashDedup({"threshold": 0.7}).build(ctx)
print(kernels().source, len(removed), *sorted(m for m in ("numba", "scipy", "pandas") if m in sys.modules))
"""


def test_minhash_in_a_fresh_process_loads_no_numba_scipy_or_pandas(tmp_path, build, near_dup_corpus):
    """Start-up: with the kernels built ahead of time (by this process, if not yet), a worker process signs,
    buckets, verifies and clusters without importing numba (and the scipy it loads) or pandas: ~0.6 CPU s."""
    import subprocess
    import sys
    from pathlib import Path

    from gristmill.dedup.hashing import kernels

    if kernels().source != "aot":
        pytest.skip("no module compiled ahead of time on this machine (no C compiler?): the JIT kernels serve")
    parts, dups = near_dup_corpus
    paths = [os.fspath(p) for p in build.write_parts(tmp_path, parts)]
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", STAGE_IN_A_FRESH_PROCESS, str(tmp_path / "run"), *paths],
                          env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["aot", str(len(dups))]


def test_minhash_state_keeps_the_shingle_sets_of_candidate_documents_only(tmp_path, build, near_dup_corpus):
    """The state written per input byte: exact verification keeps the sorted shingle sets of the documents in
    a candidate pair, none of the others, and no signatures."""
    from pathlib import Path

    from gristmill.dedup.minhash import shingle_sets

    parts, dups = near_dup_corpus
    ctx = build.context(tmp_path, build.write_parts(tmp_path, parts))
    build.run_global(MinHashDedup({"threshold": 0.7, **IN_FILES}), ctx)
    state = Path(os.fspath(ctx.state))
    assert not list(state.rglob("*.sig.npy"))
    files = sorted(state.glob("shingles/*.docs.npy"))
    stored = np.concatenate([np.load(f) for f in files])
    assert set(dups) | set(dups.values()) <= set(stored.tolist())
    assert len(stored) <= 2 * ctx.stats.counts["candidate_pairs"] and len(stored) < ctx.stats.counts["docs_in"]
    text = {doc: t for rows in parts for doc, t, _ in rows}
    for docs_file in files:
        docs = np.load(docs_file)
        off = np.load(str(docs_file).replace(".docs.npy", ".set_off.npy"))
        values = np.load(str(docs_file).replace(".docs.npy", ".sets.npy"))
        want_off, want_values = shingle_sets(pa.array([text[int(d)] for d in docs], pa.large_string()), ShingleSpec())
        np.testing.assert_array_equal(off, want_off)
        np.testing.assert_array_equal(values, want_values)


@pytest.mark.parametrize("verify_with", ["shingles", "signatures"])
def test_minhash_state_on_an_object_store_is_read_only_where_a_verify_task_has_candidates(
    tmp_path, build, near_dup_corpus, s3_query, s3_requests, verify_with, monkeypatch
):
    """Exact verification knows which documents each part's shingle file holds from the task that wrote it, so a
    verify task opens no doc_id file and reads the sets of only the parts holding its candidates (each part's
    doc_ids, then each of its sets, had been a round trip per verify task); the result is the local one."""
    from collections import Counter

    from gristmill.core import storage
    from gristmill.core.storage import resolve
    from gristmill.stages.base import GlobalContext
    from runtimes import runtime_for

    parts, _ = near_dup_corpus
    paths = build.write_parts(tmp_path, parts)
    params = {"threshold": 0.7, "verify_with": verify_with, **IN_FILES}
    local = build.run_global(MinHashDedup(params), build.context(tmp_path, paths))
    remote = resolve(f"s3://gristmill-run/runs/minhash-{verify_with}?{s3_query}")
    ctx = GlobalContext.for_step(remote, "dedup.step_v1", 3, paths, runtime_for("local"), seed=0)
    # What this process wrote it would read back from memory (core.storage.HELD): hold nothing, so that the
    # reads a verify task on another worker makes are the ones counted.
    monkeypatch.setattr(storage.HELD, "limit", 0)
    storage.HELD.clear()
    s3_requests.requests.clear()
    assert build.run_global(MinHashDedup(params), ctx) == local
    state = [(method, key) for method, key in s3_requests.requests if key.endswith(".npy")]
    written = {key for method, key in state if method == "PUT"}
    reads = Counter(key for method, key in state if method == "GET")
    assert reads and set(reads) <= written
    partitions = MinHashDedup(params).params.partitions
    assert max(reads.values()) <= partitions  # at most once per verify task
    if verify_with == "shingles":
        assert not [key for key in reads if key.endswith(".docs.npy")]
        assert sum(reads.values()) < len(written) * partitions


def test_minhash_candidate_sets_come_from_the_signing_pass_not_the_text(tmp_path, build, near_dup_corpus):
    """Exact verification takes the candidates' shingle sets from the hashes the signing pass kept (the text is
    not normalized again: the input part may be gone by then); only the candidates' sets are kept in the state."""
    from pathlib import Path

    from gristmill.core.storage import resolve
    from gristmill.dedup.minhash import shingle_sets
    from gristmill.dedup.stages import _shingle_candidates, _sign_part

    parts, _ = near_dup_corpus
    path = build.write_parts(tmp_path, parts)[0]
    stage = MinHashDedup({"threshold": 0.7})
    prefix = resolve(tmp_path / "state" / "shingles" / "part-000000")
    hashes = resolve(tmp_path / "state" / "shingle_hashes" / "part-000000")
    *_, shingles, stats = _sign_part(resolve(path), stage.params, stage.params.banding(), None, hashes, 1, 0, 0)
    assert shingles == stats["shingle_files"]  # written: more than the 0 bytes it may hold
    os.remove(path)
    docs = np.array(sorted(doc for doc, _, _ in parts[0])[::2], dtype=np.uint64)
    candidates = (docs[::-1], np.zeros(len(docs), np.int64))
    (files, found), held = _shingle_candidates(shingles, 0, prefix, 0, candidates)
    assert held is None
    np.testing.assert_array_equal(found, docs)
    text = {doc: t for doc, t, _ in parts[0]}
    want_off, want_values = shingle_sets(pa.array([text[int(d)] for d in docs], pa.large_string()), ShingleSpec())
    for file, want in zip(files, (docs, want_off, want_values)):
        np.testing.assert_array_equal(np.load(os.fspath(file)), want)
    assert sorted(p.name for p in Path(tmp_path / "state" / "shingles").iterdir()) == [
        "part-000000.docs.npy", "part-000000.set_off.npy", "part-000000.sets.npy"]


@pytest.mark.parametrize("array", [np.arange(10, dtype=np.uint64), np.zeros((0, 126), np.uint32),
                                   np.arange(630, dtype=np.uint32).reshape(5, 126), np.arange(7.0)[::2]])
def test_state_arrays_are_written_as_np_save_writes_them(tmp_path, array):
    """The state's arrays are streamed from their own memory: the file is byte for byte ``np.save``'s."""
    import io

    from gristmill.core.storage import BackgroundWrites, resolve
    from gristmill.dedup.stages import _load_npy, _save_npy

    with BackgroundWrites() as writes:
        saved = _save_npy(resolve(tmp_path / "a.npy"), array, writes)
    want = io.BytesIO()
    np.save(want, array)
    assert (tmp_path / "a.npy").read_bytes() == want.getvalue()
    np.testing.assert_array_equal(_load_npy(saved), array)
