"""Bloom filter: keys/s per core for test+insert of a batch (first occurrence wins) vs a Python ``set``, key
hashing of real text vs one xxhash call per string, and the measured false-positive rate vs the target.

    python benchmarks/bloom.py [--keys 2000000]
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import re
import time
from pathlib import Path


import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import xxhash  # noqa: E402

from gristmill.dedup.bloom import BloomFilter  # noqa: E402
from gristmill.dedup.hashing import hash_strings64  # noqa: E402
from gristmill.dedup.normalize import normalize_batch  # noqa: E402
from shared_data import SHARED_DATA  # noqa: E402

SHARED = SHARED_DATA


def cpu(fn, repeat=3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return out, best


def real_lines() -> list[str]:
    lines = (SHARED / "tokenizer" / "corpus.en").read_text().splitlines()
    for path in sorted((SHARED / "langid").glob("*.txt")):
        lines += path.read_text().splitlines()
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=2_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.keys
    # A stream with 10% repeats (the repeated keys come back later in the stream).
    keys = rng.integers(0, 2**64, n, dtype=np.uint64)
    repeat_at = rng.choice(np.arange(n // 10, n), n // 10, replace=False)
    keys[repeat_at] = keys[rng.integers(0, n // 10, n // 10)]
    py_keys = keys.tolist()

    def bloom_run():
        f = BloomFilter.for_capacity(n, 0.001)
        return np.concatenate([f.first_occurrences(keys[i : i + args.batch]) for i in range(0, n, args.batch)])

    def set_run():
        seen, new = set(), []
        for k in py_keys:
            if k in seen:
                new.append(False)
            else:
                seen.add(k)
                new.append(True)
        return new

    def bloom_numpy_run():
        f = BloomFilter.for_capacity(n, 0.001)
        return np.concatenate([f.first_occurrences(keys[i : i + args.batch], backend="numpy") for i in range(0, n, args.batch)])

    bloom_run()  # load the compiled kernel
    bloom_new, t_bloom = cpu(bloom_run)
    _, t_bloom_np = cpu(bloom_numpy_run)
    set_new, t_set = cpu(set_run)
    wrong = int((bloom_new != np.array(set_new)).sum())  # false positives only (a Bloom filter never misses)

    lines = pa.array(real_lines() * 4, pa.large_string())
    py_lines = lines.to_pylist()
    n_lines = len(py_lines)
    hash_strings64(lines[:10])
    _, t_hash = cpu(lambda: hash_strings64(lines))
    _, t_norm_hash = cpu(lambda: (lambda nb: hash_strings64(nb.texts()))(normalize_batch(lines)))
    _, t_xx = cpu(lambda: [xxhash.xxh3_64_intdigest(s.encode()) for s in py_lines])
    word = re.compile(r"\w+")
    _, t_xx_norm = cpu(lambda: [xxhash.xxh3_64_intdigest(" ".join(word.findall(s.lower())).encode()) for s in py_lines])

    print(f"\n{n:,} keys (10% repeats), batches of {args.batch:,}, filter sized for {n:,} keys at 0.1%; "
          f"{wrong} keys wrongly taken for repeats by the Bloom filter\n")
    print("| operation | CPU s | keys/s per core | vs baseline |")
    print("|---|---:|---:|---:|")
    print(f"| gristmill `BloomFilter.first_occurrences` (test + insert, one compiled pass per batch) | {t_bloom:.2f} | {n / t_bloom:,.0f} | {t_set / t_bloom:.1f}x |")
    print(f"| gristmill `first_occurrences(backend='numpy')` (np.unique + gather + bitwise_or.at) | {t_bloom_np:.2f} | {n / t_bloom_np:,.0f} | {t_set / t_bloom_np:.1f}x |")
    print(f"| Python `set` (test + add per key; baseline) | {t_set:.2f} | {n / t_set:,.0f} | 1.0x |")
    print(f"| gristmill `hash_strings64` of {n_lines:,} real lines (one compiled pass) | {t_hash:.3f} | {n_lines / t_hash:,.0f} | {t_xx / t_hash:.1f}x |")
    print(f"| gristmill normalize + hash of the same lines | {t_norm_hash:.3f} | {n_lines / t_norm_hash:,.0f} | {t_xx_norm / t_norm_hash:.1f}x (vs next row) |")
    print(f"| Python `re` word folding + lower + `xxh3_64` per line (baseline with normalization) | {t_xx_norm:.3f} | {n_lines / t_xx_norm:,.0f} | 1.0x |")
    print(f"| `xxhash.xxh3_64_intdigest` per line in a Python loop (baseline, no normalization) | {t_xx:.3f} | {n_lines / t_xx:,.0f} | 1.0x |")

    print("\n| target FP rate | keys inserted | bits | hashes | measured FP rate (4M fresh keys) | measured / target | estimated at final fill |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for target in (0.01, 0.001, 0.0001):
        f = BloomFilter.for_capacity(1_000_000, target)
        f.add(rng.integers(0, 2**64, 1_000_000, dtype=np.uint64))
        probe = rng.integers(0, 2**64, 4_000_000, dtype=np.uint64)
        measured = float(f.contains(probe).mean())
        print(f"| {target:g} | 1,000,000 | {f.num_bits:,} | {f.num_hashes} | {measured:.6f} | {measured / target:.2f} | {f.estimated_fp_rate():.6f} |")


if __name__ == "__main__":
    main()
