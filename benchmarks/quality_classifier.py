"""Quality classifier (LLaMA recipe): train ``gristmill train-quality`` on real text and report held-out
precision/recall, training time and scoring throughput of ``quality.fasttext_v1``.

Reference = hand-labelled article text of the 181 pages of scrapinghub/article-extraction-benchmark; crawl = the
rest of the same pages' whole-page extraction (navigation, teasers, footers), both cut into ~600-char documents.

    python benchmarks/quality_classifier.py
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import os
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq


import gristmill.pipeline  # noqa: E402,F401  (import order: pipeline before stages)
import real_text  # noqa: E402
from gristmill.stages.quality import training  # noqa: E402
from gristmill.stages.quality.fasttext_quality import FastTextQuality  # noqa: E402

CONFIGS = {
    "defaults (epoch 5, lr 0.1, dim 64, word bigrams)": {},
    "epoch 25, lr 0.5": {"epoch": 25, "lr": 0.5},
}


def main() -> None:
    rows = real_text.reference_vs_crawl(real_text.html_pages())
    table = pa.table({"doc_id": pa.array(range(len(rows)), pa.uint64()),
                      "source": [r["source"] for r in rows],
                      "text": pa.array([r["text"] for r in rows], pa.large_string())})
    with tempfile.TemporaryDirectory() as tmp:
        files = [os.path.join(tmp, "part-00000.parquet")]
        pq.write_table(table, files[0])
        n_ref = sum(r["source"] == "reference" for r in rows)
        print(f"{len(rows)} documents ({n_ref} reference, {len(rows) - n_ref} crawl), 20% held out, seed 0, "
              "1 thread\n")
        print("| configuration | train docs | held-out docs | precision | recall | F1 | train s | score docs/s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, overrides in CONFIGS.items():
            config = training.TrainConfig(positive_sources=("reference",), negative_sources=("common_crawl",),
                                          holdout=0.2, **overrides)
            model = os.path.join(tmp, "quality.bin")
            start = time.perf_counter()
            meta = training.train(files, model, config)
            train_s = time.perf_counter() - start
            stage = FastTextQuality({"model": model})
            stage.setup()
            start = time.perf_counter()
            stage.process(table)
            score_s = time.perf_counter() - start
            h = meta["heldout"]
            print(f"| {name} | {sum(meta['train_documents'].values())} | {h['documents']} | {h['precision']:.3f} | "
                  f"{h['recall']:.3f} | {h['f1']:.3f} | {train_s:.2f} | {len(rows) / score_s:,.0f} |")


if __name__ == "__main__":
    main()
