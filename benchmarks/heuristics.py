"""Quality heuristics: gristmill's vectorized ``quality.heuristics_v1`` + presets vs datatrove's per-document filters.

Same documents, same process, one core: throughput (MB/s of text) and the keep/drop agreement for each of
GopherQuality, GopherRepetition, C4Quality and FineWebQuality. Documents: the 181 article pages (resiliparse,
main content and whole page), the Leipzig sentences joined into documents (12 languages), and the Common
Crawl sample pages. Needs datatrove + spacy (dev dependencies).

    python benchmarks/heuristics.py [--repeat 3] [--show-disagreements N]
    python benchmarks/heuristics.py --gristmill-only --copies 8 --batch 1024 --repeat 7

``--gristmill-only``: only gristmill's CPU time, on ``--copies`` copies of the documents cut into batches of
``--batch`` rows as the pipeline hands them over (default parameters, ``cjk_split`` on).
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import os
import time
from collections import Counter

import numpy as np
import pyarrow as pa


import gristmill.pipeline  # noqa: E402,F401  (import order: pipeline before gristmill.stages.filter)
import real_text  # noqa: E402
from gristmill.stages.filter import evaluate, expand  # noqa: E402
from gristmill.stages.quality import presets  # noqa: E402,F401  (registers the presets)
from gristmill.stages.quality.heuristics import QualityHeuristics  # noqa: E402

FAMILIES = ("gopher", "gopher_repetition", "c4", "fineweb")


def documents() -> list[dict]:
    docs = []
    for page in real_text.html_pages():
        docs.append({"kind": "html-main", "text": page["main"]})
        docs.append({"kind": "html-page", "text": page["page"]})
    for doc in real_text.langid_documents():
        docs.append({"kind": f"langid-{doc['lang']}", "text": doc["text"]})
    for page in real_text.warc_pages():
        docs.append({"kind": "cc-sample", "text": page["text"]})
    return [d for d in docs if d["text"]]


def datatrove_filters() -> dict:
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)

    return {"gopher": GopherQualityFilter(), "gopher_repetition": GopherRepetitionFilter(),
            "c4": C4QualityFilter(), "fineweb": FineWebQualityFilter()}


def datatrove_decisions(texts: list[str], filters: dict) -> dict[str, list]:
    from datatrove.data import Document

    out = {}
    for family, flt in filters.items():
        results = []
        for i, text in enumerate(texts):
            result = flt.filter(Document(text=text, id=str(i)))
            results.append((True, None) if result is True else (False, result[1]))
        out[family] = results
    return out


def gristmill_decisions(table: pa.Table) -> dict[str, np.ndarray]:
    return {family: evaluate(expand({"preset": family}), table).to_numpy(zero_copy_only=False)
            for family in FAMILIES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--show-disagreements", type=int, default=0)
    parser.add_argument("--gristmill-only", action="store_true")
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()
    if args.gristmill_only:
        return gristmill_throughput([d["text"] for d in documents()] * args.copies, args.batch, args.repeat)

    docs = documents()
    texts = [d["text"] for d in docs]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    table = pa.table({"text": pa.array(texts, pa.large_string())})
    # datatrove tokenizes every language with its English tokenizer here, so compare with cjk_split off.
    stage = QualityHeuristics({"cjk_split": False})
    filters = datatrove_filters()
    datatrove_decisions(texts[:5], filters)  # load spaCy outside the timing

    best_ours, cpu_ours = min(real_text.timed(lambda: stage.process(table)) for _ in range(args.repeat))
    scored = stage.process(table).table
    ours = gristmill_decisions(scored)
    best_theirs, cpu_theirs, theirs = None, None, None
    for _ in range(max(1, args.repeat - 1)):
        start, cpu = time.perf_counter(), time.thread_time()
        theirs = datatrove_decisions(texts, filters)
        elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
        if best_theirs is None or elapsed < best_theirs:
            best_theirs, cpu_theirs = elapsed, cpu

    print(f"{len(texts)} documents, {megabytes:.2f} MB of text, 1 process, 1 thread; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (MB per CPU-second does not depend on it)\n")
    print("| implementation | wall s | MB/s (wall) | CPU s | MB per CPU-s (per core) | docs per CPU-s |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| gristmill `quality.heuristics_v1` (all {len(scored.column_names) - 1} signals, vectorized) | "
          f"{best_ours:.2f} | {megabytes / best_ours:.2f} | {cpu_ours:.2f} | {megabytes / cpu_ours:.2f} | "
          f"{len(texts) / cpu_ours:,.0f} |")
    print(f"| datatrove Gopher quality + repetition + C4 + FineWeb (per document) | {best_theirs:.2f} | "
          f"{megabytes / best_theirs:.2f} | {cpu_theirs:.2f} | {megabytes / cpu_theirs:.2f} | "
          f"{len(texts) / cpu_theirs:,.0f} |")
    print(f"| ratio | | {best_theirs / best_ours:.1f}x | | {cpu_theirs / cpu_ours:.1f}x | |\n")

    print("| filter | datatrove keeps | gristmill keeps | agreement | disagreements (datatrove reason when it drops) |")
    print("|---|---:|---:|---:|---|")
    kinds = [d["kind"] for d in docs]
    for family in FAMILIES:
        dt_keep = np.array([keep for keep, _ in theirs[family]])
        gm_keep = ours[family]
        differ = np.flatnonzero(dt_keep != gm_keep)
        reasons = Counter(
            f"{'dt drop ' + theirs[family][i][1] if not dt_keep[i] else 'dt keep'} / "
            f"{'gm drop ' + _gm_reason(family, scored, i) if not gm_keep[i] else 'gm keep'}"
            for i in differ)
        print(f"| {family} | {dt_keep.sum()} | {gm_keep.sum()} | {100 * (1 - len(differ) / len(texts)):.2f}% | "
              + "; ".join(f"{k} x{v}" for k, v in reasons.most_common()) + " |")
        for i in differ[: args.show_disagreements]:
            print(f"    [{family}] doc {i} ({kinds[i]}): dt={theirs[family][i]} gm={gm_keep[i]} "
                  f"{_row_signals(scored, i, family)} text={texts[i][:200]!r}")


def gristmill_throughput(texts: list[str], batch: int, repeat: int) -> None:
    table = pa.table({"text": pa.array(texts, pa.large_string())})
    batches = [table.slice(i, batch) for i in range(0, len(texts), batch)]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    stage = QualityHeuristics({})
    stage.setup()
    stage.process(batches[0])  # first call outside the timing
    cpu = min(real_text.timed(lambda: [stage.process(b) for b in batches])[1] for _ in range(repeat))
    print(f"{len(texts)} documents, {megabytes:.2f} MB, batches of {batch}: best CPU {cpu:.3f} s, "
          f"{megabytes / cpu:.2f} MB per CPU-s")


def _gm_reason(family: str, table: pa.Table, row: int) -> str:
    from gristmill.stages.filter import reject_reasons

    reason = reject_reasons(expand({"preset": family}), table.slice(row, 1), prefix="")[0].as_py()
    return (reason or "").lstrip(":")


def _row_signals(table: pa.Table, row: int, family: str) -> dict:
    from gristmill.stages.filter import columns_of

    cols = sorted(columns_of(expand({"preset": family})))
    return {c: table[c][row].as_py() for c in cols}


if __name__ == "__main__":
    main()
