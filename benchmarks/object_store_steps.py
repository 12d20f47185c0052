"""One step of a run alone on an S3-compatible server (moto, as ``object_store.py`` starts it): the report, or the
mixture step (``repack`` of the tokenized segment into a fresh directory), repeated on one run, so that its wall
time is measured apart from the rest of a run's noise.

    python benchmarks/object_store_steps.py --step report --repeat 5 --pin
    python benchmarks/object_store_steps.py --step pack --repeat 5 --pin --pipeline benchmarks/configs/llama.yaml --corpus CORPUS

The run is made once (in-process local executor; for ``report`` locally and then copied to the store, for
``pack`` on the store), then the step runs ``--repeat`` times: wall and CPU seconds of this process and the
requests the server answered, each time.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (repository first on sys.path)

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from object_store import REPO, load_plan, s3_server, timed_run


def uploaded(local: str, remote) -> None:
    """Every file of the local run directory but its report, copied to ``remote``."""
    for f in sorted(Path(local).rglob("*")):
        if f.is_file() and f.name != "report.html":
            (remote / str(f.relative_to(local))).write_bytes(f.read_bytes())


def step_function(step: str, plan, query: str):
    """The step to time, as a function of the repetition's index, after making the run it works on."""
    from gristmill.core.storage import resolve

    if step == "report":
        from gristmill.pipeline.report import write_report

        local = tempfile.mkdtemp(prefix="gm-steps-")
        timed_run(plan, local)
        remote = resolve(f"s3://bench/report-run?{query}")
        uploaded(local, remote)
        return lambda i: write_report(remote.uri)
    from gristmill.pipeline.pack_cli import repack

    run = f"s3://bench/pack-run?{query}"
    timed_run(plan, run)
    repack(run, f"s3://bench/pack-warm?{query}", {}, executor="local")
    return lambda i: repack(run, f"s3://bench/pack-{i}?{query}", {}, executor="local")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--step", choices=["report", "pack"], required=True)
    ap.add_argument("--pipeline", type=Path, default=REPO / "examples" / "demo.yaml")
    ap.add_argument("--corpus", help="for benchmarks/configs/llama.yaml: the corpus folder ($CORPUS)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pin", action="store_true", help="this process on CPU 0, the S3 server on CPU 1")
    args = ap.parse_args()
    with s3_server(args.pin) as (_, query, requests):
        run_step = step_function(args.step, load_plan(args.pipeline, args.corpus), query)
        walls, cpus, counts = [], [], []
        for i in range(args.repeat):
            mark = requests.mark()
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            run_step(i)
            r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
            walls.append(wall)
            cpus.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
            counts.append(len(requests.since(mark)))
    print(f"{args.step} of {args.pipeline.name} on S3, {args.repeat} times: wall s {', '.join(f'{w:.2f}' for w in walls)}"
          f" (median {statistics.median(walls):.2f}); CPU s {', '.join(f'{c:.2f}' for c in cpus)} (median "
          f"{statistics.median(cpus):.2f}); requests {', '.join(str(n) for n in counts)}")


if __name__ == "__main__":
    main()
