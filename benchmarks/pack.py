"""Packing + shard writing throughput, and bytes on disk per token.

Side by side, on the same real documents tokenized with the GPT-2 BPE (vocabulary 50,257):

* gristmill ``mixture.pack_v1`` (count, solve, vectorized pack, staging, interleave, zstd shards, manifest),
  on the local executor, i.e. one core;
* the peer: the ``group_texts`` step of Hugging Face ``transformers/examples/pytorch/language-modeling/run_clm.py``
  (``list(chain(*examples))`` then slicing Python lists; EOS appended per document as GPT-2 training does),
  followed by writing the same rows as zstd Parquet: the common pure-Python way to pack;
* on-disk formats for the same rows: our shard (zstd-3, plain pages), zstd levels, Parquet dictionary
  encoding, BYTE_STREAM_SPLIT, and nanoGPT's raw ``uint16`` ``.bin`` (2 bytes per token, no provenance).

Text: ../shared/data (html article bodies, corpus.en, 12-language sentences) and this Python's standard
library sources (code). Run: ``python benchmarks/pack.py [--tokens 40e6] [--seq-len 2048]``.

``--ranges``: instead, the step alone with its sources packed in token ranges of the default size for this
machine's CPUs, of 1M and of 256K tokens: CPU seconds of the process, the seconds of each fanned-out phase's tasks
and what is left serial on the driver, and whether the shards are byte-identical.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import glob
import json
import os
import shutil
import sysconfig
import tempfile
import time
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.mixtures.stages import MixturePack
from gristmill.core.runtime import LocalRuntime
from gristmill.stages.base import GlobalContext
from shared_data import SHARED_DATA  # noqa: E402

SHARED = SHARED_DATA


def texts_by_source() -> dict[str, list[str]]:
    truth = json.loads((SHARED / "html" / "ground-truth.json").read_text())
    corpus = (SHARED / "tokenizer" / "corpus.en").read_text().splitlines()
    sentences = [(SHARED / "langid" / f).read_text().splitlines() for f in sorted(os.listdir(SHARED / "langid"))]
    code = [Path(p).read_text(errors="replace") for p in sorted(glob.glob(sysconfig.get_paths()["stdlib"] + "/*.py"))]
    return {
        "common_crawl": [d["articleBody"] for d in truth.values() if d.get("articleBody")],
        "c4": ["\n".join(corpus[i : i + 5]) for i in range(0, len(corpus), 5)],
        "github": code,
        "wikipedia": ["\n".join(s[i : i + 20]) for s in sentences for i in range(0, len(s), 20)],
    }


def gpt2_tokenizer(out_dir: Path) -> Path:
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    tok = Tokenizer(BPE.from_file(str(SHARED / "tokenizer" / "gpt2_vocab.json"),
                                  str(SHARED / "tokenizer" / "gpt2_merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    path = out_dir / "tokenizer" / "tokenizer.json"
    path.parent.mkdir(parents=True)
    tok.save(str(path))
    return path


def document_table(tok_path: Path, copies: int) -> tuple[pa.Table, int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    sources, texts = [], []
    for source, docs in texts_by_source().items():
        sources += [source] * len(docs)
        texts += docs
    ids = [e.ids for e in tok.encode_batch(texts)]
    unique_tokens = sum(len(x) for x in ids)
    base = pa.table({
        "source": pa.array(sources),
        "tokens": pa.array(ids, pa.list_(pa.int32())),
        "n_tokens": pa.array([len(x) for x in ids], pa.int32()),
    })
    tables = []
    for c in range(copies):  # more documents of the same kind: fresh doc_ids, so draws differ per copy
        doc_id = pa.array(np.arange(base.num_rows, dtype=np.uint64) + np.uint64(c * base.num_rows))
        tables.append(base.add_column(0, "doc_id", doc_id))
    return pa.concat_tables(tables), unique_tokens


def write_parts(run_dir: Path, docs: pa.Table, n_parts: int = 8) -> list[str]:
    seg = run_dir / "segments" / "05-tokenize"
    seg.mkdir(parents=True)
    order = np.random.default_rng(0).permutation(docs.num_rows)  # parts mix sources, as after a crawl
    docs = docs.take(pa.array(order))
    bounds = np.linspace(0, docs.num_rows, n_parts + 1).astype(int)
    paths = []
    for p in range(n_parts):
        path = seg / f"part-{p:05d}.parquet"
        pq.write_table(docs.slice(bounds[p], bounds[p + 1] - bounds[p]), path, compression="zstd")
        paths.append(str(path))
    return paths


def natural_ratios(docs: pa.Table) -> dict[str, int]:
    """Each source's own share of the tokens: the mixture then uses all the data once, like the peer."""
    sums = docs.group_by("source").aggregate([("n_tokens", "sum")]).to_pylist()
    return {r["source"]: r["n_tokens_sum"] for r in sums}


