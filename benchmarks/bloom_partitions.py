"""False-positive rate of the partitioned Bloom filter of dedup.bloom_v1, by partition count, side by side with the
former layout (partition = key mod P, first probe = key mod m), on the same keys.

Keys are the stage's own 64-bit hashes (``hash_strings64``) of distinct strings; N of them are inserted into P
partitions sized as the stage sizes them (capacity N / P each at the target rate), then N other distinct keys are
probed: every hit is a false positive. Also printed: the textbook (1 - e^(-kn/m))^k of the partitions and the
number of false positives the stage's statistics predict for the probes (``expected_false_positives``).

    python benchmarks/bloom_partitions.py [--keys 200000] [--fp-rate 0.01 0.001 0.0001]
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import math

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from gristmill.dedup import bloom  # noqa: E402
from gristmill.dedup.hashing import fmix64, hash_strings64  # noqa: E402
from gristmill.dedup.parallel import partition_of, split_by_partition  # noqa: E402


def former_layout_hits(members: np.ndarray, probes: np.ndarray, partitions: int, fp_rate: float) -> int:
    """The layout before: partition = key mod P and h1 = key mod m, h2 from a re-mix (numpy, the same sizing)."""
    hits = 0
    member_groups = split_by_partition(partition_of(members, partitions), partitions, members)
    probe_groups = split_by_partition(partition_of(probes, partitions), partitions, probes)
    for (keys,), (tests,) in zip(member_groups, probe_groups):
        bits, hashes = bloom.optimal_size(math.ceil(len(members) / partitions), fp_rate)
        m = np.uint64(bits)

        def positions(k):
            h1 = k % m
            h2 = fmix64(k ^ bloom.H2_SALT) % (m - np.uint64(1)) + np.uint64(1)
            return (h1[:, None] + np.arange(hashes, dtype=np.uint64)[None, :] * h2[:, None]) % m

        words = np.zeros((bits + 63) // 64, dtype=np.uint64)
        pos = positions(keys).ravel()
        np.bitwise_or.at(words, (pos >> np.uint64(6)).astype(np.int64), np.uint64(1) << (pos & np.uint64(63)))
        pos = positions(tests)
        hits += int((((words[pos >> np.uint64(6)] >> (pos & np.uint64(63))) & np.uint64(1)).all(axis=1)).sum())
    return hits


def current_layout(members: np.ndarray, probes: np.ndarray, partitions: int, fp_rate: float):
    """(hits, mean textbook rate of the partitions, false positives the filters predict for the probes)."""
    hits, theory, predicted = 0, [], 0.0
    member_part = bloom.partition_of_keys(members, partitions)
    probe_part = bloom.partition_of_keys(probes, partitions)
    for q in range(partitions):
        f = bloom.BloomFilter.for_capacity(math.ceil(len(members) / partitions), fp_rate)
        f.add(members[member_part == q])
        new = f.first_occurrences(probes[probe_part == q], read_only=True)
        hits += int((~new).sum())
        predicted += f.expected_false_positives(int(new.sum()), read_only=True)
        theory.append(float(bloom.theoretical_fp_rate(f.num_bits, f.num_hashes, f.inserted)))
    return hits, float(np.mean(theory)), predicted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--fp-rate", type=float, nargs="+", default=[0.01, 0.001, 0.0001])
    args = ap.parse_args()
    n = args.keys
    members = hash_strings64(pa.array([f"https://members.example.org/page/{i}" for i in range(n)]))
    probes = hash_strings64(pa.array([f"https://probes.example.net/item?id={i}" for i in range(n)]))
    print(f"\n{n} keys inserted, {n} other keys probed\n")
    print("| target | partitions | measured FP, former layout | measured FP, now | (1 - e^(-kn/m))^k "
          "| now / target | false positives: measured / predicted by the stats |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for fp_rate in args.fp_rate:
        for partitions in (1, 2, 4, 8, 16):
            former = former_layout_hits(members, probes, partitions, fp_rate) / n
            hits, theory, predicted = current_layout(members, probes, partitions, fp_rate)
            print(f"| {fp_rate:g} | {partitions} | {former:.5f} ({former / fp_rate:.1f}x) | {hits / n:.5f} | "
                  f"{theory:.5f} | {hits / n / fp_rate:.2f} | {hits} / {predicted:.0f} |")


if __name__ == "__main__":
    main()
