"""Task-level behaviour on 1, 2 and 4 Ray nodes started on this machine (``ray start``: a head that runs no tasks
and N one-CPU worker nodes, tests/ray_nodes.py). The nodes share this machine's cores, so wall time does not
measure a speed-up: what this measures is how busy each worker is during each streaming pass and how much of the
pass goes to scheduling (gaps between a worker's tasks, the wait before its first task).

    python benchmarks/nodes.py --nodes 1 2 4                  # examples/demo.yaml
    python benchmarks/nodes.py --nodes 1 2 4 --pipeline benchmarks/configs/llama.yaml --corpus benchmarks/data/corpus-50

Per node count: the driver's wall per streaming pass and, per worker, tasks, busy seconds, gap seconds and busy
share (benchmarks/timeline.py's accounting over ``ray.timeline()``). Results go to
``benchmarks/results/nodes-<timestamp>.md``.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (the repository before benchmarks/ on sys.path)

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO / "tests"))  # ray_nodes: the same cluster the multi-node tests start

import ray_nodes  # noqa: E402
from timeline import passes, worker_rows  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def run_on_nodes(pipeline: Path, workers: int) -> tuple[list, list, float]:
    """One run on a fresh cluster of ``workers`` one-CPU nodes: (driver log, Ray timeline, wall seconds)."""
    cluster = ray_nodes.start(worker_cpus=[1] * workers)
    try:
        os.environ.update({k: cluster.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")})
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        import ray

        from gristmill.pipeline import RayExecutor, RunDir, build_plan, run_plan
        from gristmill.pipeline.spec import load_pipeline

        ray.init(address=cluster.address, log_to_driver=False)
        spec, base = load_pipeline(pipeline)
        events: list[tuple[float, str]] = []
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            run_plan(build_plan(spec, base), RunDir(run_dir), RayExecutor(),
                     log=lambda m: events.append((time.time(), m)))
        wall = time.perf_counter() - start
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            ray.timeline(filename=f.name)
            timeline = json.load(open(f.name))
        ray.shutdown()
        return events, timeline, wall
    finally:
        ray_nodes.stop(cluster.root)


def markdown(results: dict[int, tuple[list, list, float]], pipeline: Path) -> str:
    lines = [f"**{pipeline.name}** on N one-CPU worker nodes sharing this machine's {os.cpu_count()} cores", "",
             "| nodes | run wall s | pass | pass wall s | workers | tasks | busy s | gaps s | first task at s "
             "| busy share (min-max) |", "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for n, (events, timeline, wall) in results.items():
        for name, start, end in passes(events):
            rows = worker_rows(timeline, start, end)
            if not rows:
                continue
            shares = [r["share"] for r in rows]
            lines.append(
                f"| {n} | {wall:.1f} | {name} | {end - start:.2f} | {len(rows)} | {sum(r['tasks'] for r in rows)} "
                f"| {sum(r['busy'] for r in rows):.2f} | {sum(r['gaps'] for r in rows):.2f} "
                f"| {max(r['first'] for r in rows):.2f} | {100 * min(shares):.0f}-{100 * max(shares):.0f}% |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--pipeline", type=Path, default=REPO / "examples" / "demo.yaml")
    ap.add_argument("--corpus", type=Path, help="for benchmarks/configs/llama.yaml: the corpus folder ($CORPUS)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one node count, results as JSON to this file
    args = ap.parse_args()
    if args.corpus:
        os.environ["CORPUS"] = str(args.corpus.resolve())
    if args.child:
        args.child.write_text(json.dumps(run_on_nodes(args.pipeline, args.nodes[0])))
        return 0
    results = {}
    for n in args.nodes:
        # A process keeps the first cluster's auth token: each cluster gets a driver process of its own.
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run([sys.executable, __file__, "--nodes", str(n), "--pipeline", str(args.pipeline),
                            "--child", out.name], check=True)
            results[n] = json.loads(Path(out.name).read_text())
    text = markdown(results, args.pipeline)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"nodes-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.write_text(text + "\n")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
