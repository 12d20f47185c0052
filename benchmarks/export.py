"""Export throughput, side by side with each format's own writer, on the same packed rows.

The rows: real text (../shared/data, as benchmarks/pack.py gathers it) tokenized with the GPT-2 BPE and packed
by ``mixture.pack_v1`` into zstd shards. Then, timed as CPU seconds of this process (best of N):

* ``megatron``: gristmill's writer vs megatron-core's ``IndexedDatasetBuilder`` fed the same rows the way
  Megatron's ``tools/preprocess_data.py`` feeds it (``add_document`` per row with its pieces' lengths, then
  ``finalize``); the two ``.bin`` and ``.idx`` files are compared byte for byte;
* ``mds``: gristmill's writer vs mosaicml-streaming's ``MDSWriter`` (``write`` per row); the samples both give
  through ``LocalDataset`` are compared;
* ``jsonl`` and ``hf-tokenizer``: gristmill only.

Run: ``python benchmarks/export.py [--tokens 10e6] [--seq-len 2048] [--repeat 3]``.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from gristmill.core.runtime import LocalRuntime
from gristmill.mixtures.export.exporter import export_run
from gristmill.mixtures.export.rows import PackedRun, document_pieces, piece_lengths, shard_batches, token_matrix
from gristmill.mixtures.stages import MixturePack
from gristmill.stages.base import GlobalContext
from pack import document_table, gpt2_tokenizer, natural_ratios, write_parts


def streaming_base():
    """mosaicml-streaming's ``streaming.base`` without the package ``__init__`` (it imports torchvision)."""
    if "streaming" not in sys.modules:
        package = types.ModuleType("streaming")
        package.__path__ = list(importlib.util.find_spec("streaming").submodule_search_locations)
        sys.modules["streaming"] = package
    import streaming.base

    return streaming.base


def packed_run(work: Path, tokens: float, seq_len: int) -> tuple[Path, dict]:
    tok_path = gpt2_tokenizer(work)
    _, unique = document_table(tok_path, 1)
    docs, _ = document_table(tok_path, max(1, int(tokens // unique)))
    run_dir = work / "run"
    parts = write_parts(run_dir, docs)
    shutil.copytree(tok_path.parent, run_dir / "tokenizer")
    params = {"ratios": natural_ratios(docs), "seq_len": seq_len, "rows_per_shard": 4096, "row_group_rows": 512}
    MixturePack(params).build(GlobalContext.for_step(run_dir, MixturePack.name, 6, parts, LocalRuntime(), 0))
    return run_dir, PackedRun.open(run_dir).manifest


def megatron_peer(run_dir: Path, prefix: Path) -> None:
    import torch
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

    run = PackedRun.open(run_dir)
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=DType.optimal_dtype(run.tokenizer["vocab_size"]))
    for _, batch in shard_batches(run, ["input_ids", "doc_offsets"]):
        ids = token_matrix(batch, run.seq_len)
        starts, counts = document_pieces(batch, run.seq_len)
        lengths = piece_lengths(starts, ids.size)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for r in range(len(ids)):
            builder.add_document(torch.from_numpy(ids[r]), lengths[bounds[r]:bounds[r + 1]].tolist())
    builder.finalize(f"{prefix}.idx")


def mds_peer(run_dir: Path, out: Path) -> None:
    from gristmill.mixtures.export.mds import columns

    run = PackedRun.open(run_dir)
    with streaming_base().MDSWriter(columns=columns(run.seq_len), out=str(out), size_limit=1 << 26) as writer:
        for _, batch in shard_batches(run):
            ids = token_matrix(batch, run.seq_len)
            for r, row in enumerate(batch.to_pylist()):
                writer.write({"input_ids": ids[r], "source": row["source"],
                              "doc_ids": np.array(row["doc_ids"], np.uint64),
                              "doc_offsets": np.array(row["doc_offsets"], np.int32)})


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return min(times)


def same_mds_samples(a: Path, b: Path) -> bool:
    base = streaming_base()
    da, db = base.LocalDataset(str(a)), base.LocalDataset(str(b))
    if len(da) != len(db):
        return False
    return all(all(np.array_equal(np.asarray(da[i][k]), np.asarray(db[i][k])) for k in da[i]) for i in range(len(da)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=float, default=10e6, help="tokens of input documents (replicated text)")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings (a shared machine is noisy)")
    args = ap.parse_args()
    import torch  # noqa: F401  (imports out of the timings)
    from megatron.core.datasets import indexed_dataset  # noqa: F401

    streaming_base()
    work = Path(tempfile.mkdtemp(prefix="gristmill-export-"))
    try:
        run_dir, manifest = packed_run(work, args.tokens, args.seq_len)
        tokens = manifest["tokens"]
        print(f"{tokens:,} tokens in {manifest['rows']:,} rows of {args.seq_len} ({len(manifest['shards'])} shards); "
              f"CPU seconds of the process, best of {args.repeat}\n")
        print("| export | writer | CPU s | M tokens per CPU-second | ratio to the format's own writer |")
        print("|---|---|---:|---:|---:|")
        rows = {}
        for fmt in ("megatron", "mds", "jsonl", "hf-tokenizer"):
            rows[fmt] = best(lambda: export_run(run_dir, fmt, work / fmt), args.repeat)
        peer_meg = best(lambda: megatron_peer(run_dir, work / "peer-megatron"), args.repeat)
        peer_mds = best(lambda: (shutil.rmtree(work / "peer-mds", ignore_errors=True),
                                 mds_peer(run_dir, work / "peer-mds")), args.repeat)
        rate = lambda s: tokens / s / 1e6  # noqa: E731
        print(f"| megatron | gristmill | {rows['megatron']:.2f} | {rate(rows['megatron']):.1f} | "
              f"{peer_meg / rows['megatron']:.1f}x |")
        print(f"| megatron | megatron-core IndexedDatasetBuilder | {peer_meg:.2f} | {rate(peer_meg):.1f} | 1.0x |")
        print(f"| mds | gristmill | {rows['mds']:.2f} | {rate(rows['mds']):.1f} | {peer_mds / rows['mds']:.1f}x |")
        print(f"| mds | mosaicml-streaming MDSWriter | {peer_mds:.2f} | {rate(peer_mds):.1f} | 1.0x |")
        print(f"| jsonl | gristmill | {rows['jsonl']:.2f} | {rate(rows['jsonl']):.1f} | - |")
        print(f"| hf-tokenizer | gristmill | {rows['hf-tokenizer']:.2f} | - | - |")
        identical = all((work / "megatron" / f"tokens.{x}").read_bytes() == (work / f"peer-megatron.{x}").read_bytes()
                        for x in ("bin", "idx"))
        print(f"\nmegatron .bin and .idx byte-identical to megatron-core's: {identical}")
        print(f"MDS samples identical to MDSWriter's (read with LocalDataset): "
              f"{same_mds_samples(work / 'mds', work / 'peer-mds')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
