from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from gristmill.dedup.bloom import BloomFilter, optimal_size
from gristmill.dedup.stages import BloomDedup


def keys(n, seed):
    return np.random.default_rng(seed).integers(0, 2**64, n, dtype=np.uint64)


def test_no_false_negatives_and_false_positive_rate_near_target():
    f = BloomFilter.for_capacity(20_000, 0.01)
    members = keys(20_000, 0)
    f.add(members)
    assert f.contains(members).all()
    measured = f.contains(keys(200_000, 1)).mean()
    assert 0.007 < measured < 0.013
    assert abs(f.estimated_fp_rate() - 0.01) < 0.003


def test_first_occurrence_wins_within_and_across_batches():
    f = BloomFilter.for_capacity(100, 0.001)
    batch = np.array([7, 8, 7, 9, 8, 7], dtype=np.uint64)
    assert f.first_occurrences(batch).tolist() == [True, True, False, True, False, False]
    assert f.first_occurrences(np.array([9, 10], dtype=np.uint64)).tolist() == [False, True]
    # read-only: test only, insert nothing (decontamination against a fixed filter)
    assert f.first_occurrences(np.array([11, 11], dtype=np.uint64), read_only=True).tolist() == [True, True]
    assert f.first_occurrences(np.array([11], dtype=np.uint64)).tolist() == [True]


def test_save_and_load_round_trip(tmp_path):
    f = BloomFilter.for_capacity(1000, 0.01)
    f.add(keys(500, 2))
    f.save(str(tmp_path / "f.npz"))
    g = BloomFilter.load(str(tmp_path / "f.npz"))
    assert (g.num_bits, g.num_hashes, g.inserted) == (f.num_bits, f.num_hashes, 500)
    assert g.contains(keys(500, 2)).all()
    (tmp_path / "bad.npz").write_bytes(b"not a filter")
    with pytest.raises(ValueError, match="bad.npz"):
        BloomFilter.load(str(tmp_path / "bad.npz"))


def test_optimal_size():
    bits, hashes = optimal_size(1_000_000, 0.01)
    assert 9_500_000 < bits < 9_700_000 and hashes == 7


def test_compiled_and_numpy_batches_agree_and_set_the_same_bits():
    stream = keys(5000, 3)
    stream[4000:] = stream[:1000]  # the last 1000 keys repeat the first ones
    a, b = BloomFilter.for_capacity(100_000, 0.0001), BloomFilter.for_capacity(100_000, 0.0001)
    new_a = np.concatenate([a.first_occurrences(stream[i : i + 1000]) for i in range(0, 5000, 1000)])
    new_b = np.concatenate([b.first_occurrences(stream[i : i + 1000], backend="numpy") for i in range(0, 5000, 1000)])
    np.testing.assert_array_equal(new_a, new_b)
    assert new_a.sum() == 4000 and not new_a[4000:].any()
    np.testing.assert_array_equal(a.words, b.words)
    assert a.inserted == b.inserted == 4000


@pytest.mark.parametrize("partitions", [1, 2, 4, 8, 16])
def test_partitioned_filter_meets_its_false_positive_target(tmp_path, build, partitions):
    """A filter saved by one run (N distinct URLs) and probed read-only by the next (N other distinct URLs):
    every drop of the second run is a false positive, and their share stays near the configured rate and
    near (1 - e^(-kn/m))^k of each partition, whatever the partition count."""
    n, target = 20_000, 0.01
    members = [(i, "member", f"https://members.example.org/page/{i}") for i in range(n)]
    ctx = build.context(tmp_path / "a", build.write_parts(tmp_path / "a", [members]))
    params = {"granularity": "url", "capacity": n, "fp_rate": target, "partitions": partitions}
    _, dropped_in_build, _ = build.run_global(BloomDedup(params), ctx)
    saved = os.fspath(ctx.state)
    filters = json.load(open(os.path.join(saved, "bloom.json")))["filters"]
    assert len(filters) == partitions and sum(f["inserted"] for f in filters) + len(dropped_in_build) == n

    probes = [(n + i, "probe", f"https://probes.example.net/item?id={i}") for i in range(n)]
    ctx_b = build.context(tmp_path / "b", build.write_parts(tmp_path / "b", [probes]))
    _, dropped, _ = build.run_global(BloomDedup({"granularity": "url", "load": saved, "read_only": True}), ctx_b)
    measured = len(dropped) / n
    theory = np.mean([(1 - math.exp(-f["hashes"] * f["inserted"] / f["bits"])) ** f["hashes"] for f in filters])
    assert target / 1.5 <= measured <= target * 1.5, (partitions, measured)
    assert theory / 1.5 <= measured <= theory * 1.5, (partitions, measured, theory)

    # The stage reports each filter's false-positive rate and the unique documents it expects to have removed.
    for run, removed in ((ctx, dropped_in_build), (ctx_b, dropped)):
        figures = run.stats.figures
        per_filter = [{name: figures[f"partition_{q}.{name}"] for name in ("bits", "hashes", "inserted",
                       "estimated_fp_rate", "expected_false_positives")} for q in range(len(filters))]
        own = [(1 - math.exp(-f["hashes"] * f["inserted"] / f["bits"])) ** f["hashes"] for f in per_filter]
        assert [f["estimated_fp_rate"] for f in per_filter] == pytest.approx(own, rel=0.2)
        expected = figures["expected_unique_documents_removed"]
        assert expected == pytest.approx(sum(f["expected_false_positives"] for f in per_filter))
        assert expected / 1.5 <= len(removed) <= expected * 1.5, (partitions, len(removed), expected)
