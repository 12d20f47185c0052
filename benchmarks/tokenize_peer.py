"""GPT-2 tokenization, gristmill vs datatrove 0.10.1, each as a whole process tree, plus the stage's overhead
over its bare encode call.

    python benchmarks/tokenize_peer.py                     # ~8 MB and ~40 MB, 3 repetitions
    python benchmarks/tokenize_peer.py --mb 8 40 --repeat 3 [--data ../shared/data]

Text: the code-heavy corpus of benchmarks/tokenizer.py (``load_corpus``: the CPython standard library's
``.py`` files, the raw HTML pages and the prose of ``DATA``), training and held-out documents alike, cut to
``--mb``, written once as JSONL. Tokenizer: GPT-2's (``DATA/tokenizer/gpt2_vocab.json`` + ``gpt2_merges.txt``)
as a tokenizer.json, ByteLevel pre-tokenizer with its own regex.

- gristmill: ``python -m gristmill run`` of a pipeline reading the JSONL and running ``tokenize.bbpe_v1`` with
  its default engine (``auto``), local executor; the whole run (plan, stats, report included). ``max_doc_bytes``
  is raised to 16 MB so that no document is cut (one stdlib file is over the 1 MB default; datatrove cuts none).
- datatrove: its ``LocalPipelineExecutor`` running ``JsonlReader`` + ``DocumentTokenizer`` (no shuffling).

CPU is user + system of the whole process tree (``process_tree.run_measured``), best of ``--repeat``,
interleaved. The token ids of both are compared document by document. The marginal CPU per MB is the slope
between the smallest and largest size. In-process, the stage's ``process()`` is also timed against the bare
call of its engine on the same batches (one thread each): tiktoken's ``encode_to_numpy`` loop, or
``tokenizers``' ``encode_batch``.
"""

from __future__ import annotations

import os

# One encode thread in this process (the in-process overhead measurement); the children get the default.
_CHILD_ENV = {k: v for k, v in os.environ.items() if k not in ("RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM")}
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import _bootstrap  # noqa: E402,F401  (sys.path: the repository before benchmarks/)

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from process_tree import run_measured  # noqa: E402
from shared_data import SHARED_DATA  # noqa: E402

PIPELINE = """name: tokenize-bench
inputs:
  - source: c4
    format: jsonl
    paths: ["{jsonl}"]
    max_doc_bytes: 16000000
steps:
  - stage: tokenize.bbpe_v1
    params: {{path: "{tokenizer}"}}
execution: {{executor: local}}
"""

DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.tokens import DocumentTokenizer
jsonl_dir, tokenizer, out, logs = sys.argv[1:5]
LocalPipelineExecutor(pipeline=[
    JsonlReader(jsonl_dir, glob_pattern="*.jsonl"),
    DocumentTokenizer(out, tokenizer_name_or_path=tokenizer, shuffle_documents=False, save_filename="tokens"),
], tasks=1, workers=1, logging_dir=logs).run()
"""


def gpt2_tokenizer_json(data: Path, out: str) -> str:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE.from_file(str(data / "tokenizer" / "gpt2_vocab.json"),
                                         str(data / "tokenizer" / "gpt2_merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    path = os.path.join(out, "gpt2.json")
    tok.save(path)
    return path


def documents(mb: float, data: Path) -> list[str]:
    from tokenizer import load_corpus

    corpus, held = load_corpus(mb, str(data), sysconfig.get_paths()["stdlib"])
    docs, size = [], 0
    # Empty documents left out: datatrove's reader skips them, gristmill keeps them with no tokens.
    for doc in (d for group in (*held.values(), *corpus.values()) for d in group if d):
        if size >= mb * 1e6:
            break
        docs.append(doc)
        size += len(doc.encode())
    return docs


def write_jsonl(docs: list[str], directory: str) -> str:
    os.makedirs(directory)
    path = os.path.join(directory, "docs.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for i, doc in enumerate(docs):
            f.write(json.dumps({"id": str(i), "text": doc}) + "\n")
    return path


def gristmill_ids(run_dir: str) -> list[np.ndarray]:
    table = pa.concat_tables(pq.read_table(p, columns=["doc_id", "tokens"])
                             for p in sorted(glob.glob(f"{run_dir}/segments/*/*.parquet")))
    table = table.sort_by("doc_id")
    offsets = table["tokens"].combine_chunks().offsets.to_numpy()
    flat = pc.list_flatten(table["tokens"]).to_numpy()
    return np.split(flat, offsets[1:-1])


def datatrove_ids(out: str) -> list[np.ndarray]:
    (ds,) = glob.glob(f"{out}/*.ds")
    tokens = np.fromfile(ds, dtype=np.uint16)
    ends = np.fromfile(ds + ".index", dtype=np.uint64)
    return np.split(tokens, ends[:-1].astype(np.int64))


def whole_runs(jsonl: str, tokenizer: str, tmp: str, repeat: int,
               peer_path: str | None = None) -> dict[str, tuple[float, float]]:
    """Best (wall, CPU) of each tool over ``repeat`` interleaved runs; checks both give the same ids.
    ``peer_path``: a folder put on datatrove's PYTHONPATH only (its JSONL reader needs orjson)."""
    yaml = os.path.join(tmp, "pipeline.yaml")
    Path(yaml).write_text(PIPELINE.format(jsonl=jsonl, tokenizer=tokenizer), encoding="utf-8")
    env = {**_CHILD_ENV, "PYTHONPATH": str(_bootstrap.ROOT)}
    best = {"gristmill": (float("inf"),) * 2, "datatrove": (float("inf"),) * 2}
    for i in range(repeat):
        run_dir, out = os.path.join(tmp, f"run-{i}"), os.path.join(tmp, f"dt-{i}")
        g = run_measured(["-m", "gristmill", "run", yaml, "--run-dir", run_dir, "--quiet"], env=env)
        d_env = dict(env, PYTHONPATH=os.pathsep.join([env["PYTHONPATH"], peer_path])) if peer_path else env
        d = run_measured(["-c", DATATROVE, os.path.dirname(jsonl), tokenizer, out, out + "-logs"], env=d_env)
        for name, (wall, cpu, _) in (("gristmill", g), ("datatrove", d)):
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    ours, theirs = gristmill_ids(run_dir), datatrove_ids(out)
    differ = sum(not np.array_equal(a, b) for a, b in zip(ours, theirs)) + abs(len(ours) - len(theirs))
    if differ:
        sys.exit(f"{differ} documents have different ids in gristmill and datatrove")
    engines = json.loads(Path(run_dir, "stats", "stats.json").read_text())
    print(f"  ids identical for all {len(ours)} documents; step counters: {_counters(engines)}")
    return best


