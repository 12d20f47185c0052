"""The ``hf`` input format against ``datasets`` itself, on the same ``save_to_disk`` folder of real text.

1. Reading: gristmill's ``HfReader`` (pyarrow over the Arrow IPC shards, re-batched to 2048 rows, document rows with
   origins) vs ``datasets.load_from_disk(...).iter(batch_size=2048)`` taking the text column: rows/s and CPU seconds.
2. A trial run: ``limit: N`` on the input vs the whole input, ingest + clean.normalize_v1 on the local executor:
   CPU seconds of the run (the limit's look-ahead included).

The corpus is the 12,000 Leipzig sentences of ``langid/*.txt`` and the lines of ``tokenizer/corpus.en``, repeated
to ``--rows`` rows, saved with the real ``Dataset.save_to_disk`` in ``--shards`` shards.

Run: python benchmarks/hf_reader.py [--data ../shared/data] [--rows 400000] [--shards 8] [--limit 2000]
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import tempfile
import time
from pathlib import Path

from gristmill.pipeline import LocalExecutor, RunDir, build_plan, parse_pipeline, run_plan  # noqa: E402
from gristmill.stages.ingest.base import Limits  # noqa: E402
from gristmill.stages.ingest.hf import HfReader  # noqa: E402
from shared_data import SHARED_DATA  # noqa: E402


def real_lines(data: Path) -> list[str]:
    lines = [line for f in sorted((data / "langid").glob("*.txt"))
             for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines += [line for line in (data / "tokenizer" / "corpus.en").read_text(encoding="utf-8").splitlines()
              if line.strip()]
    return lines


def save_dataset(folder: Path, lines: list[str], rows: int, shards: int) -> None:
    import datasets

    text = (lines * (rows // len(lines) + 1))[:rows]
    ds = datasets.Dataset.from_dict({"text": text, "id": [f"doc-{i}" for i in range(rows)]})
    ds.save_to_disk(str(folder), num_shards=shards)


def timed(fn) -> tuple[int, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    rows = fn()
    return rows, time.perf_counter() - wall, time.process_time() - cpu


def read_gristmill(folder: Path) -> int:
    reader = HfReader(HfReader.Params(id_field="id"), Limits(batch_rows=2048))
    return sum(t.num_rows for u in reader.units(reader.expand_directory(str(folder)), 0) for t in reader.read(u))


def read_datasets(folder: Path) -> int:
    import datasets

    ds = datasets.load_from_disk(str(folder))
    return sum(len(batch["text"]) for batch in ds.iter(batch_size=2048))


PIPELINE = """\
name: trial
inputs:
  - source: c4
    format: hf
    paths: [{folder}]
    options: {{id_field: id}}
{limit}steps:
  - stage: clean.normalize_v1
execution: {{executor: local}}
"""


def run_pipeline(folder: Path, work: Path, limit: int | None) -> int:
    text = PIPELINE.format(folder=folder, limit=f"    limit: {limit}\n" if limit else "")
    plan = build_plan(parse_pipeline(text, "trial.yaml"), work)
    result = run_plan(plan, RunDir(work / f"run-{limit}"), LocalExecutor(), log=lambda m: None)
    return sum(s.rows_out for segment in result.stats for s in segment.stages if s.position == 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--limit", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ds"
        save_dataset(folder, real_lines(args.data), args.rows, args.shards)
        mb = sum(f.stat().st_size for f in folder.glob("*.arrow")) / 1e6
        print(f"save_to_disk folder: {args.rows:,} rows, {args.shards} shards, {mb:.1f} MB of Arrow")
        print("| reader | rows | wall s | CPU s | rows per CPU s |")
        print("|---|---|---|---|---|")
        for name, fn in (("gristmill HfReader", read_gristmill), ("datasets load_from_disk + iter", read_datasets)):
            rows, wall, cpu = timed(lambda: fn(folder))
            print(f"| {name} | {rows:,} | {wall:.2f} | {cpu:.2f} | {rows / cpu:,.0f} |")
        print()
        print("| run (ingest + clean.normalize_v1, local) | documents | wall s | CPU s |")
        print("|---|---|---|---|")
        for limit in (None, args.limit):
            rows, wall, cpu = timed(lambda: run_pipeline(folder, Path(tmp), limit))
            print(f"| {'whole input' if limit is None else f'limit: {limit}'} | {rows:,} | {wall:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
