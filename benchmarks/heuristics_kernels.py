"""quality.heuristics_v1: the compiled path (``backend="numba"``, stages/quality/_kernels.py) against the RE2/Arrow
reference path (``backend="arrow"``) on a benchmark corpus, side by side in one process.

The texts are what ingest reads from a corpus built by benchmarks/corpus.py (WARC pages through the resiliparse
extractor, JSONL text fields, .py/.tex/.txt files; before clean), cut into batches of ``--batch`` rows as the
pipeline hands them over. Per backend: CPU seconds of this thread over all batches (best of ``--repeat`` rounds,
the two backends alternating batch by batch so machine load hits both alike), MB of text per CPU-second, and
whether every q_* column of every batch is identical. First-call cost (importing numba, building the character
table, loading or compiling the kernels) is measured in fresh processes: with numba's cache as it is, and with
an empty cache (a cold compile).

    python benchmarks/heuristics_kernels.py [--corpus benchmarks/data/corpus-50] [--batch 2048] [--repeat 3]
"""

from __future__ import annotations

import _bootstrap  # first: sys.path puts the repository before benchmarks/

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from gristmill.stages.quality import signals

BACKENDS = ("arrow", "numba")
FIRST_CALL = ("import time, pyarrow as pa; from gristmill.stages.quality import signals; t = time.perf_counter(); "
              "signals.compute(pa.array(['A first call.'], pa.large_string())); print(time.perf_counter() - t)")


def corpus_texts(corpus: Path) -> list[str]:
    """Every document of the corpus as ingest reads it (sources and globs of benchmarks/configs/llama.yaml)."""
    from gristmill.stages.ingest.base import Limits, Unit
    from gristmill.stages.ingest.warc import WarcOptions, WarcReader

    texts = []
    reader = WarcReader(WarcOptions(extractor="resiliparse"), Limits())
    for path in sorted(glob.glob(f"{corpus}/common_crawl/**/*.warc.gz", recursive=True)):
        for table in reader.read(Unit(0, (path,))):
            texts += [t for t in table.column("text").to_pylist() if t]
    for source in ("wikipedia", "stackexchange"):
        for path in sorted(glob.glob(f"{corpus}/{source}/**/*.jsonl", recursive=True)):
            with open(path, encoding="utf-8") as lines:
                texts += [json.loads(line)["text"] for line in lines if line.strip()]
    for source, ext in (("github", "py"), ("arxiv", "tex"), ("books", "txt")):
        for path in sorted(glob.glob(f"{corpus}/{source}/**/*.{ext}", recursive=True)):
            texts.append(Path(path).read_text(encoding="utf-8", errors="replace"))
    return texts


def timed_rounds(batches: list[pa.Array], repeat: int) -> tuple[dict[str, float], bool]:
    """(best CPU seconds per backend over all batches, whether all outputs were identical)."""
    best = {b: float("inf") for b in BACKENDS}
    identical = True
    for _ in range(repeat):
        cpu = dict.fromkeys(BACKENDS, 0.0)
        for batch in batches:
            out = {}
            for backend in BACKENDS:
                start = time.thread_time()
                out[backend] = signals.compute(batch, backend=backend)
                cpu[backend] += time.thread_time() - start
            identical &= all(out["numba"][name].equals(column) for name, column in out["arrow"].items())
        best = {b: min(best[b], cpu[b]) for b in BACKENDS}
    return best, identical


def first_call_seconds(cache_dir: str | None) -> float:
    """Seconds of the first compute() call in a fresh process (numba cache as is, or an empty one)."""
    env = dict(os.environ, PYTHONPATH=str(_bootstrap.ROOT))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=_bootstrap.ROOT / "benchmarks" / "data" / "corpus-50")
    parser.add_argument("--batch", type=int, default=2048, help="rows per batch (the pipeline's batch_rows)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    texts = corpus_texts(args.corpus)
    text = pa.array(texts, pa.large_string())
    megabytes = pc.sum(pc.binary_length(text)).as_py() / 1e6
    batches = [text.slice(i, args.batch) for i in range(0, len(text), args.batch)]
    signals.compute(batches[0].slice(0, 2))  # numba import and kernel load outside the timing
    cpu, identical = timed_rounds(batches, args.repeat)
    warm = first_call_seconds(None)
    with tempfile.TemporaryDirectory() as empty:
        cold = first_call_seconds(empty)

    print(f"{args.corpus.name}: {len(texts)} documents, {megabytes:.1f} MB of text, {len(batches)} batches of "
          f"<= {args.batch} rows; 1 thread, best of {args.repeat}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (CPU seconds barely depend on it)\n")
    print("| quality.heuristics_v1 backend | CPU s | MB per CPU-s | speed-up | q_* columns identical |")
    print("|---|---:|---:|---:|---|")
    for backend in BACKENDS:
        print(f"| `{backend}` | {cpu[backend]:.2f} | {megabytes / cpu[backend]:.2f} | "
              f"{cpu['arrow'] / cpu[backend]:.2f}x | {'yes' if identical else 'NO'} |")
    print(f"\nFirst compute() call in a fresh process: {warm:.2f} s with numba's cache, {cold:.2f} s compiling "
          "the kernels (empty cache).")


if __name__ == "__main__":
    main()
