"""Ingest alone (the demo's seven inputs, every reader), this checkout against another one, side by side.

The demo's input files (tests/data) are copied ``--copies`` times into a temporary folder and read by an
ingest-only pipeline (``steps: []``, local executor, rejects kept), in a fresh process and run directory per run,
alternating between the two checkouts. Printed per run: CPU seconds of the process (plan, ingest, stats and report),
wall seconds, and hashes of what it wrote: plan hash, committed parts, rejects, stats without timings.

Run: python benchmarks/ingest_versions.py --baseline ../main [--copies 20] [--repeat 3]
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("demo", "warc", "python-stdlib")

# Runs in the measured checkout's process: only the pipeline's public API and the standard library.
MEASURE = r"""
import hashlib, json, resource, sys, time
from pathlib import Path
import pyarrow.parquet as pq
from gristmill.pipeline import LocalExecutor, RunDir, build_plan, parse_pipeline, run_plan

pipeline, run_dir = Path(sys.argv[1]), sys.argv[2]
start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
plan = build_plan(parse_pipeline(pipeline.read_text(), str(pipeline)), pipeline.parent)
result = run_plan(plan, RunDir(run_dir), LocalExecutor(), log=lambda m: None)
after = resource.getrusage(resource.RUSAGE_SELF)

def digest(files):
    return hashlib.sha256(b"".join(f.read_bytes() for f in sorted(files))).hexdigest()[:16]

stats = {}
for name in ("stages", "drops", "counters"):
    table = pq.read_table(Path(run_dir) / "stats" / f"{name}.parquet")
    stats[name] = table.drop_columns([c for c in table.column_names if c == "seconds"]).to_pylist()
print(json.dumps({
    "cpu_s": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
    "wall_s": time.perf_counter() - start, "plan_hash": plan.plan_hash,
    "records": sum(s.rows_in for s in result.stats[0].stages if s.position == 0),
    "parts": digest(Path(RunDir(run_dir).segment_dir(result.stats[0].segment)).glob("part-*.parquet")),
    "rejects": digest((Path(run_dir) / "rejects").rglob("*.parquet")),
    "stats": hashlib.sha256(json.dumps(stats, sort_keys=True, default=str).encode()).hexdigest()[:16],
}))
"""


def ingest_only_pipeline(folder: Path, copies: int) -> Path:
    """The demo's inputs over ``copies`` copies of their files, no steps."""
    for i in range(copies):
        for name in COPIED:
            shutil.copytree(ROOT / "tests" / "data" / name, folder / "data" / f"c{i:03d}" / name)
    demo = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text(encoding="utf-8"))
    for inp in demo["inputs"]:
        inp["paths"] = [p.replace("../tests/data/", "data/*/") for p in inp["paths"]]
        if "relative_to" in inp.get("options", {}):
            inp["options"]["relative_to"] = "data"
    spec = {"name": "ingest-only", "seed": demo["seed"], "inputs": demo["inputs"], "steps": [],
            "output": {"rejects": True}, "execution": {"executor": "local"}}
    path = folder / "ingest-only.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def measure(checkout: Path, pipeline: Path, run_dir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, "-c", MEASURE, str(pipeline), str(run_dir)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout (its repository root)")
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    checkouts = {"baseline": args.baseline.resolve(), "this": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = ingest_only_pipeline(Path(tmp), args.copies)
        runs: dict[str, list[dict]] = {name: [] for name in checkouts}
        for i in range(args.repeat):
            for name, checkout in checkouts.items():
                runs[name].append(measure(checkout, pipeline, Path(tmp) / f"run-{name}-{i}"))
                print(name, json.dumps(runs[name][-1]), flush=True)
    outputs = {name: {json.dumps({k: v for k, v in r.items() if not k.endswith("_s")}) for r in rs}
               for name, rs in runs.items()}
    cpu = {name: statistics.median(r["cpu_s"] for r in rs) for name, rs in runs.items()}
    print(f"records per run: {runs['this'][0]['records']:,}; identical outputs (plan hash, parts, rejects, stats): "
          f"{len(outputs['this'] | outputs['baseline']) == 1}")
    print(f"median CPU s: baseline {cpu['baseline']:.2f}, this {cpu['this']:.2f}, "
          f"ratio this/baseline {cpu['this'] / cpu['baseline']:.3f}")


if __name__ == "__main__":
    main()
