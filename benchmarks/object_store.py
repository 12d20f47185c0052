"""Object-store overhead: the same pipeline with its run directory on the local disk and on an S3-compatible
server (moto's server mode, in its own process on 127.0.0.1), side by side in one run.

    python benchmarks/object_store.py --repeat 3                      # examples/demo.yaml
    python benchmarks/object_store.py --pipeline benchmarks/configs/llama.yaml --corpus benchmarks/data/corpus-50

Each run is the in-process local executor (so the pipeline's CPU is this process's, the S3 server's is not) into a
fresh run directory; local and S3 runs alternate. Reported per run: wall seconds, this process's CPU seconds
(user + system), and the S3/local ratios of the medians. moto keeps objects in memory, so the S3 figures are the
cost of the object-store code path (whole-object PUTs, ranged GETs, listings over HTTP), not of a network.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (repository first on sys.path)

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=f"http://127.0.0.1:{port}", region="us-east-1",
                      allow_bucket_creation=True).create_dir("bench")
    return server, f"endpoint_override=127.0.0.1:{port}&scheme=http"


def load_plan(pipeline: Path, corpus: str | None):
    from gristmill.pipeline import build_plan
    from gristmill.pipeline.spec import load_pipeline

    if corpus:
        os.environ["CORPUS"] = str(Path(corpus).resolve())
    spec, base = load_pipeline(pipeline)
    local = spec.execution.model_copy(update={"executor": "local"})
    return build_plan(spec.model_copy(update={"execution": local}), base)


def timed_run(plan, run_dir: str) -> tuple[float, float]:
    from gristmill.pipeline import LocalExecutor, RunDir, run_plan

    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run_plan(plan, RunDir(run_dir), LocalExecutor(), log=lambda m: None)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipeline", type=Path, default=REPO / "examples" / "demo.yaml")
    ap.add_argument("--corpus", help="for benchmarks/configs/llama.yaml: the corpus folder ($CORPUS)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.update(S3_ENV)
    server, query = start_s3()
    try:
        plan = load_plan(args.pipeline, args.corpus)
        timed_run(plan, tempfile.mkdtemp(prefix="gm-warm-"))  # numba caches, model loads: not measured
        rows = {"local": [], "s3": []}
        for i in range(args.repeat):
            rows["local"].append(timed_run(plan, tempfile.mkdtemp(prefix="gm-local-")))
            rows["s3"].append(timed_run(plan, f"s3://bench/run-{i}?{query}"))
    finally:
        server.terminate()
        server.wait()
    print(f"pipeline {args.pipeline.relative_to(REPO) if args.pipeline.is_relative_to(REPO) else args.pipeline}, "
          f"{args.repeat} runs each, local executor\n")
    print("| run directory | wall s (each) | CPU s (each) | median wall | median CPU |")
    print("|---|---|---|---:|---:|")
    med = {}
    for where, runs in rows.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        med[where] = (statistics.median(walls), statistics.median(cpus))
        print(f"| {where} | {', '.join(f'{w:.2f}' for w in walls)} | {', '.join(f'{c:.2f}' for c in cpus)} "
              f"| {med[where][0]:.2f} | {med[where][1]:.2f} |")
    print(f"\nS3 / local: wall {med['s3'][0] / med['local'][0]:.2f}x, CPU {med['s3'][1] / med['local'][1]:.2f}x")


if __name__ == "__main__":
    main()
