"""``tokenize.bbpe_v1`` engines side by side: ``tokenizers`` vs ``tiktoken``, MB per CPU-second on one thread each,
and the number of documents whose ids differ (must be 0), per source of a benchmark corpus.

    python benchmarks/tokenize_engines.py                               # corpus-100, 32k vocab trained here
    python benchmarks/tokenize_engines.py --tokenizer RUN/tokenizer/tokenizer.json --repeats 5

Documents are read with the pipeline's own readers, as benchmarks/configs/llama.yaml does: the Common Crawl
WARCs through ``WarcReader`` (resiliparse extraction), code / LaTeX / books through ``TextReader``, Wikipedia and
StackExchange through ``JsonlReader``. The tokenizer is trained with the repository's trainer on an evenly
strided sample of all sources (``--train-mb``). Each engine runs the stage's own ``process()`` on every
source's table; CPU seconds (best of ``--repeats``, interleaved) make the figure per core.
"""

from __future__ import annotations

import os

# One thread for both engines, set before tokenizers starts its pool (the tiktoken engine reads the same).
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import glob
import tempfile
import time
from pathlib import Path

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.stages.ingest.base import Limits, Reader
from gristmill.stages.ingest.jsonl import JsonlOptions, JsonlReader
from gristmill.stages.ingest.text import TextOptions, TextReader
from gristmill.stages.ingest.warc import WarcOptions, WarcReader
from gristmill.stages.tokenize.bbpe import BbpeParams, train_on_samples
from gristmill.stages.tokenize.encode import TokenizeBbpeV1

# (source, file pattern under the corpus, reader): the inputs of benchmarks/configs/llama.yaml.
SOURCES = [
    ("common_crawl", "common_crawl/**/*.warc.gz", lambda: WarcReader(WarcOptions(extractor="resiliparse"), Limits())),
    ("github", "github/**/*.py", lambda: TextReader(TextOptions(files_per_unit=256), Limits())),
    ("arxiv", "arxiv/**/*.tex", lambda: TextReader(TextOptions(files_per_unit=64), Limits())),
    ("books", "books/**/*.txt", lambda: TextReader(TextOptions(files_per_unit=64), Limits())),
    ("wikipedia", "wikipedia/**/*.jsonl", lambda: JsonlReader(JsonlOptions(id_field="id", url_field="url"), Limits())),
    ("stackexchange", "stackexchange/**/*.jsonl",
     lambda: JsonlReader(JsonlOptions(id_field="id", url_field="url"), Limits())),
]


def read_source(reader: Reader, paths: list[str]) -> list[str]:
    """The text of every record the reader keeps (rejected records, e.g. non-HTML WARC records, dropped)."""
    texts = []
    for unit in reader.units(paths, 0):
        for table in reader.read(unit):
            kept = table.filter(pc.is_null(table["reject_reason"]))
            texts += kept["text"].to_pylist()
    return texts


def load_corpus(corpus: Path) -> dict[str, list[str]]:
    out = {}
    for source, pattern, make_reader in SOURCES:
        paths = sorted(glob.glob(str(corpus / pattern), recursive=True))
        started = time.perf_counter()
        out[source] = read_source(make_reader(), paths)
        print(f"read {source}: {len(paths)} files -> {len(out[source])} documents, "
              f"{sum(len(t.encode()) for t in out[source]) / 1e6:.1f} MB ({time.perf_counter() - started:.0f} s)")
    return out


def train(corpus: dict[str, list[str]], vocab: int, train_mb: float, out_dir: str) -> str:
    """A tokenizer trained with the repository's trainer on every k-th document of every source."""
    docs = [t for texts in corpus.values() for t in texts]
    total = sum(len(t.encode()) for t in docs)
    sample = docs[:: max(1, round(total / (train_mb * 1e6)))]
    table = pa.table({"text": sample, "source": ["all"] * len(sample), "repeat": pa.array([1] * len(sample), pa.int32())})
    started = time.perf_counter()
    tokenizer_json, _ = train_on_samples(BbpeParams(vocab_size=vocab).model_dump_json(), table)
    path = os.path.join(out_dir, "tokenizer.json")
    Path(path).write_text(tokenizer_json, encoding="utf-8")
    print(f"trained vocab {vocab} on {sum(len(t.encode()) for t in sample) / 1e6:.1f} MB "
          f"in {time.perf_counter() - started:.0f} s")
    return path


def stage(path: str, engine: str) -> tuple[TokenizeBbpeV1, float]:
    """The stage set up with ``engine``, and its setup() seconds (tiktoken's: load + the compatibility proof)."""
    started = time.perf_counter()
    s = TokenizeBbpeV1({"path": path, "engine": engine})
    s.setup()
    return s, time.perf_counter() - started


def differing_documents(a: pa.Table, b: pa.Table) -> int:
    return sum(x != y for x, y in zip(a["tokens"].to_pylist(), b["tokens"].to_pylist()))


def compare(stages: dict[str, TokenizeBbpeV1], texts: list[str], repeats: int) -> dict:
    table = pa.table({"doc_id": pa.array(range(len(texts)), pa.uint64()), "text": pa.array(texts, pa.large_string())})
    best = {name: float("inf") for name in stages}
    outputs = {}
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits both engines alike
        for name, s in stages.items():
            cpu = time.process_time()
            outputs[name] = s.process(table).table
            best[name] = min(best[name], time.process_time() - cpu)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    return {"docs": len(texts), "mb": mb, "tokens": pc.sum(outputs["tokenizers"]["n_tokens"]).as_py(),
            "rate": {n: mb / cpu for n, cpu in best.items()},
            "differ": differing_documents(outputs["tokenizers"], outputs["tiktoken"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path(__file__).parent / "data" / "corpus-100")
    parser.add_argument("--tokenizer", help="tokenizer.json to use instead of training one")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--train-mb", type=float, default=16.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    corpus = load_corpus(args.corpus)
    with tempfile.TemporaryDirectory(prefix="tok-engines-") as tmp:
        path = args.tokenizer or train(corpus, args.vocab, args.train_mb, tmp)
        hf, hf_setup = stage(path, "tokenizers")
        tt, tt_setup = stage(path, "tiktoken")
        assert tt.encode.threads == 1
        print(f"\nsetup(): tokenizers {hf_setup:.2f} s, tiktoken {tt_setup:.2f} s (incl. the compatibility proof); "
              f"one thread each, best of {args.repeats}\n")
        rows = {source: compare({"tokenizers": hf, "tiktoken": tt}, texts, args.repeats)
                for source, texts in corpus.items()}
        rows["all"] = compare({"tokenizers": hf, "tiktoken": tt}, [t for ts in corpus.values() for t in ts],
                              args.repeats)
    print("| source | docs | MB | tokens | tokenizers MB/CPU-s | tiktoken MB/CPU-s | tiktoken / tokenizers | "
          "docs whose ids differ |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for source, r in rows.items():
        hf_rate, tt_rate = r["rate"]["tokenizers"], r["rate"]["tiktoken"]
        print(f"| {source} | {r['docs']} | {r['mb']:.1f} | {r['tokens']:,} | {hf_rate:.2f} | {tt_rate:.2f} | "
              f"{tt_rate / hf_rate:.2f}x | {r['differ']} |")


if __name__ == "__main__":
    main()
