"""Storage amplification of a run: bytes the run directory holds per input byte, by directory, for this checkout
and (``--before-src``) another one, side by side; and the CPU cost of reading the segments back (lazily, each
column from the segment that wrote it, against the whole-part files of the other layout).

    # the old layout: a checkout of the commit before (git worktree add /tmp/gm-before <commit>)
    python benchmarks/storage_amplification.py --before-src /tmp/gm-before
    python benchmarks/storage_amplification.py --before-src /tmp/gm-before \\
        --pipeline benchmarks/configs/llama.yaml --corpus /tmp/corpus-20

Both runs use the local executor (in-process), each in a child process measured as a process tree
(benchmarks/process_tree.py). Input bytes are the input files' sizes as plan.json lists them (compressed where
the inputs are). Reads are timed in this process with this checkout's reader, which reads a segment committed by
an older gristmill as whole-part files: the same code, the two layouts. The shards of both runs are compared
byte for byte.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import json
import os
import shutil
from pathlib import Path

from process_tree import least_cpu, run_measured

ROOT = Path(__file__).resolve().parent.parent


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else (
        path.stat().st_size if path.exists() else 0)


def breakdown(run_dir: Path) -> dict[str, int]:
    """Bytes per top-level entry of the run directory, segments/ and dedup/ one level deeper."""
    out: dict[str, int] = {}
    for entry in sorted(run_dir.iterdir()):
        if entry.name in ("segments", "dedup") and entry.is_dir():
            for sub in sorted(entry.iterdir()):
                out[f"{entry.name}/{sub.name}"] = dir_bytes(sub)
        else:
            out[entry.name] = dir_bytes(entry)
    return out


def input_bytes(run_dir: Path) -> int:
    plan = json.loads((run_dir / "plan.json").read_text())
    return sum(f["bytes"] for f in plan["input_files"])


def run_pipeline(src: Path, pipeline: Path, run_dir: Path) -> tuple[float, float]:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    wall, cpu, _ = run_measured(["-m", "gristmill.pipeline.cli", "run", str(pipeline), "--run-dir", str(run_dir),
                                 "--force", "--executor", "local"], env={"PYTHONPATH": str(src)}, cwd=str(src))
    return wall, cpu


def read_costs(run_dir: Path, repeat: int) -> dict[str, float]:
    """CPU seconds to read the run's segments back: every part whole, one column, and DuckDB over the views."""
    from gristmill.pipeline.inspection import connect
    from gristmill.pipeline.rundir import RunDir

    rd = RunDir(run_dir)
    names = [seg.name for seg in rd.committed_segments()]
    last = rd.segment_parts(names[-1])
    tokenized = next(rd.segment_parts(n) for n in reversed(names)
                     if rd.segment_parts(n) and "tokens" in rd.segment_parts(n)[0].read_parquet_schema().names)

    def read_all():
        for name in names[1:]:  # what the next segment's head reads: every column of every part
            for part in rd.segment_parts(name):
                part.read_parquet()

    def duck():
        con = connect(run_dir)
        con.execute("SELECT source, count(*), sum(strlen(text)), sum(n_tokens) FROM documents GROUP BY 1").fetchall()
        con.close()

    return {
        "every part of segments 01.. whole (the heads' reads)": least_cpu(read_all, repeat)[1],
        "last segment, text only (dedup/tokenizer-style read)": least_cpu(
            lambda: [p.read_parquet(["doc_id", "text"]) for p in last], repeat)[1],
        "tokenized segment, source+tokens (pack's read)": least_cpu(
            lambda: [p.read_parquet(["source", "tokens", "n_tokens"]) for p in tokenized], repeat)[1],
        "DuckDB: per-source count/bytes/tokens over `documents`": least_cpu(duck, repeat)[1],
    }


def shards_identical(a: Path, b: Path) -> bool:
    files = sorted(p.name for p in (a / "shards").iterdir())
    return files == sorted(p.name for p in (b / "shards").iterdir()) and all(
        (a / "shards" / f).read_bytes() == (b / "shards" / f).read_bytes() for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipeline", type=Path, default=ROOT / "examples" / "demo.yaml")
    ap.add_argument("--corpus", type=Path, help="CORPUS for a pipeline that reads ${CORPUS} (benchmarks/corpus.py)")
    ap.add_argument("--before-src", type=Path, help="a checkout with the layout to compare against")
    ap.add_argument("--out", type=Path, default=Path("/tmp/storage-amplification"))
    ap.add_argument("--repeat", type=int, default=3, help="reads: the fastest of this many")
    ap.add_argument("--runs", type=int, default=2, help="pipeline runs per variant, alternated; the least CPU is kept "
                    "(the first run of a process pays numba's compile cache and cold files)")
    args = ap.parse_args()
    if args.corpus is not None:
        os.environ["CORPUS"] = str(args.corpus.resolve())
    pipeline = args.pipeline.resolve()
    variants = {"after": ROOT}
    if args.before_src is not None:
        variants = {"before": args.before_src.resolve(), "after": ROOT}
    results = {}
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, src in variants.items():
            timings[name].append(run_pipeline(src, pipeline, args.out / name))
    for name in variants:
        run_dir = args.out / name
        wall, cpu = min(timings[name], key=lambda t: t[1])
        parts = breakdown(run_dir)
        total, inputs = sum(parts.values()), input_bytes(run_dir)
        results[name] = {"wall_s": wall, "cpu_s": cpu, "input_bytes": inputs, "run_dir_bytes": total,
                         "per_input_byte": total / inputs, "breakdown": parts,
                         "reads_cpu_s": read_costs(run_dir, args.repeat)}
    if "before" in results:
        results["shards_identical"] = shards_identical(args.out / "before", args.out / "after")
    print(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: dict) -> str:
    names = [n for n in ("before", "after") if n in results]
    rows = sorted(set().union(*(results[n]["breakdown"] for n in names)))
    inputs = results[names[-1]]["input_bytes"]
    lines = [f"input: {inputs:,} bytes", "",
             "| path | " + " | ".join(f"{n} (KB)" for n in names) + " | " + " | ".join(
                 f"{n} per input byte" for n in names) + " |",
             "|---|" + "---:|" * (2 * len(names))]
    for row in rows + ["**total**"]:
        values = [results[n]["run_dir_bytes"] if row == "**total**" else results[n]["breakdown"].get(row, 0)
                  for n in names]
        lines.append(f"| {row} | " + " | ".join(f"{v / 1024:,.0f}" for v in values) + " | " + " | ".join(
            f"{v / inputs:.2f}" for v in values) + " |")
    lines += ["", "| CPU seconds | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines.append("| pipeline run (process tree) | " + " | ".join(f"{results[n]['cpu_s']:.2f}" for n in names) + " |")
    for key in results[names[-1]]["reads_cpu_s"]:
        lines.append(f"| {key} | " + " | ".join(f"{results[n]['reads_cpu_s'][key]:.3f}" for n in names) + " |")
    if "shards_identical" in results:
        lines.append(f"\nshards byte-identical: {results['shards_identical']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
