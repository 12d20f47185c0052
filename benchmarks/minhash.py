"""MinHash signature throughput per core: gristmill (whole batch at once) vs datasketch.MinHash.update_batch.

Both sides sign the same real documents with the same shingles (word 5-grams of the normalized text),
num_perm=128, seed=1. datasketch is given its shingles ready-made (shingling is not counted against it);
gristmill is timed end to end, from raw text to signatures. Least CPU time (time.process_time) of repeated runs,
single-threaded on both sides, so the figures are per core even on a busy machine.

    python benchmarks/minhash.py [--max-docs N] [--num-perm K]
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import glob
import json
import time
from pathlib import Path


import datasketch  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import xxhash  # noqa: E402

from gristmill.dedup.minhash import ShingleSpec, reference_hashfunc, shingles_py, signatures  # noqa: E402
from shared_data import SHARED_DATA  # noqa: E402

SHARED = SHARED_DATA
STDLIB = "/root/.pyenv/versions/3.11.7/lib/python3.11"


def documents(max_docs: int) -> list[tuple[str, str]]:
    """(kind, text): web articles (hand-labelled article bodies), English web text in 40-line documents,
    sentences of 12 languages in 25-line documents, Python standard library modules."""
    docs = []
    truth = json.loads((SHARED / "html" / "ground-truth.json").read_text())
    docs += [("article", v["articleBody"]) for v in truth.values() if v.get("articleBody")]
    lines = (SHARED / "tokenizer" / "corpus.en").read_text().splitlines()
    docs += [("web-en", "\n".join(lines[i : i + 40])) for i in range(0, len(lines), 40)]
    for path in sorted(glob.glob(str(SHARED / "langid" / "*.txt"))):
        lines = Path(path).read_text().splitlines()
        docs += [("langid", "\n".join(lines[i : i + 25])) for i in range(0, len(lines), 25)]
    for path in sorted(glob.glob(f"{STDLIB}/*.py"))[:400]:
        docs.append(("code", Path(path).read_text(encoding="utf-8", errors="replace")))
    return docs[:max_docs]


def cpu(fn, repeat: int = 1):
    """(result, least CPU seconds over ``repeat`` runs)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return out, best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-docs", type=int, default=100_000)
    ap.add_argument("--num-perm", type=int, default=128)
    args = ap.parse_args()
    K = args.num_perm
    docs = [t for _, t in documents(args.max_docs)]
    texts = pa.array(docs, pa.large_string())
    mb = sum(len(t.encode()) for t in docs) / 1e6
    spec = ShingleSpec()

    signatures(texts[:4], spec, K)  # compile / load the kernels before timing
    signatures(texts[:4], spec, K, backend="numpy")
    sig, t_ours = cpu(lambda: signatures(texts, spec, K), repeat=5)
    sig_np, t_numpy = cpu(lambda: signatures(texts, spec, K, backend="numpy"), repeat=5)
    assert np.array_equal(sig, sig_np)

    shingles, t_shingle_py = cpu(lambda: [shingles_py(t, spec) for t in docs])
    n_shingles = sum(len(s) for s in shingles)

    def datasketch_default():
        for s in shingles:
            m = datasketch.MinHash(num_perm=K, seed=1)
            m.update_batch(s)

    perms = datasketch.MinHash(num_perm=K, seed=1).permutations

    def datasketch_tuned():
        for s in shingles:
            m = datasketch.MinHash(num_perm=K, seed=1, permutations=perms, scheme="affine32", hashfunc=xxhash.xxh32_intdigest)
            m.update_batch(s)

    _, t_ds = cpu(datasketch_default, repeat=3)
    _, t_ds_tuned = cpu(datasketch_tuned, repeat=3)

    # Interchangeability on a sample: datasketch with gristmill's shingle hash gives identical signatures.
    hashfunc = reference_hashfunc("word")
    sample = range(0, len(docs), max(1, len(docs) // 50))
    for i in sample:
        m = datasketch.MinHash(num_perm=K, seed=1, hashfunc=hashfunc)
        m.update_batch(shingles[i])
        assert np.array_equal(m.hashvalues, sig[i]), i

    rows = [
        ("gristmill `signatures` (compiled, text -> signatures)", t_ours),
        ("gristmill `signatures(backend='numpy')` (compiled tokens, numpy permutations + chunked `np.minimum.reduceat`)", t_numpy),
        ("datasketch `MinHash(num_perm, seed)` + `update_batch` (default sha1, shingles given)", t_ds),
        ("datasketch tuned: shared permutations + xxh32 hashfunc (shingles given)", t_ds_tuned),
    ]
    print(f"\n{len(docs)} documents, {mb:.1f} MB, {n_shingles:,} word 5-gram shingles, num_perm={K}; "
          f"signatures identical to datasketch on {len(sample)} sampled documents\n")
    print("| implementation | CPU s | MB/s per core | docs/s per core | gristmill speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name, t in rows:
        print(f"| {name} | {t:.2f} | {mb / t:.1f} | {len(docs) / t:,.0f} | {t / t_ours:.1f}x |")
    print(f"\n(Python shingling for datasketch, not counted above: {t_shingle_py:.2f} s)")


if __name__ == "__main__":
    main()