def run_gristmill(run_dir: Path, parts: list[str], seq_len: int, ratios: dict) -> tuple[float, dict]:
    """CPU seconds of the whole step (process time counts every thread, so it is the per-core cost)."""
    params = {"ratios": ratios, "seq_len": seq_len, "rows_per_shard": 4096, "row_group_rows": 512}
    ctx = GlobalContext.for_step(str(run_dir), MixturePack.name, 6, parts, LocalRuntime(), seed=0)
    c0 = time.process_time()
    MixturePack(params).build(ctx)
    cpu = time.process_time() - c0
    return cpu, json.loads((run_dir / "manifest.json").read_text())


def run_ranged(run_dir: Path, parts: list[str], seq_len: int, ratios: dict, chunk_tokens: int
               ) -> tuple[float, dict, list[str]]:
    """The step with packing tasks capped at ``chunk_tokens``: CPU seconds, its stats (and ``wall``), the shards'
    sha256."""
    params = {"ratios": ratios, "seq_len": seq_len, "rows_per_shard": 4096, "row_group_rows": 512,
              "chunk_tokens": chunk_tokens}
    ctx = GlobalContext.for_step(str(run_dir), MixturePack.name, 6, parts, LocalRuntime(), seed=0)
    c0, t0 = time.process_time(), time.perf_counter()
    MixturePack(params).build(ctx)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return cpu, ctx.stats.counts | ctx.stats.figures | {"wall": wall}, [e["sha256"] for e in manifest["shards"]]


