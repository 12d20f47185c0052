"""A scaling model of the pipeline benchmark past two cores, fitted on measured runs.

    python benchmarks/corpus.py --mb 10 --out /tmp/corpus-10
    python benchmarks/corpus.py --mb 20 --out /tmp/corpus-20
    python benchmarks/scaling_model.py --corpus /tmp/corpus-10 /tmp/corpus-20 --repeat 2

Every (corpus, workers) pair runs as ``benchmarks/pipeline.py`` runs it (a fresh process, a local Ray cluster of
``num_cpus=workers``, the process tree pinned to as many cores), and the run's own timeline is read back:
``stats/stats.json`` (``timeline``, ``wall_seconds``) and each segment's ``_SUCCESS`` (its parts = its tasks).

Per run the wall time splits into

* serial ``S``: rows of kind ``start`` (Ray and worker start-up), ``global`` (the global builds: Bloom filter,
  MinHash clustering, tokenizer training, mixture solve and packing, each timed on the driver) and ``driver``
  (plan, commits, stats, the unmeasured rest);
* per streaming segment: worker busy seconds ``W`` (the steps' ``worker_seconds``), its task count ``k`` and the
  per-task overhead ``O = (stream wall x n - W) / k`` (scheduling, reading and writing parts, idle tails).

The model: ``T(n) = S + sum over segments of (W + O k) / min(n, k)``. A segment never uses more cores than it has
tasks. It is fitted on the 1-worker runs (median over repetitions) and checked against the measured 2-worker
runs. Global builds count as serial: that is how the driver waits for them, even where a build fans out (the
Bloom filter's partitions) or trains on threads (the tokenizer); their measured 1 -> 2 worker ratio is printed
beside them. A build that records its fanned-out phases in its stats (``phase.NAME.tasks``, ``.task_seconds``,
``.wall_seconds``; the mixture pack build does) counts as serial only for the rest of its time, and each phase
as a parallel term like a segment's, named ``SEGMENT build: NAME``. With two corpus sizes every term is fitted as ``a + b x MB`` to project a 100x larger corpus; the
tokenizer build (a sample capped at ``sample_bytes``), start-up and the driver's own work are held at their
largest measured values.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline import CONFIG, run_one  # noqa: E402  (benchmarks/pipeline.py)

PROJECT_CORES = (1, 2, 8, 64, 512)
TOKENIZER_SEGMENT = "tokenizer.train_bbpe_v1"  # its build's sample is capped: no growth with the corpus
# Serial terms held constant with corpus size: start-up, and the driver's own work, which is the report
# (~3.4 s at 10 and 20 MB alike) while commits, plan and stats take milliseconds; a two-point slope through
# them would only extrapolate the shared machine's noise.
FIXED_TERMS = ("start", "driver")


# --- measurement --------------------------------------------------------------------------------------------

def build_phases(stats: dict) -> dict[str, dict[str, dict]]:
    """Per segment, the fanned-out phases its global build recorded (``phase.NAME.tasks``, ``.task_seconds``,
    ``.wall_seconds`` among the global step's stats): tasks, their summed seconds and the phase's wall time."""
    phases: dict[str, dict[str, dict]] = {}
    for row in stats.get("global", []):
        parts = row["name"].split(".")
        if len(parts) == 3 and parts[0] == "phase":
            field = {"tasks": "tasks", "task_seconds": "busy", "wall_seconds": "wall"}.get(parts[2])
            if field:
                phases.setdefault(row["segment"], {}).setdefault(parts[1], {})[field] = row["value"]
    return phases


def read_run(run_dir: Path, workers: int) -> dict:
    """Serial seconds by component, and per streaming segment or fanned-out build phase: wall, worker busy
    seconds, tasks. A global build that records its phases counts as serial only for the rest of its time."""
    stats = json.loads((run_dir / "stats" / "stats.json").read_text())
    phases = build_phases(stats)
    serial: dict[str, float] = {}
    segments: dict[str, dict] = {}
    for row in stats["timeline"]:
        if row["kind"] in ("step", "parts"):
            seg = segments.setdefault(row["segment"], {"wall": 0.0, "busy": 0.0})
            seg["wall"] += row["seconds"]
            seg["busy"] += row["worker_seconds"] or 0.0
        elif row["kind"] == "global":
            fanned = sum(p.get("wall", 0.0) for p in phases.get(row["segment"], {}).values())
            key = f"build {row['segment']}"
            serial[key] = serial.get(key, 0.0) + max(0.0, row["seconds"] - fanned)
        else:
            serial[row["kind"]] = serial.get(row["kind"], 0.0) + row["seconds"]
    for name, seg in segments.items():
        success = json.loads((run_dir / "segments" / name / "_SUCCESS").read_text())
        seg["tasks"] = max(1, len(success["parts"]))
    for name, build in phases.items():
        for phase, p in build.items():
            segments[f"{name} build: {phase}"] = {"wall": p.get("wall", 0.0), "busy": p.get("busy", 0.0),
                                                   "tasks": max(1, int(p.get("tasks", 1)))}
    for seg in segments.values():
        seg["overhead"] = max(0.0, seg["wall"] * workers - seg["busy"]) / seg["tasks"]
    return {"wall": stats["wall_seconds"], "serial": serial, "segments": segments}


def builds_as_serial(run: dict) -> dict:
    """The run as the model read it before builds recorded their phases: every build's phases folded back into
    its serial term (the baseline to compare a build's fan-out with, on the same measurements)."""
    serial, segments = dict(run["serial"]), {}
    for name, seg in run["segments"].items():
        if " build: " in name:
            key = f"build {name.split(' build: ')[0]}"
            serial[key] = serial.get(key, 0.0) + seg["wall"]
        else:
            segments[name] = seg
    return {**run, "serial": serial, "segments": segments}


def measure(corpora: list[Path], workers: list[int], repeat: int) -> list[dict]:
    # A discarded first run: it fills the numba kernel cache and the OS page cache, which later runs reuse.
    warm = Path(tempfile.mkdtemp(prefix="gristmill-scaling-warm-"))
    try:
        run_one(CONFIG, corpora[0], 1, warm, pin=True)
    finally:
        shutil.rmtree(warm, ignore_errors=True)
    runs = []
    for rep in range(repeat):
        for corpus in corpora:
            for n in workers:
                keep = Path(tempfile.mkdtemp(prefix="gristmill-scaling-"))
                try:
                    result = run_one(CONFIG, corpus, n, keep, pin=True)
                    runs.append({"corpus": corpus.name, "mb": result["corpus_bytes"] / 1e6, "workers": n,
                                 "repeat": rep} | read_run(keep / f"{corpus.name}-w{n}", n))
                finally:
                    shutil.rmtree(keep, ignore_errors=True)
                print(f"[{rep + 1}/{repeat}] {corpus.name} x{n}: wall {runs[-1]['wall']:.2f} s", flush=True)
    return runs


# --- the model ----------------------------------------------------------------------------------------------

def median_inputs(runs: list[dict]) -> dict:
    """Model inputs: the median over repetitions of every serial component and segment term."""
    med = lambda xs: statistics.median(xs) if xs else 0.0  # noqa: E731
    keys = sorted({k for r in runs for k in r["serial"]})
    names = sorted({s for r in runs for s in r["segments"]})
    return {"mb": runs[0]["mb"], "wall": med([r["wall"] for r in runs]),
            "serial": {k: med([r["serial"].get(k, 0.0) for r in runs]) for k in keys},
            "segments": {s: {f: med([r["segments"][s][f] for r in runs if s in r["segments"]])
                             for f in ("busy", "tasks", "overhead")} for s in names}}


def predict(inputs: dict, cores: int) -> float:
    stream = sum((s["busy"] + s["overhead"] * s["tasks"]) / min(cores, s["tasks"])
                 for s in inputs["segments"].values())
    return sum(inputs["serial"].values()) + stream


def scale_inputs(small: dict, large: dict, mb: float) -> dict:
    """Every term as a + b * MB through the two measured sizes, at ``mb``; a term that did not grow between them
    (a fixed cost within the noise of a shared machine) and the capped tokenizer build are held at the larger
    size's value, as are ``FIXED_TERMS``."""
    def line(a: float, b: float) -> float:
        return b + max(0.0, b - a) * (mb - large["mb"]) / (large["mb"] - small["mb"])

    serial = {k: v if k.endswith(TOKENIZER_SEGMENT) or k in FIXED_TERMS else line(small["serial"].get(k, 0.0), v)
              for k, v in large["serial"].items()}
    segments = {}
    for name, seg in large["segments"].items():
        low = small["segments"].get(name, seg)
        tasks = max(1.0, line(low["tasks"], seg["tasks"]))
        segments[name] = {"busy": line(low["busy"], seg["busy"]), "tasks": round(tasks),
                          "overhead": seg["overhead"]}  # per task: taken as measured at the larger size
    return {"mb": mb, "serial": serial, "segments": segments}


# --- Markdown -----------------------------------------------------------------------------------------------

def inputs_markdown(one: dict, two: dict) -> str:
    lines = [f"**Model inputs, {one['mb']:.0f} MB corpus** (median over repetitions; 1 worker fits the model, "
             "the 2-worker column is the check)", "",
             "| term | 1 worker s | 2 workers s | 1 → 2 ratio | tasks | overhead per task s (1 w / 2 w) |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, v in one["serial"].items():
        w2 = two["serial"].get(key, 0.0)
        lines.append(f"| serial: {key} | {v:.2f} | {w2:.2f} | {v / max(w2, 1e-9):.2f}x | | |")
    for name, seg in one["segments"].items():
        s2 = two["segments"].get(name, seg)
        lines.append(f"| parallel: {name} worker busy | {seg['busy']:.2f} | {s2['busy']:.2f} | "
                     f"{seg['busy'] / max(s2['busy'], 1e-9):.2f}x | {seg['tasks']:.0f} | "
                     f"{seg['overhead']:.3f} / {s2['overhead']:.3f} |")
    return "\n".join(lines)


def check_markdown(pairs: list[tuple[dict, dict]]) -> str:
    lines = ["| corpus MB | measured 1 worker s | model 2 workers s | measured 2 workers s | error |",
             "|---:|---:|---:|---:|---:|"]
    for one, two in pairs:
        p = predict(one, 2)
        lines.append(f"| {one['mb']:.0f} | {one['wall']:.2f} | {p:.2f} | {two['wall']:.2f} | "
                     f"{100 * (p - two['wall']) / two['wall']:+.0f}% |")
    return "\n".join(lines)


def projection_markdown(label: str, inputs: dict) -> str:
    t1 = predict(inputs, 1)
    serial = sum(inputs["serial"].values())
    lines = [f"**{label}** ({inputs['mb']:,.0f} MB): serial S = {serial:.2f} s of T(1) = {t1:.2f} s "
             f"(Amdahl fraction {100 * serial / t1:.1f}%, so at most {t1 / serial:.1f}x)", "",
             "| cores | T(n) s | speed-up | MB/s | serial share of T(n) | largest term at n |",
             "|---:|---:|---:|---:|---:|---|"]
    for n in PROJECT_CORES:
        t = predict(inputs, n)
        terms = dict(inputs["serial"])
        for name, s in inputs["segments"].items():
            terms[f"stream {name}"] = (s["busy"] + s["overhead"] * s["tasks"]) / min(n, s["tasks"])
        top = max(terms, key=terms.get)
        lines.append(f"| {n} | {t:.2f} | {t1 / t:.1f}x | {inputs['mb'] / t:.1f} | {100 * serial / t:.0f}% | "
                     f"{top} ({100 * terms[top] / t:.0f}%) |")
    return "\n".join(lines)


def caps_markdown(inputs: dict, cores: int = 512) -> str:
    """Every term's share of T(n) at ``cores``: which steps cap throughput there."""
    t = predict(inputs, cores)
    terms = {f"serial: {k}": v for k, v in inputs["serial"].items()}
    for name, s in inputs["segments"].items():
        terms[f"stream {name} ({s['tasks']:.0f} tasks)"] = (s["busy"] + s["overhead"] * s["tasks"]) / min(cores,
                                                                                                        s["tasks"])
    lines = [f"| term at {cores} cores, {inputs['mb']:,.0f} MB | s | share of T({cores}) |", "|---|---:|---:|"]
    for k, v in sorted(terms.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {v:.2f} | {100 * v / t:.1f}% |")
    return "\n".join(lines)


def report(runs: list[dict]) -> str:
    sizes = sorted({(r["mb"], r["corpus"]) for r in runs})
    fitted = {}
    for mb, corpus in sizes:
        fitted[corpus] = {n: median_inputs([r for r in runs if r["corpus"] == corpus and r["workers"] == n])
                          for n in (1, 2)}
    largest = fitted[sizes[-1][1]][1]
    parts = [inputs_markdown(fitted[c][1], fitted[c][2]) for _, c in sizes]
    parts.append("**Check: the model fitted on 1 worker against the measured 2-worker runs**\n\n"
                 + check_markdown([(fitted[c][1], fitted[c][2]) for _, c in sizes]))
    parts.append(projection_markdown("Projection, the benchmark corpus", largest))
    if len(sizes) > 1:
        big = scale_inputs(fitted[sizes[0][1]][1], largest, 100 * largest["mb"])
        parts.append(projection_markdown("Projection, a 100x larger corpus", big))
        parts.append(caps_markdown(big))
    parts.append(caps_markdown(largest))
    return "\n\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, nargs="+", default=[], help="corpus dirs from benchmarks/corpus.py")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--runs", type=Path, default=None,
                    help="JSON of earlier measurements (this script's --save) to model instead of running")
    ap.add_argument("--save", type=Path, default=None, help="write the measurements here as JSON")
    ap.add_argument("--builds-serial", action="store_true",
                    help="count every global build as serial, its recorded phases included (the earlier model)")
    args = ap.parse_args()
    runs = json.loads(args.runs.read_text()) if args.runs else measure(args.corpus, [1, 2], args.repeat)
    if args.save:
        args.save.write_text(json.dumps(runs, indent=1))
    if args.builds_serial:
        runs = [builds_as_serial(r) for r in runs]
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
