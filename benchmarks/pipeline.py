"""Throughput and scaling of the whole LLaMA-style pipeline (benchmarks/configs/llama.yaml) on corpora built by
benchmarks/corpus.py: ingest -> clean -> LID -> heuristics -> filter -> Bloom + MinHash dedup -> tokenizer
training -> tokenize -> mixture -> shards.

    python benchmarks/corpus.py --mb 50  --out benchmarks/data/corpus-50
    python benchmarks/corpus.py --mb 100 --out benchmarks/data/corpus-100
    python benchmarks/pipeline.py --corpus benchmarks/data/corpus-50 benchmarks/data/corpus-100 --workers 1 2

Every (corpus, workers) pair runs in a fresh process with its own local Ray cluster of ``num_cpus=workers``, while
this process samples the resident memory of each Ray worker process (``ray::...``) and of the driver from /proc
every 0.2 s (VmRSS; 'private' is RssAnon, without the shared object-store pages). Per step it reports, from the run directory's ``stats/stages.parquet``:

* MB/s per core = text bytes into the step / seconds the step spent on its batches (summed over workers, so
  per core); ingest uses the raw bytes of the input records (HTML for WARC) instead of extracted text;
* docs/s per core = rows into the step / the same seconds;
* share = the step's core-seconds over all steps' core-seconds (global ``build`` seconds from ``stats.json``
  included).

Per run: wall time per segment (from the driver's log), the streaming-segment wall time the scaling ratio is
taken on, and peak RSS per worker. Results go to ``benchmarks/results/pipeline-<timestamp>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "benchmarks" / "configs" / "llama.yaml"
RESULTS = REPO / "benchmarks" / "results"
# Steps measured for the "up to tokenization" rate: everything before mixture packing.
UP_TO_TOKENIZE = ("ingest", "clean.normalize_v1", "clean.boilerplate_v1", "lang.fasttext_v1",
                  "quality.heuristics_v1", "filter_v1", "dedup.bloom_v1", "dedup.minhash_v1",
                  "tokenizer.train_bbpe_v1", "tokenize.bbpe_v1")
# ... and the same without the tokenizer steps: the data-cleaning pipeline that precedes tokenization.
BEFORE_TOKENIZER = UP_TO_TOKENIZE[:-2]


# --- the child: one pipeline run on a local Ray cluster of N CPUs ---------------------------------------------

def run_child(config: Path, corpus: Path, run_dir: Path, cpus: int) -> None:
    import logging

    os.environ["CORPUS"] = str(corpus.resolve())
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    sys.path.insert(0, str(REPO))
    from gristmill.pipeline.executors import RayExecutor, init_local_ray
    from gristmill.pipeline.plan import build_plan
    from gristmill.pipeline.rundir import RunDir
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.spec import load_pipeline

    init_local_ray(cpus)  # as `gristmill run` starts its embedded Ray, first to import ray
    import ray

    spec, base = load_pipeline(config)
    plan = build_plan(spec, base)
    events: list[tuple[float, str]] = []
    start = time.perf_counter()

    def log(message: str) -> None:
        events.append((time.perf_counter() - start, message))
        print(f"[{events[-1][0]:7.1f}s] {message}", file=sys.stderr, flush=True)

    executor = RayExecutor()
    result = run_plan(plan, RunDir(run_dir), executor, force=True, log=log)
    ray.shutdown()
    print(json.dumps({"events": events, "seconds": result.seconds}))


# --- the parent: memory sampling and the tables ---------------------------------------------------------------

def _proc_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from the parent pids in /proc/PID/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


_TICK = os.sysconf("SC_CLK_TCK")


def _memory(pid: int) -> tuple[str, int, int, float] | None:
    """(process title, RSS bytes, anonymous RSS bytes, CPU seconds so far) from /proc/PID/{cmdline,status,stat}."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    kb = lambda key: int(fields.get(key, "0 kB").split()[0]) * 1024  # noqa: E731
    return title[:80], kb("VmRSS"), kb("RssAnon"), (int(stat[11]) + int(stat[12])) / _TICK


