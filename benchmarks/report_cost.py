"""The run report's cost, this checkout against another (``--before-src``), side by side on copies of the same
finished run directories: CPU seconds and bytes of ``report.html``.

    git worktree add /tmp/report-before <commit>        # or: git archive <commit> | tar -x -C /tmp/report-before
    python benchmarks/report_cost.py --before-src /tmp/report-before RUN_DIR [RUN_DIR ...] --rounds 3

Two figures per checkout and run directory, rounds interleaved (best of the rounds, as other helpers load the
machine): ``gristmill report RUN`` in a fresh process (process tree: interpreter, imports, derived stats, page),
and ``write_report`` inside one process that already imported the pipeline, DuckDB and pyarrow (what the report
adds to a ``gristmill run``, which has those loaded), its first call (imports the report needs on first use,
such as a plotting library) and a later one.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from process_tree import run_measured

ROOT = Path(__file__).resolve().parent.parent

IN_PROCESS = """
import json, sys, time
from gristmill.pipeline import report
from gristmill.pipeline._internal import report_stats  # noqa: F401
import duckdb, pyarrow.parquet  # noqa: F401
times = []
for _ in range(2):
    start = time.process_time()
    report.write_report(sys.argv[1])
    times.append(time.process_time() - start)
print(json.dumps(times))
"""


def measure(src: Path, run_dir: Path) -> dict:
    # Run from the checkout: ``-m`` and ``-c`` put the working directory first on sys.path.
    env, cwd = {"PYTHONPATH": str(src)}, str(src)
    _, cpu, _ = run_measured(["-m", "gristmill.pipeline.cli", "report", str(run_dir)], env=env, cwd=cwd)
    _, _, out = run_measured(["-c", IN_PROCESS, str(run_dir)], env=env, cwd=cwd)
    first, later = json.loads(out.strip().splitlines()[-1])
    return {"process": cpu, "first": first, "later": later, "bytes": (run_dir / "report.html").stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dirs", nargs="+", type=Path, help="finished run directories (copied, not changed)")
    ap.add_argument("--before-src", type=Path, required=True, help="the other checkout (its repository root)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sides = {"before": args.before_src.resolve(), "after": ROOT}
    with tempfile.TemporaryDirectory(prefix="report-cost-") as tmp:
        for run_dir in args.run_dirs:
            copies = {side: Path(tmp) / f"{run_dir.name}-{side}" for side in sides}
            for copy in copies.values():
                shutil.copytree(run_dir, copy)
            best: dict[str, dict] = {}
            for _ in range(args.rounds):
                for side, src in sides.items():
                    got = measure(src, copies[side])
                    best[side] = {k: min(v, best.get(side, got)[k]) for k, v in got.items()}
            print(f"\n{run_dir} (best of {args.rounds} rounds)")
            print("| | before | after | after / before |\n|---|---:|---:|---:|")
            for key, label in (("process", "`gristmill report RUN`, process CPU s"),
                               ("first", "write_report in a run, first call, CPU s"),
                               ("later", "write_report, a later call, CPU s"),
                               ("bytes", "report.html bytes")):
                b, a = best["before"][key], best["after"][key]
                fmt = "{:,}" if key == "bytes" else "{:.2f}"
                print(f"| {label} | {fmt.format(b)} | {fmt.format(a)} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
