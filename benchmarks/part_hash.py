"""The hash of a segment part in ``_SUCCESS``: xxh3-128 (what gristmill records) against sha256, side by side.

Resume and ``verify`` re-hash every committed part, so the hash's cost is paid on every rerun. Measured on real
segment parts (zstd Parquet, the bytes ``pipeline.rundir.write_part`` writes) read into memory first, so only the
hashing is timed. Parts: the ``part-*.parquet`` of a run directory given with ``--run-dir``, else the standard
library's sources written as parts of about 4 MiB. Run: ``python benchmarks/part_hash.py [--run-dir RUN] [--repeat 5]``.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import glob
import hashlib
import os
import sysconfig
import time

import pyarrow as pa
import xxhash

from gristmill.pipeline.rundir import write_part


def stdlib_parts(directory: str, part_bytes: int = 4 << 20) -> list[bytes]:
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"), recursive=True))
    texts = [open(f, encoding="utf-8", errors="replace").read() for f in files]
    parts, batch, size = [], [], 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= part_bytes or text is texts[-1]:
            path = os.path.join(directory, f"part-{len(parts):04d}.parquet")
            write_part(path, pa.table({"doc_id": pa.array(range(len(batch)), pa.uint64()),
                                       "text": pa.array(batch, pa.large_string())}))
            parts.append(open(path, "rb").read())
            batch, size = [], 0
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="a run directory whose segments/*/part-*.parquet are hashed")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.run_dir:
        parts = [open(p, "rb").read() for p in sorted(glob.glob(os.path.join(args.run_dir, "segments", "*",
                                                                           "part-*.parquet")))]
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            parts = stdlib_parts(tmp)
    total = sum(len(p) for p in parts)
    print(f"{len(parts)} parts, {total / 2**20:.1f} MiB; best of {args.repeat}")
    for name, digest in (("xxh3_128", lambda b: xxhash.xxh3_128_hexdigest(b)),
                         ("sha256", lambda b: hashlib.sha256(b).hexdigest())):
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            for part in parts:
                digest(part)
            best = min(best, time.perf_counter() - start)
        print(f"{name:<10} {total / 2**20 / best:>9,.0f} MiB/s   {best * 1e3:>8.1f} ms")


if __name__ == "__main__":
    main()