def _counters(stats: dict) -> dict:
    """The tokenize step's counters in stats.json (rows per engine)."""
    found = {}
    for row in stats.get("counters", []):
        if row.get("stage") == "tokenize.bbpe_v1":
            found[row["counter"]] = found.get(row["counter"], 0) + row["rows"]
    return found


def overhead(docs: list[str], tokenizer: str, repeat: int) -> dict[str, float]:
    """Best CPU seconds of the stage's process() with each engine, and of each engine's bare call."""
    from tokenizers import Tokenizer

    from gristmill.stages.tokenize.encode import TokenizeBbpeV1, batch_bounds

    table = pa.table({"doc_id": pa.array(range(len(docs)), pa.uint64()), "text": pa.array(docs, pa.large_string())})
    stages = {e: TokenizeBbpeV1({"path": tokenizer, "engine": e}) for e in ("tiktoken", "tokenizers")}
    for stage in stages.values():
        stage.setup()
    encoding = stages["tiktoken"].encode.encoding
    hf = Tokenizer.from_file(tokenizer)
    hf.encode_special_tokens = True
    sizes = pc.binary_length(table["text"]).to_numpy()
    batches = [docs[a:b] for a, b in batch_bounds(sizes, stages["tiktoken"].params.batch_bytes)]

    def bare_tiktoken():
        for batch in batches:
            [encoding.encode_to_numpy(t, allowed_special=frozenset(), disallowed_special=()) for t in batch]

    def bare_tokenizers():
        for batch in batches:
            hf.encode_batch(batch, add_special_tokens=False)

    runs = {"stage, tiktoken": lambda: stages["tiktoken"].process(table), "bare tiktoken": bare_tiktoken,
            "stage, tokenizers": lambda: stages["tokenizers"].process(table), "bare tokenizers": bare_tokenizers}
    best = {name: float("inf") for name in runs}
    for _ in range(repeat):
        for name, fn in runs.items():
            cpu = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - cpu)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[8.0, 40.0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder")
    parser.add_argument("--no-overhead", action="store_true", help="only the whole runs")
    parser.add_argument("--peer-path", help="a folder put on datatrove's PYTHONPATH only, with what its JSONL reader "
                                            "needs and this environment lacks (pip install --target DIR orjson)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tok-peer-") as tmp:
        tokenizer = gpt2_tokenizer_json(args.data, tmp)
        for mb in args.mb:
            docs = documents(mb, args.data)
            size = sum(len(d.encode()) for d in docs) / 1e6
            print(f"{size:.1f} MB, {len(docs)} documents")
            case = os.path.join(tmp, f"mb-{mb:g}")
            os.makedirs(case)
            best = whole_runs(write_jsonl(docs, os.path.join(case, "in")), tokenizer, case, args.repeat,
                              args.peer_path)
            rows.append((size, len(docs), best, {} if args.no_overhead else overhead(docs, tokenizer, args.repeat)))

    print(f"\nWhole process tree, best of {args.repeat} (CPU s = user + system of every process):\n")
    print("| MB | docs | gristmill CPU s | datatrove CPU s | CPU ratio | gristmill wall s | datatrove wall s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size, n, best, _ in rows:
        (gw, gc), (dw, dc) = best["gristmill"], best["datatrove"]
        print(f"| {size:.1f} | {n} | {gc:.2f} | {dc:.2f} | {gc / dc:.2f}x | {gw:.2f} | {dw:.2f} |")
    if len(rows) > 1:
        (s0, _, b0, _), (s1, _, b1, _) = rows[0], rows[-1]
        slope = {name: (b1[name][1] - b0[name][1]) / (s1 - s0) for name in b0}
        print(f"\nMarginal CPU per MB ({s0:.1f} -> {s1:.1f} MB): gristmill {slope['gristmill']:.3f} CPU-s/MB, "
              f"datatrove {slope['datatrove']:.3f} CPU-s/MB")
    print("\nIn-process, one thread, best of the same repetitions: the stage's process() vs its engine's bare call\n")
    print("| MB | engine | stage CPU s | bare CPU s | stage overhead | stage MB per CPU-s |")
    print("|---:|---|---:|---:|---:|---:|")
    for size, _, _, cpu in rows:
        for engine in ("tiktoken", "tokenizers") if cpu else ():
            stage, bare = cpu[f"stage, {engine}"], cpu[f"bare {engine}"]
            print(f"| {size:.1f} | {engine} | {stage:.2f} | {bare:.2f} | {stage / bare - 1:+.1%} | "
                  f"{size / stage:.2f} |")


if __name__ == "__main__":
    main()
