"""Throughput of the clean stages against datatrove's per-document equivalents, on one core.

    python benchmarks/clean.py [--mb 32] [--batch-rows 1024] [--repeat 3]

Corpus: the 181 hand-labelled article texts of scrapinghub/article-extraction-benchmark (real English web
articles) and the 12 x 1,000 sentences of the langid set grouped into 20-line documents, repeated to --mb MB;
1% of the documents get real mojibake (UTF-8 read as cp1252) so the repair path is exercised.

Peers (same documents, one Python call per document, as datatrove runs them):
  clean.normalize_v1   vs datatrove FTFYFormatter (ftfy.fix_text on every document)
  clean.boilerplate_v1 vs datatrove C4QualityFilter (min_num_sentences=-1, filter_curly_bracket=False)
  clean.pii_v1         vs datatrove PIIFormatter (e-mail + IP; ours also does phones)
Each figure is the best of --repeat runs (the machine may be shared). Prints a Markdown table. Not part of
the test suite.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc


from gristmill.stages.clean.boilerplate import Boilerplate  # noqa: E402
from gristmill.stages.clean.normalize import Normalize  # noqa: E402
from gristmill.stages.clean.pii import Pii  # noqa: E402
from shared_data import SHARED_DATA  # noqa: E402

DATA = SHARED_DATA


def corpus(target_mb: int) -> list[str]:
    articles = [v["articleBody"] for v in json.loads((DATA / "html/ground-truth.json").read_text()).values()]
    docs = [a for a in articles if a]
    for path in sorted((DATA / "langid").glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        docs += ["\n".join(lines[i : i + 20]) for i in range(0, len(lines), 20)]
    for i in range(0, len(docs), 100):  # 1% mojibake
        docs[i] = docs[i].encode("utf-8").decode("cp1252", errors="replace")
    out, size = [], 0
    while size < target_mb * 1_000_000:
        for d in docs:
            out.append(d)
            size += len(d.encode("utf-8"))
    return out


def table_of(docs: list[str]) -> pa.Table:
    n = len(docs)
    return pa.table(
        {
            "doc_id": pa.array(range(n), pa.uint64()),
            "source": pa.array(["common_crawl"] * n),
            "text": pa.array(docs, pa.large_string()),
            "url": pa.nulls(n, pa.string()),
            "origin": pa.array(["bench"] * n),
            "_part": pa.array([0] * n, pa.uint64()),
        }
    )


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def time_stage(stage, batches: list[pa.Table], repeat: int) -> float:
    stage.setup()

    def run() -> None:
        for batch in batches:
            stage.process(batch)

    return best_of(repeat, run)


def time_datatrove(step, docs: list[str], repeat: int) -> float:
    from datatrove.data import Document

    def run() -> None:
        # Fresh documents each time: the C4 filter rewrites doc.text in place.
        documents = [Document(text=d, id=str(i)) for i, d in enumerate(docs)]
        if hasattr(step, "format"):
            for doc in documents:
                step.format(doc.text)
        else:
            for doc in documents:
                step.filter(doc)

    return best_of(repeat, run)


def time_chain(stages: list, batches: list[pa.Table], repeat: int) -> float:
    def run() -> None:
        for batch in batches:
            for stage in stages:
                out = stage.process(batch)
                batch = out.table if out.reject_reason is None else out.table.filter(pc.is_null(out.reject_reason))

    return best_of(repeat, run)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=32)
    parser.add_argument("--batch-rows", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)

    docs = corpus(args.mb)
    mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    table = table_of(docs)
    batches = [table.slice(i, args.batch_rows) for i in range(0, table.num_rows, args.batch_rows)]

    from datatrove.pipeline.filters import C4QualityFilter
    from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter

    rows = [
        ("clean.normalize_v1", Normalize(), "datatrove FTFYFormatter", FTFYFormatter()),
        (
            "clean.boilerplate_v1",
            Boilerplate(),
            "datatrove C4QualityFilter",
            C4QualityFilter(min_num_sentences=-1, filter_curly_bracket=False),
        ),
        ("clean.pii_v1", Pii(), "datatrove PIIFormatter", PIIFormatter()),
    ]
    print(f"{len(docs)} documents, {mb:.1f} MB, batches of {args.batch_rows} rows, 1 core ({os.cpu_count()} on host)\n")
    print("| stage | gristmill MB/s | peer | peer MB/s | speed-up |")
    print("|---|---:|---|---:|---:|")
    for name, stage, peer_name, peer in rows:
        ours = mb / time_stage(stage, batches, args.repeat)
        theirs = mb / time_datatrove(peer, docs, args.repeat)
        print(f"| `{name}` | {ours:.1f} | {peer_name} | {theirs:.1f} | {ours / theirs:.1f}x |")
    chain = mb / time_chain([Normalize(), Boilerplate(), Pii()], batches, args.repeat)
    print(f"| all three in a row | {chain:.1f} | | | |")


if __name__ == "__main__":
    main()
