"""The demo (`examples/demo.yaml`) through each executor, side by side: wall seconds and CPU seconds of the whole
process tree (the `gristmill run` process and, with Ray, its GCS, raylet and workers). Ray's processes reap their
own children without waiting for them, so their CPU never reaches RUSAGE_CHILDREN: every descendant's CPU time is
sampled from /proc every 0.1 s instead (this process is made their subreaper, so none escapes the tree), and the
last sample of each process is summed (a process's last 0.1 s at most is missed).

    python benchmarks/demo_executors.py --repeat 3
    python benchmarks/demo_executors.py --repeat 2 --baseline /tmp/base --variant base-ray --variant ray

Each run is a fresh `gristmill run ... --force --quiet` process into a fresh run directory; runs of the variants
alternate, so the host's load touches them alike. A variant is NAME or NAME=KEY:VALUE[,KEY:VALUE] (settings added
to the YAML's `execution:` block); NAME ending in `local` uses the local executor, any other the Ray executor; NAME
starting with `base-` runs the code of another checkout (``--baseline``, e.g. ``git worktree add /tmp/base COMMIT``).
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (repository first on sys.path)

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def _become_subreaper() -> None:
    """Orphaned descendants (Ray's workers once their raylet is gone) are re-parented to this process, so they stay
    in the sampled tree and are reaped here (Linux ``PR_SET_CHILD_SUBREAPER``)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)


def _reap_all(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.1)


def _descendants_cpu() -> dict[int, float]:
    """CPU seconds so far of every process below this one, by pid."""
    parent, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS
    me, out = os.getpid(), {}
    for pid in cpu:
        p = parent.get(pid)
        while p is not None and p > 1 and p != me:
            p = parent.get(p)
        if p == me:
            out[pid] = cpu[pid]
    return out


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: dict[int, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.seen.update(_descendants_cpu())
            self.stopped.wait(0.1)

    def total(self) -> float:
        self.stopped.set()
        self.join()
        return sum(self.seen.values())


def _pipeline_file(name: str, settings: dict[str, str], root: Path) -> Path:
    """The demo with ``settings`` added to its ``execution:`` block, beside the demo (its paths are relative)."""
    demo = root / "examples" / "demo.yaml"
    if not settings:
        return demo
    text = demo.read_text() + "".join(f"\n  {key}: {value}" for key, value in settings.items())
    path = demo.parent / f".demo-bench-{os.getpid()}-{name}.yaml"
    path.write_text(text)
    return path


def run_once(executor: str, pipeline: Path, run_dir: Path, root: Path) -> tuple[float, float]:
    sampler = _Sampler()
    sampler.start()
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-m", "gristmill.pipeline.cli", "run", str(pipeline), "--run-dir", str(run_dir),
                    "--executor", executor, "--force", "--quiet"], check=True, cwd=root, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    _reap_all()
    return wall, sampler.total()


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition("=")
    settings = dict(item.split(":", 1) for item in rest.split(",") if item)
    return name, settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--variant", action="append", help="NAME[=KEY:VALUE,...] (default: local and ray)")
    ap.add_argument("--baseline", type=Path, help="checkout whose code the base-* variants run")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in (args.variant or ["local", "ray"])]
    roots = {name: args.baseline.resolve() if name.startswith("base-") else REPO for name, _ in variants}
    if any(name.startswith("base-") for name, _ in variants) and args.baseline is None:
        ap.error("base-* variants need --baseline")
    _become_subreaper()
    files = {name: _pipeline_file(name, settings, roots[name]) for name, settings in variants}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
    try:
        with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
            for i in range(args.repeat):
                for name, _ in variants:
                    executor = "local" if name.endswith("local") else "ray"
                    wall, cpu = run_once(executor, files[name], Path(tmp) / f"{name}-{i}", roots[name])
                    results[name].append((wall, cpu))
                    print(f"repeat {i}: {name}: wall {wall:.2f} s, CPU {cpu:.2f} s", flush=True)
    finally:
        for path in files.values():
            if path.name.startswith(".demo-bench-"):
                path.unlink(missing_ok=True)
    print("\n| variant | runs | wall s (median) | CPU s (median) |\n|---|---:|---:|---:|")
    for name, runs in results.items():
        print(f"| {name} | {len(runs)} | {statistics.median(w for w, _ in runs):.2f} | "
              f"{statistics.median(c for _, c in runs):.2f} |")


if __name__ == "__main__":
    main()