class MemorySampler:
    """Peak RSS per process of a process tree (read from /proc every ``interval`` s), split into Ray workers
    (``ray::`` process titles: tasks and actors running stages) and the driver (the run's main process)."""

    def __init__(self, root_pid: int, interval: float = 0.2):
        self.root_pid = root_pid
        self.interval = interval
        self.peaks: dict[int, tuple[str, int, int]] = {}  # pid -> (title, peak rss, peak anonymous rss)
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (kind, CPU seconds last seen)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in _proc_tree(self.root_pid):
                mem = _memory(pid)
                if mem is None:
                    continue
                title = "driver" if pid == self.root_pid else mem[0]
                old = self.peaks.get(pid, (title, 0, 0))
                # A worker's title names the task it runs now: keep the one it had at its peak (ray::IDLE
                # when the peak outlived its task), but never lose the ray:: prefix that marks a worker.
                keep = title if mem[1] > old[1] and (title.startswith("ray::") or not old[0].startswith("ray::")) \
                    else old[0]
                self.peaks[pid] = (keep, max(old[1], mem[1]), max(old[2], mem[2]))
                self.cpu[pid] = ("worker" if keep.startswith("ray::") else "driver" if pid == self.root_pid
                                 else "ray system (raylet, GCS, agents)", mem[3])
            self._stop.wait(self.interval)

    def summary(self) -> dict:
        workers = [(t, r, p) for t, r, p in self.peaks.values() if t.startswith("ray::")]
        driver = next(((r, p) for t, r, p in self.peaks.values() if t == "driver"), (0, 0))
        return {
            "worker_peak_rss_mb": max((r for _, r, _ in workers), default=0) / 2**20,
            "worker_peak_private_mb": max((p for _, _, p in workers), default=0) / 2**20,
            "workers_seen": len(workers),
            "driver_peak_rss_mb": driver[0] / 2**20,
            "top_workers": sorted(((round(r / 2**20), t) for t, r, _ in workers), reverse=True)[:4],
            "cpu_seconds": {kind: round(sum(c for k, c in self.cpu.values() if k == kind), 1)
                            for kind in sorted({k for k, _ in self.cpu.values()})},
        }


def segment_walls(events: list[tuple[float, str]]) -> dict[str, dict[str, float]]:
    """Wall seconds per segment from the driver's log lines, split into the global step's ``build`` (from
    'segment NAME: building' to 'segment NAME: running') and the streaming pass (from 'running' to 'committed'),
    and the executor's start-up before segment 00."""
    marks: dict[str, dict[str, float]] = {}
    for t, message in events:
        if message.startswith("segment "):
            _, name, what = message.split()[:3]
            name = name.rstrip(":")
            marks.setdefault(name, {}).setdefault(what, t)
    out = {}
    started = next((t for t, m in events if m.startswith("executor ")), None)
    if started is not None:  # once per run, before segment 00: worker processes set up, Ray Data's actors started
        out["executor start-up"] = {"build": 0.0, "stream": 0.0, "start": round(started, 2), "total": round(started, 2)}
    for name, mark in marks.items():
        start = min(t for what, t in mark.items() if what != "committed")
        running, end = mark.get("running", start), mark["committed"]  # run_plan logs every segment's commit
        out[name] = {"build": round(running - start, 2), "stream": round(end - running, 2),
                     "total": round(end - start, 2)}
    return out


def stage_table(run_dir: Path, corpus_bytes: int) -> list[dict]:
    """One row per step: bytes, docs, core-seconds (batch seconds + global build seconds)."""
    import pyarrow.parquet as pq

    stages = pq.read_table(run_dir / "stats" / "stages.parquet").to_pylist()
    stats = json.loads((run_dir / "stats" / "stats.json").read_text())
    builds = stats.get("build_seconds", {})
    rows: dict[int, dict] = {}
    for s in stages:
        row = rows.setdefault(s["position"], {"position": s["position"], "stage": s["stage"], "segment": s["segment"],
                                              "bytes_in": 0, "rows_in": 0, "seconds": 0.0, "build_seconds": 0.0})
        row["bytes_in"] += s["bytes_in"]
        row["rows_in"] += s["rows_in"]
        row["seconds"] += s["seconds"]
    for row in rows.values():
        if row["segment"] in builds and row["segment"].endswith(row["stage"]):
            row["build_seconds"] = builds[row["segment"]]
        if row["stage"] == "ingest":
            row["text_bytes_in"], row["bytes_in"] = row["bytes_in"], corpus_bytes
    return [rows[k] for k in sorted(rows)]


def run_one(config: Path, corpus: Path, cpus: int, keep: Path | None, pin: bool = False) -> dict:
    manifest = json.loads((corpus / "manifest.json").read_text())
    tmp = Path(tempfile.mkdtemp(prefix="gristmill-bench-")) if keep is None else keep
    run_dir = tmp / f"{corpus.name}-w{cpus}"
    cmd = [sys.executable, __file__, "--child", str(config), str(corpus), str(run_dir), str(cpus)]
    if pin:  # the whole process tree (driver, raylet, workers) on the first `cpus` cores: N workers = N cores
        cmd = ["taskset", "-c", f"0-{cpus - 1}", *cmd]
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    cores = os.sched_getaffinity(0)
    if pin:  # the sampler's own CPU time lands on the run's cores, for 1 worker as for 2
        os.sched_setaffinity(0, range(cpus))
    try:
        with MemorySampler(proc.pid) as sampler:
            out, err = proc.communicate()
    finally:
        os.sched_setaffinity(0, cores)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"run {corpus.name} with {cpus} CPUs failed:\n{err[-4000:]}")
    child = json.loads(out.strip().splitlines()[-1])
    walls = segment_walls([tuple(e) for e in child["events"]])
    steps = stage_table(run_dir, manifest["bytes"])
    result = {
        "corpus": corpus.name, "corpus_bytes": manifest["bytes"], "cpus": cpus, "pinned": pin, "process_wall_s": wall,
        "pipeline_wall_s": child["seconds"], "segment_wall_s": walls, "steps": steps,
        "memory": sampler.summary(), "load_before": load_before, "load_after": os.getloadavg(),
    }
    if keep is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return result


