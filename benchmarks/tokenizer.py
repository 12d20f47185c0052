"""Benchmark the BBPE tokenizer: training time and peak memory, compression vs GPT-2, stage encode overhead.

    python benchmarks/tokenizer.py            # 50 MB of real text (about 3 minutes on 2 cores)
    python benchmarks/tokenizer.py --mb 5     # quick run

The corpus is real text from this machine: code (the CPython 3.11 standard library sources), web pages (the
raw HTML of /work/shared/data/html) and prose (corpus.en, the 12 langid sentence files, the hand-extracted
article texts of the HTML pages). Held out from training: all of langid/en.txt (English), the second half of
langid/zh.txt (Chinese) and every 20th stdlib file (code). Training runs through the real pipeline step
(``tokenizer.train_bbpe_v1`` build() on Parquet parts, local executor), each vocabulary size in a fresh
process so its peak RSS is its own. Prints Markdown tables.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import glob
import gzip
import json
import multiprocessing as mp
import os
import tempfile
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


STDLIB = "/root/.pyenv/versions/3.11.7/lib/python3.11"
DATA = "/work/shared/data"
GPT2_VOCAB = 50257


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def load_corpus(mb: float) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(training documents per source, held-out documents per language)."""
    budget = int(mb * 1e6)
    en_lines = _read(f"{DATA}/tokenizer/corpus.en").splitlines()
    text = ["\n".join(en_lines[i : i + 20]) for i in range(0, len(en_lines), 20)]
    zh = _read(f"{DATA}/langid/zh.txt").splitlines()
    for path in sorted(glob.glob(f"{DATA}/langid/*.txt")):
        if path.endswith("/en.txt"):
            continue
        lines = zh[: len(zh) // 2] if path.endswith("/zh.txt") else _read(path).splitlines()
        text.extend(lines)
    with open(f"{DATA}/html/ground-truth.json", encoding="utf-8") as f:
        text.extend(v["articleBody"] for v in json.load(f).values() if v.get("articleBody"))
    used = sum(len(t.encode()) for t in text)

    # Raw HTML up to 30% of the budget, code for the rest.
    html, html_bytes, html_cap = [], 0, min(int(0.3 * budget), budget - used)
    for path in sorted(glob.glob(f"{DATA}/html/html/*.html.gz")):
        page = gzip.open(path).read().decode("utf-8", errors="replace")
        if html_bytes + len(page.encode()) > html_cap:
            break
        html.append(page)
        html_bytes += len(page.encode())
    used += html_bytes

    code, held_code = [], []
    py_files = sorted(glob.glob(f"{STDLIB}/**/*.py", recursive=True))
    py_files = [p for p in py_files if "/site-packages/" not in p] + [p for p in py_files if "/site-packages/" in p]
    for i, path in enumerate(py_files):
        if i % 20 == 0 and sum(map(len, held_code)) < 2_000_000:
            held_code.append(_read(path))
            continue
        if used >= budget:
            continue
        doc = _read(path)
        code.append(doc)
        used += len(doc.encode())
    held = {"English": _read(f"{DATA}/langid/en.txt").splitlines(), "Chinese": zh[len(zh) // 2 :], "code": held_code}
    return {"code": code, "html": html, "text": text}, held


def write_parts(corpus: dict[str, list[str]], directory: str) -> list[str]:
    parts = []
    for index, (source, docs) in enumerate(sorted(corpus.items())):
        table = pa.table({
            "doc_id": pa.array([(index << 32) | i for i in range(len(docs))], pa.uint64()),
            "source": pa.array([source] * len(docs), pa.string()),
            "text": pa.array(docs, pa.large_string()),
        })
        path = os.path.join(directory, f"part-{index:05d}.parquet")
        pq.write_table(table, path)
        parts.append(path)
    return parts


def _status_mib(key: str) -> float:
    """VmRSS / VmHWM of this process in MiB (VmHWM, unlike ru_maxrss, is not inherited across exec)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _train_child(parts: list[str], out_dir: str, vocab_size: int, queue) -> None:
    from gristmill.stages.base import GlobalContext
    from gristmill.stages.tokenize.train import TrainBbpeV1

    rss_before = _status_mib("VmRSS")
    ctx = GlobalContext(input_parts=parts, artifacts_dir=out_dir, seed=0, executor="local", step_index=0,
                        run_dir=out_dir)
    started, cpu = time.perf_counter(), time.process_time()
    TrainBbpeV1({"vocab_size": vocab_size, "sample_bytes": 10**12}).build(ctx)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    with open(os.path.join(out_dir, "tokenizer_meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    queue.put({"wall": wall, "cpu": cpu, "train": meta["training_seconds"], "sample_bytes": meta["sample"]["bytes"],
               "peak_mib": _status_mib("VmHWM"), "start_mib": rss_before, "sha": meta["tokenizer_sha256"]})


def train_in_child(parts: list[str], out_dir: str, vocab_size: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_train_child, args=(parts, out_dir, vocab_size, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def gpt2_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE.from_file(f"{DATA}/tokenizer/gpt2_vocab.json", f"{DATA}/tokenizer/gpt2_merges.txt"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def bytes_per_token(tokenizer, docs: list[str]) -> float:
    encodings = tokenizer.encode_batch(docs, add_special_tokens=False)
    for doc, enc in zip(docs[:50], encodings[:50]):  # lossless, or the ratio means nothing
        assert tokenizer.decode(enc.ids, skip_special_tokens=False) == doc
    return sum(len(d.encode()) for d in docs) / sum(len(e.ids) for e in encodings)


def _encode_loop(tok, method: str, batches: list[list[str]]) -> None:
    encode = getattr(tok, method)
    for batch in batches:  # each batch's encodings dropped before the next, as in the stage
        encode(batch, add_special_tokens=False)


def throughput(tokenizer_path: str, docs: list[str], repeats: int) -> dict[str, tuple[float, float]]:
    """Best-of-``repeats`` (wall s, CPU s) of the stage's process() vs bare encode loops on the same batches.

    CPU seconds (all threads) give MB per CPU-second, i.e. per core, which stays meaningful on a shared,
    busy machine where wall time does not.
    """
    from tokenizers import Tokenizer

    from gristmill.stages.tokenize.encode import TokenizeBbpeV1, batch_bounds

    table = pa.table({"doc_id": pa.array(range(len(docs)), pa.uint64()), "text": pa.array(docs, pa.large_string())})
    stage = TokenizeBbpeV1({"path": tokenizer_path})
    stage.setup()
    tok = Tokenizer.from_file(tokenizer_path)
    tok.encode_special_tokens = True
    sizes = pc.binary_length(table["text"]).to_numpy()
    batches = [docs[a:b] for a, b in batch_bounds(sizes, stage.params.batch_bytes)]
    runs = {
        "stage process()": lambda: stage.process(table),
        "bare encode_batch": lambda: _encode_loop(tok, "encode_batch", batches),
        "bare encode_batch_fast": lambda: _encode_loop(tok, "encode_batch_fast", batches),
    }
    best = {name: (float("inf"), float("inf")) for name in runs}
    for _ in range(repeats):  # interleaved, so drift hits every variant alike
        for name, fn in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="MB of training text (default 50)")
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, GPT2_VOCAB])
    parser.add_argument("--encode-mb", type=float, default=8.0, help="MB of text for the throughput test")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from tokenizers import Tokenizer

    corpus, held = load_corpus(args.mb)
    cores = int(os.environ.get("RAYON_NUM_THREADS") or os.cpu_count())
    print("corpus: " + ", ".join(f"{s} {sum(len(d.encode()) for d in docs) / 1e6:.1f} MB ({len(docs)} docs)"
                                   for s, docs in corpus.items()) + f"; {cores} cores\n")
    with tempfile.TemporaryDirectory(prefix="tok-bench-") as tmp:
        parts = write_parts(corpus, tmp)
        trained = {}
        print("| vocab | sample MB | trainer wall s | step wall s (count+sample+train+save) | step CPU s | "
              "peak RSS MiB | RSS at start MiB |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for vocab in args.vocab:
            out = os.path.join(tmp, f"tok-{vocab}")
            r = train_in_child(parts, out, vocab)
            trained[vocab] = os.path.join(out, "tokenizer.json")
            print(f"| {vocab} | {r['sample_bytes'] / 1e6:.1f} | {r['train']:.1f} | {r['wall']:.1f} | {r['cpu']:.1f} | "
                  f"{r['peak_mib']:.0f} | {r['start_mib']:.0f} |")

        print("\nCompression on held-out text, bytes per token (higher is better):\n")
        tokenizers = {f"gristmill {v}": Tokenizer.from_file(p) for v, p in trained.items()}
        tokenizers[f"GPT-2 {GPT2_VOCAB}"] = gpt2_tokenizer()
        names = list(tokenizers)
        print("| held-out set | MB | " + " | ".join(names) + " |")
        print("|---|---:|" + "---:|" * len(names))
        for label, docs in held.items():
            cells = [f"{bytes_per_token(tokenizers[n], docs):.2f}" for n in names]
            print(f"| {label} | {sum(len(d.encode()) for d in docs) / 1e6:.2f} | " + " | ".join(cells) + " |")

        mixed = [d for docs in (*held.values(), corpus["text"], corpus["code"], corpus["html"]) for d in docs]
        sample, size = [], 0
        for doc in mixed:
            if size >= args.encode_mb * 1e6:
                break
            sample.append(doc)
            size += len(doc.encode())
        vocab = GPT2_VOCAB if GPT2_VOCAB in trained else args.vocab[-1]
        best = throughput(trained[vocab], sample, args.repeats)
        print(f"\nEncode throughput, {size / 1e6:.1f} MB ({len(sample)} docs), vocab {vocab}, best of "
              f"{args.repeats}, {cores} threads:\n")
        print("| path | wall s | CPU s | MB/s (wall) | MB per CPU-second (per core) | CPU vs bare encode_batch |")
        print("|---|---:|---:|---:|---:|---:|")
        base = best["bare encode_batch"][1]
        for name, (wall, cpu) in best.items():
            print(f"| {name} | {wall:.2f} | {cpu:.2f} | {size / 1e6 / wall:.2f} | {size / 1e6 / cpu:.2f} | "
                  f"{cpu / base - 1:+.1%} |")

if __name__ == "__main__":
    main()
