"""The demo (`examples/demo.yaml`) through each executor, side by side: wall seconds and CPU seconds of the whole
process tree (the `gristmill run` process, and with Ray its raylet, GCS and workers, all reaped when Ray shuts down).

    python benchmarks/demo_executors.py --repeat 3
    python benchmarks/demo_executors.py --repeat 3 --variant actors=stateful_stages:actors   # an execution setting

Each run is a fresh `gristmill run ... --force --quiet` process into a fresh run directory; runs of the variants
alternate, so the host's load touches them alike. A variant is NAME or NAME=KEY:VALUE[,KEY:VALUE] (settings of the
YAML's `execution:` block); NAME `local` uses the local executor, any other the Ray executor.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (repository first on sys.path)

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo.yaml"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pipeline_file(settings: dict[str, str], folder: Path) -> Path:
    """The demo with ``settings`` added to its ``execution:`` block, beside the demo (its paths are relative)."""
    text = DEMO.read_text()
    text += "".join(f"\n  {key}: {value}" for key, value in settings.items())
    path = folder / f".demo-bench-{os.getpid()}.yaml"
    path.write_text(text)
    return path


def run_once(executor: str, pipeline: Path, run_dir: Path) -> tuple[float, float]:
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "gristmill.pipeline.cli", "run", str(pipeline), "--run-dir", str(run_dir),
                    "--executor", executor, "--force", "--quiet"], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, _children_cpu() - cpu


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition("=")
    settings = dict(item.split(":", 1) for item in rest.split(",") if item)
    return name, settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variant", action="append", help="NAME[=KEY:VALUE,...] (default: local and ray)")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in (args.variant or ["local", "ray"])]
    files = {name: _pipeline_file(settings, DEMO.parent) if settings else DEMO for name, settings in variants}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
    try:
        with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
            for i in range(args.repeat):
                for name, _ in variants:
                    executor = "local" if name == "local" else "ray"
                    wall, cpu = run_once(executor, files[name], Path(tmp) / f"{name}-{i}")
                    results[name].append((wall, cpu))
                    print(f"repeat {i}: {name}: wall {wall:.2f} s, CPU {cpu:.2f} s", flush=True)
    finally:
        for path in files.values():
            if path != DEMO:
                path.unlink(missing_ok=True)
    print("\n| variant | runs | wall s (median) | CPU s (median) |\n|---|---:|---:|---:|")
    for name, runs in results.items():
        print(f"| {name} | {len(runs)} | {statistics.median(w for w, _ in runs):.2f} | "
              f"{statistics.median(c for _, c in runs):.2f} |")


if __name__ == "__main__":
    main()