def ranges_side_by_side(run_dir: Path, parts: list[str], seq_len: int, ratios: dict, repeat: int) -> None:
    from gristmill.mixtures.packer import DEFAULT_CHUNK_TOKENS

    variants = {"ranges, default size": DEFAULT_CHUNK_TOKENS, "ranges of 1M tokens": 1 << 20,
                "ranges of 256K tokens": 1 << 18}
    print(f"LocalRuntime ({os.cpu_count()} CPUs: the default range size is total / (2 x CPUs), at least 1M "
          f"tokens); CPU time of the process, best of {repeat}\n")
    print("| variant | pack tasks | CPU s | wall s | count s | split s | pack s | write s | serial rest (wall) s | shards |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    reference = None
    for name, chunk in variants.items():
        cpu, stats, hashes = min((run_ranged(run_dir, parts, seq_len, ratios, chunk) for _ in range(repeat)),
                                 key=lambda r: r[0])
        reference = reference or hashes
        phases = [stats[f"phase.{p}.task_seconds"] for p in ("count", "split", "pack", "write")]
        walls = sum(stats[f"phase.{p}.wall_seconds"] for p in ("count", "split", "pack", "write"))
        print(f"| {name} | {stats['phase.pack.tasks']} | {cpu:.2f} | {stats['wall']:.2f} | "
              + " | ".join(f"{x:.2f}" for x in phases)
              + f" | {stats['wall'] - walls:.2f} | {'identical' if hashes == reference else 'DIFFER'} |")


def run_group_texts(parts: list[str], seq_len: int, eos: int, out: Path) -> tuple[float, int]:
    """run_clm.py's group_texts over the same parts (one source: no mixture), then zstd Parquet."""
    c0 = time.process_time()
    rows = 0
    with pq.ParquetWriter(out, pa.schema([("input_ids", pa.list_(pa.int32()))]), compression="zstd",
                          compression_level=3) as writer:
        for path in parts:
            examples = [t + [eos] for t in pq.read_table(path, columns=["tokens"]).column(0).to_pylist()]
            concatenated = list(chain(*examples))
            total_length = (len(concatenated) // seq_len) * seq_len
            result = [concatenated[i : i + seq_len] for i in range(0, total_length, seq_len)]
            writer.write_table(pa.table({"input_ids": pa.array(result, pa.list_(pa.int32()))}))
            rows += len(result)
    return time.process_time() - c0, rows * seq_len


def encodings(shard: Path, out_dir: Path, tokens_in_shard: int) -> list[tuple[str, float, float]]:
    """(format, bytes per token, seconds to write per million tokens) for the rows of one shard."""
    table = pq.read_table(shard)
    variants = {
        "zstd-1 plain": dict(compression="zstd", compression_level=1, use_dictionary=["source"]),
        "zstd-3 plain (gristmill default)": dict(compression="zstd", compression_level=3, use_dictionary=["source"]),
        "zstd-9 plain": dict(compression="zstd", compression_level=9, use_dictionary=["source"]),
        "zstd-3 dictionary": dict(compression="zstd", compression_level=3, use_dictionary=True),
        "zstd-3 BYTE_STREAM_SPLIT": dict(compression="zstd", compression_level=3, use_dictionary=["source"],
                                         column_encoding={"input_ids.list.element": "BYTE_STREAM_SPLIT"}),
        "uncompressed plain": dict(compression="none", use_dictionary=["source"]),
    }
    rows = []
    for name, kwargs in variants.items():
        path = out_dir / "variant.parquet"
        t0 = time.perf_counter()
        try:
            pq.write_table(table, path, row_group_size=512, **kwargs)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as exc:
            rows.append((f"{name} (unsupported: {exc})", float("nan"), float("nan")))
            continue
        seconds = time.perf_counter() - t0
        rows.append((name, path.stat().st_size / tokens_in_shard, seconds / tokens_in_shard * 1e6))
    ids = table.column("input_ids").combine_chunks().flatten().to_numpy()
    (out_dir / "nanogpt.bin").write_bytes(ids.astype(np.uint16).tobytes())
    rows.append(("nanoGPT raw uint16 .bin (no provenance)", (out_dir / "nanogpt.bin").stat().st_size / len(ids), 0.0))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=float, default=40e6, help="tokens of input documents (replicated text)")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings (a shared machine is noisy)")
    ap.add_argument("--ranges", action="store_true", help="one packing task per source vs token ranges")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gristmill-pack-"))
    try:
        tok_path = gpt2_tokenizer(work)
        probe, unique = document_table(tok_path, 1)
        copies = max(1, int(args.tokens // unique))
        docs, _ = document_table(tok_path, copies)
        run_dir = work / "run"
        parts = write_parts(run_dir, docs)
        shutil.copytree(tok_path.parent, run_dir / "tokenizer")
        in_tokens = int(pa.compute.sum(docs.column("n_tokens")).as_py())
        if args.ranges:
            print(f"input: {in_tokens:,} tokens in {docs.num_rows:,} documents, {len(parts)} parts; "
                  f"seq_len {args.seq_len}")
            ranges_side_by_side(run_dir, parts, args.seq_len, natural_ratios(docs), args.repeat)
            return

        ours_runs = [run_gristmill(run_dir, parts, args.seq_len, natural_ratios(docs)) for _ in range(args.repeat)]
        seconds, manifest = min(ours_runs, key=lambda r: r[0])
        ours = manifest["tokens"] / seconds
        peer_runs = [run_group_texts(parts, args.seq_len, 50256, work / "peer.parquet") for _ in range(args.repeat)]
        peer_seconds, peer_tokens = min(peer_runs)
        peer = peer_tokens / peer_seconds
        disk = sum(e["bytes"] for e in manifest["shards"]) / manifest["tokens"]

        print(f"input: {in_tokens:,} tokens in {docs.num_rows:,} documents ({unique:,} unique tokens x {copies}), "
              f"{len(parts)} parts; seq_len {args.seq_len}; local executor; CPU time of the process (all threads), best of {args.repeat}\n")
        print("| packer + writer | tokens packed | CPU seconds (all threads) | tokens per CPU-second | ratio |")
        print("|---|---:|---:|---:|---:|")
        print(f"| gristmill mixture.pack_v1 (4 sources at their natural shares, zstd-3 shards, manifest) | {manifest['tokens']:,} "
              f"| {seconds:.2f} | {ours / 1e6:.1f} M | {ours / peer:.1f}x |")
        print(f"| HF run_clm.py group_texts + zstd-3 Parquet (one stream, no mixture) | {peer_tokens:,} "
              f"| {peer_seconds:.2f} | {peer / 1e6:.1f} M | 1.0x |")
        print(f"\nrealized vs target: " + ", ".join(
            f"{s} {manifest['mixture']['realized'][s] * 100:.2f}% / {t * 100:.1f}%"
            for s, t in manifest["mixture"]["target"].items()))
        print(f"gristmill shards on disk: {disk:.3f} bytes/token (incl. source, doc_ids, doc_offsets)\n")

        # Bytes per token measured on one epoch of unique text (no replicated documents in the file).
        one = work / "one"
        one_parts = write_parts(one, probe, 2)
        shutil.copytree(tok_path.parent, one / "tokenizer")
        _, m1 = run_gristmill(one, one_parts, args.seq_len, natural_ratios(probe))
        first = m1["shards"][0]
        print(f"on-disk formats, rows of the first shard of one copy of the text ({first['tokens']:,} tokens):\n")
        print("| format | bytes/token | write s per M tokens |")
        print("|---|---:|---:|")
        for name, bpt, spm in encodings(one / first["path"], work, first["tokens"]):
            print(f"| {name} | {bpt:.3f} | {spm:.3f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
