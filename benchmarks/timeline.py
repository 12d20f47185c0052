"""Where a streaming pass's wall time goes, per Ray worker, from Ray's task timeline: one run of the LLaMA-style
pipeline (benchmarks/configs/llama.yaml) on an embedded local Ray of N CPUs, pinned to the first N cores.

    python benchmarks/timeline.py --corpus benchmarks/data/corpus-400 --cpus 2

For each segment's streaming pass (from the driver's 'running' line to its 'committed' line) and each worker
process that ran its tasks: the number of tasks, when the first started, the seconds busy in tasks, the idle gaps
between them, and the busy share of the pass. The figures in BENCHMARKS.md (issue 9: gaps after each task, workers
replaced after tokenizer training, busy 98-99%) come from this. Results go to ``benchmarks/results/timeline-<timestamp>.md``.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (the repository before benchmarks/ on sys.path)

import argparse
import collections
import json
import logging
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "benchmarks" / "configs" / "llama.yaml"
RESULTS = REPO / "benchmarks" / "results"
# Ray Data's map tasks (operator path) and the executor's plain segment tasks (all-task segments).
TASK_NAMES = ("_map_task", "_run_segment_task")


def run_with_timeline(corpus: Path, cpus: int) -> tuple[list[tuple[float, str]], list[dict]]:
    """One pipeline run; returns the driver's log lines (wall clock, message) and Ray's timeline events."""
    from gristmill.pipeline.executors import RayExecutor, init_local_ray
    from gristmill.pipeline.plan import build_plan
    from gristmill.pipeline.rundir import RunDir
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.spec import load_pipeline

    os.environ["CORPUS"] = str(corpus.resolve())
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    os.sched_setaffinity(0, range(cpus))  # raylet and workers inherit it: N workers on N cores
    init_local_ray(cpus)  # first to import ray: it keeps the embedded Ray on loopback
    import ray

    spec, base = load_pipeline(CONFIG)
    events: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory() as run_dir:
        run_plan(build_plan(spec, base), RunDir(run_dir), RayExecutor(),
                 force=True, log=lambda m: events.append((time.time(), m)))
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            ray.timeline(filename=f.name)
            timeline = json.load(open(f.name))
    ray.shutdown()
    return events, timeline


def passes(events: list[tuple[float, str]]) -> list[tuple[str, float, float]]:
    """(segment, start, end) of each streaming pass, in wall-clock seconds."""
    running = {m.split()[1].rstrip(":"): t for t, m in events if m.startswith("segment ") and " running " in m}
    committed = {m.split()[1].rstrip(":"): t for t, m in events if m.startswith("segment ") and " committed " in m}
    return [(name, start, committed[name]) for name, start in running.items() if name in committed]


def worker_rows(timeline: list[dict], start: float, end: float) -> list[dict]:
    """Per worker process: the segment tasks that started in [start, end) and the idle time between them."""
    by_worker = collections.defaultdict(list)
    for e in timeline:
        if e.get("ph") == "X" and e["name"].endswith(TASK_NAMES) and start * 1e6 <= e["ts"] < end * 1e6:
            by_worker[e["tid"]].append((e["ts"] / 1e6, e["dur"] / 1e6))
    rows = []
    for worker, tasks in by_worker.items():
        tasks.sort()
        busy = sum(d for _, d in tasks)
        gaps = sum(tasks[i + 1][0] - (tasks[i][0] + tasks[i][1]) for i in range(len(tasks) - 1))
        rows.append({"worker": worker.split(":")[-1][-6:], "tasks": len(tasks), "first": tasks[0][0] - start,
                     "busy": busy, "gaps": gaps, "share": busy / (end - start)})
    return rows


def markdown(events: list[tuple[float, str]], timeline: list[dict], corpus: Path, cpus: int) -> str:
    lines = [f"**{corpus.name}, {cpus} CPU(s)**", "",
             "| pass | wall s | worker | tasks | first task at s | busy s | gaps s | busy share |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for name, start, end in passes(events):
        for row in worker_rows(timeline, start, end):
            lines.append(f"| {name} | {end - start:.2f} | {row['worker']} | {row['tasks']} | {row['first']:.2f} | "
                         f"{row['busy']:.2f} | {row['gaps']:.2f} | {100 * row['share']:.0f}% |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True, help="a corpus dir from benchmarks/corpus.py")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray, pinned to the first N cores")
    args = ap.parse_args()
    events, timeline = run_with_timeline(args.corpus, args.cpus)
    text = markdown(events, timeline, args.corpus, args.cpus)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"timeline-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.write_text(text + "\n")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
