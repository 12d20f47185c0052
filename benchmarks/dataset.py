"""Reading a run's shards for training: ShardDataset / ShardLoader side by side with Hugging Face ``datasets``.

The shards are packed as in ``benchmarks/pack.py`` (real text from ../shared/data and the Python standard library,
GPT-2 BPE, ``seq_len`` 2048, 4,096-row shards in 512-row row groups). One full epoch is read by:

* ``ShardReader`` (manifest order, numpy rows): the floor of reading the shards at all;
* ``ShardDataset`` unshuffled and shuffled (seeded shard order + a 4,096-row window), in the process;
* ``ShardLoader`` (batches of 8) with 2 DataLoader workers, shuffled;
* the peer: ``datasets.load_dataset("parquet", streaming=True)`` over the same shards,
  ``.shuffle(seed, buffer_size=4096)`` and ``.with_format("torch")``, in the process and through a DataLoader with
  2 workers (``datasets`` splits an iterable dataset's shards among workers).

Time is CPU seconds of the process and its finished children (DataLoader workers), best of ``--repeat``; also the
wall time of that pass. Run: ``python benchmarks/dataset.py [--tokens 10e6] [--repeat 3]``.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from gristmill.mixtures.dataset import ShardDataset
from gristmill.mixtures.shards import ShardReader
from pack import document_table, gpt2_tokenizer, natural_ratios, write_parts


def pack(run_dir: Path, parts: list[str], seq_len: int, ratios: dict) -> dict:
    from gristmill.core.runtime import LocalRuntime
    from gristmill.mixtures.shards import load_manifest
    from gristmill.mixtures.stages import MixturePack
    from gristmill.stages.base import GlobalContext

    params = {"ratios": ratios, "seq_len": seq_len, "rows_per_shard": 4096, "row_group_rows": 512}
    MixturePack(params).build(GlobalContext.for_step(run_dir, MixturePack.name, 6, parts, LocalRuntime(), 0))
    return load_manifest(run_dir)


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(read: Callable[[], int], repeat: int) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, rows) of the pass with the least CPU time."""
    best = None
    for _ in range(repeat):
        c0, w0 = cpu_seconds(), time.perf_counter()
        rows = read()
        found = (cpu_seconds() - c0, time.perf_counter() - w0, rows)
        best = found if best is None or found[0] < best[0] else best
    return best


def rows_of(iterable) -> int:
    n = 0
    for item in iterable:
        n += len(item["input_ids"]) if item["input_ids"].dim() == 2 else 1
    return n


def hf_stream(run_dir: Path, manifest: dict):
    from datasets import load_dataset

    files = [str(run_dir / e["path"]) for e in manifest["shards"]]
    data = load_dataset("parquet", data_files=files, split="train", streaming=True)
    return data.select_columns(["input_ids"]).shuffle(seed=0, buffer_size=4096).with_format("torch")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=float, default=10e6, help="tokens of input documents (replicated text)")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3, help="best of N passes (a shared machine is noisy)")
    args = ap.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="gristmill-dataset-"))
    try:
        tok_path = gpt2_tokenizer(work)
        _, unique = document_table(tok_path, 1)
        docs, _ = document_table(tok_path, max(1, int(args.tokens // unique)))
        run_dir = work / "run"
        parts = write_parts(run_dir, docs)
        shutil.copytree(tok_path.parent, run_dir / "tokenizer")
        manifest = pack(run_dir, parts, args.seq_len, natural_ratios(docs))

        def dataset(shuffle: bool) -> ShardDataset:
            return ShardDataset(run_dir, shuffle=shuffle, seed=0, shuffle_window=4096)

        cases = [
            ("gristmill ShardReader (manifest order, numpy rows)", lambda: sum(len(b) for b in ShardReader(run_dir).batches())),
            ("gristmill ShardDataset, unshuffled", lambda: rows_of(dataset(False))),
            ("gristmill ShardDataset, shuffled (shard order + 4,096-row window)", lambda: rows_of(dataset(True))),
            ("gristmill ShardLoader, shuffled, batch 8, 2 workers",
             lambda: rows_of(dataset(True).loader(batch_size=8, num_workers=2))),
            ("HF datasets streaming Parquet, shuffle buffer 4,096, torch format", lambda: rows_of(hf_stream(run_dir, manifest))),
            ("HF datasets streaming, same, DataLoader batch 8, 2 workers",
             lambda: rows_of(torch.utils.data.DataLoader(hf_stream(run_dir, manifest), batch_size=8, num_workers=2))),
        ]
        print(f"{manifest['rows']:,} rows x seq_len {manifest['seq_len']} = {manifest['tokens']:,} tokens in "
              f"{len(manifest['shards'])} shards; CPU s of the process and its DataLoader workers, best of {args.repeat}\n")
        print("| reader | rows | CPU s | rows per CPU-second | wall s |")
        print("|---|---:|---:|---:|---:|")
        for name, read in cases:
            cpu, wall, rows = measure(read, args.repeat)
            assert rows == manifest["rows"], f"{name}: {rows} rows, the run has {manifest['rows']}"
            print(f"| {name} | {rows:,} | {cpu:.2f} | {rows / cpu:,.0f} | {wall:.2f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