# --- Markdown ---------------------------------------------------------------------------------------------

def _core_seconds(step: dict) -> float:
    return step["seconds"] + step["build_seconds"]


def steps_markdown(result: dict) -> str:
    steps = result["steps"]
    total = sum(_core_seconds(s) for s in steps)
    pinned = f", pinned to {result['cpus']} core(s)" if result.get("pinned") else ""
    lines = [f"**{result['corpus']} ({result['corpus_bytes'] / 1e6:.0f} MB), {result['cpus']} worker(s){pinned}**: "
             f"wall {result['pipeline_wall_s']:.1f} s, peak RSS per worker {result['memory']['worker_peak_rss_mb']:.0f}"
             f" MiB (private {result['memory']['worker_peak_private_mb']:.0f} MiB), driver "
             f"{result['memory']['driver_peak_rss_mb']:.0f} MiB, load {result['load_before'][0]:.1f} -> "
             f"{result['load_after'][0]:.1f}; CPU seconds by process kind: "
             + ", ".join(f"{k} {v:.1f}" for k, v in result["memory"].get("cpu_seconds", {}).items()),
             "",
             "| step | stage | MB in | docs in | core-s (batches + build) | MB/s per core | docs/s per core | share |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        cs = _core_seconds(s)
        build = f" + {s['build_seconds']:.1f}" if s["build_seconds"] else ""
        lines.append(f"| {s['position']} | `{s['stage']}` | {s['bytes_in'] / 1e6:.1f} | {s['rows_in']:,} | "
                     f"{s['seconds']:.1f}{build} | {s['bytes_in'] / 1e6 / cs if cs else 0:.1f} | "
                     f"{s['rows_in'] / cs if cs else 0:,.0f} | {100 * cs / total:.1f}% |")
    upto = sum(_core_seconds(s) for s in steps if s["stage"] in UP_TO_TOKENIZE)
    before = sum(_core_seconds(s) for s in steps if s["stage"] in BEFORE_TOKENIZER)
    mb = result["corpus_bytes"] / 1e6
    lines.append(f"| | **total** | {mb:.1f} | | {total:.1f} | {mb / total:.2f} | | 100% |")
    lines.append("")
    lines.append(f"Before the tokenizer (ingest -> dedup): {mb:.1f} MB in {before:.1f} core-s = "
                 f"**{mb / before:.2f} MB/s per core**; up to and including tokenization: {upto:.1f} core-s = "
                 f"**{mb / upto:.2f} MB/s per core** (in-stage time); end to end "
                 f"{mb / (result['pipeline_wall_s'] * result['cpus']):.2f} MB/s per core of wall time. Segment wall s: "
                 + ", ".join(f"{k} {v['total']:.1f}" for k, v in result["segment_wall_s"].items()))
    return "\n".join(lines)


def scaling_markdown(results: list[dict]) -> str:
    """Per segment: the global step's build (driver-coordinated) and the streaming pass (every streaming step of
    the segment, in parallel over parts), 1 vs 2 workers; then the sum of the streaming passes and the run."""
    lines = ["| corpus | segment | phase | wall s, 1 worker | wall s, 2 workers | speed-up |",
             "|---|---|---|---:|---:|---:|"]
    by = {(r["corpus"], r["cpus"]): r for r in results}
    for corpus in dict.fromkeys(r["corpus"] for r in results):
        one, two = by.get((corpus, 1)), by.get((corpus, 2))
        if not one or not two:
            continue
        streams = [0.0, 0.0]
        for seg, w1 in one["segment_wall_s"].items():
            w2 = two["segment_wall_s"].get(seg)
            if not w2:
                continue
            for phase in ("start", "build", "stream"):
                if w1.get(phase) or w2.get(phase):
                    lines.append(f"| {corpus} | {seg} | {phase} | {w1[phase]:.1f} | {w2[phase]:.1f} | "
                                 f"{w1[phase] / max(w2[phase], 1e-9):.2f}x |")
            streams[0] += w1["stream"]
            streams[1] += w2["stream"]
        lines.append(f"| {corpus} | **all streaming passes** | stream | {streams[0]:.1f} | {streams[1]:.1f} | "
                     f"**{streams[0] / max(streams[1], 1e-9):.2f}x** |")
        lines.append(f"| {corpus} | **whole run** | | {one['pipeline_wall_s']:.1f} | {two['pipeline_wall_s']:.1f} | "
                     f"{one['pipeline_wall_s'] / two['pipeline_wall_s']:.2f}x |")
    return "\n".join(lines)


def _streams(result: dict) -> float:
    return sum(w["stream"] for w in result["segment_wall_s"].values())


def _worker_cpu(result: dict) -> float:
    return result["memory"].get("cpu_seconds", {}).get("worker", 0.0)


def repeat_summary_markdown(reps: list[list[dict]]) -> str:
    """Speed-ups 1 -> 2 workers per repetition and their median, for the streaming segment 00 (ingest -> filter),
    all streaming passes, and the whole run (start-up and global builds included); and the workers' CPU seconds
    at 2 workers over those at 1 for the same work. A few percent of that is the second worker's own stage set-up;
    well above it the two cores slowed each other (a busy host on this shared machine), which no executor can win
    back, so a low speed-up in that repetition is the machine's, not idle time."""
    import statistics

    def speed_up(wall):
        return lambda one, two: wall(one) / max(wall(two), 1e-9)

    ratios_of = {"segment 00 (stream)": speed_up(lambda r: r["segment_wall_s"]["00-ingest"]["stream"]),
                 "all streaming passes": speed_up(_streams), "whole run": speed_up(lambda r: r["pipeline_wall_s"]),
                 "worker CPU-s, 2 ÷ 1 workers": lambda one, two: _worker_cpu(two) / max(_worker_cpu(one), 1e-9)}
    lines = ["### Scaling over the repetitions", "",
             "| corpus | measure | per repetition | median |", "|---|---|---|---:|"]
    for corpus in dict.fromkeys(r["corpus"] for rs in reps for r in rs):
        for name, ratio in ratios_of.items():
            ratios = []
            for rs in reps:
                by = {r["cpus"]: r for r in rs if r["corpus"] == corpus}
                if 1 in by and 2 in by:
                    ratios.append(ratio(by[1], by[2]))
            if ratios:
                lines.append(f"| {corpus} | {name} | {', '.join(f'{x:.2f}x' for x in ratios)} | "
                             f"**{statistics.median(ratios):.2f}x** |")
    return "\n".join(lines)


def memory_markdown(results: list[dict]) -> str:
    lines = ["| workers | corpus | run | MB | wall s | peak RSS per worker MiB | private MiB | driver MiB | "
             "wall s / MB |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(results, key=lambda r: (r["cpus"], r["corpus_bytes"], r.get("repeat", 0))):
        m = r["memory"]
        lines.append(f"| {r['cpus']} | {r['corpus']} | {r.get('repeat', 0) + 1} | {r['corpus_bytes'] / 1e6:.0f} | "
                     f"{r['pipeline_wall_s']:.1f} | {m['worker_peak_rss_mb']:.0f} | "
                     f"{m['worker_peak_private_mb']:.0f} | {m['driver_peak_rss_mb']:.0f} | "
                     f"{r['pipeline_wall_s'] / (r['corpus_bytes'] / 1e6):.2f} |")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        run_child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, nargs="+", required=True, help="corpus dirs from benchmarks/corpus.py")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray num_cpus per run")
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--keep", type=Path, default=None, help="keep run directories under this folder")
    ap.add_argument("--pin", action="store_true",
                    help="confine each run's whole process tree to as many cores as it has workers (taskset)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every (corpus, workers) pair this many times, interleaved, and report the median ratios")
    args = ap.parse_args()
    results = []
    for rep in range(args.repeat):
        for corpus in args.corpus:
            for cpus in args.workers:
                print(f"[{rep + 1}/{args.repeat}] running {corpus.name} with {cpus} worker(s) "
                      f"(load {os.getloadavg()[0]:.1f}) ...", flush=True)
                results.append(run_one(args.config, corpus, cpus, args.keep, args.pin) | {"repeat": rep})
                print(steps_markdown(results[-1]) + "\n", flush=True)
    reps = [[r for r in results if r["repeat"] == rep] for rep in range(args.repeat)]
    text = "\n\n".join([*(steps_markdown(r) for r in reps[0]),
                        *(f"### Scaling, repetition {i + 1} of {len(reps)}\n\n{scaling_markdown(rs)}"
                          for i, rs in enumerate(reps)),
                        *([repeat_summary_markdown(reps)] if len(reps) > 1 else []),
                        "### Memory and cost as the corpus grows", memory_markdown(results)])
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"pipeline-{stamp}.json").write_text(json.dumps(results, indent=1))
    (RESULTS / f"pipeline-{stamp}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
