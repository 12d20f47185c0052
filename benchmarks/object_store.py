"""Object-store overhead: the same pipeline with its run directory on the local disk and on an S3-compatible
server (moto's server mode, in its own process on 127.0.0.1), side by side in one run.

    python benchmarks/object_store.py --repeat 3                      # examples/demo.yaml
    python benchmarks/object_store.py --pipeline benchmarks/configs/llama.yaml --corpus benchmarks/data/corpus-50
    python benchmarks/object_store.py --repeat 1 --requests          # + where each S3 request came from
    python benchmarks/object_store.py --repeat 3 --pin               # pipeline and server on their own cores
    python benchmarks/object_store.py --repeat 3 --timeline          # + each run's seconds per phase, local vs S3

Each run is the in-process local executor (so the pipeline's CPU is this process's, the S3 server's is not) into a
fresh run directory; local and S3 runs alternate. Reported per run: wall seconds, this process's CPU seconds
(user + system), the S3 server's CPU seconds and its request count, and the S3/local ratios of the medians. moto
keeps objects in memory, so the S3 figures are the cost of the object-store code path (whole-object PUTs, ranged
GETs, listings over HTTP), not of a network; but moto is a Python process on the same cores, so its CPU seconds
are wall time the pipeline waits for (shown apart). ``--requests`` splits one more S3 run's requests (moto's request
log) by phase (each segment's global build, its streaming pass and commit, the driver in between, the report)
and HTTP method, and by the run directory's top-level folder (the run, then its report). ``--timeline`` adds the
runs' own timelines (stats.json: each global build, reading and writing parts, the streaming steps, the report),
medians of the local and the S3 runs side by side: where an S3 run's extra wall time goes.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (repository first on sys.path)

import argparse
import collections
import contextlib
import json
import os
import re
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


def start_s3(request_log: Path) -> tuple[subprocess.Popen, str]:
    """moto's server, its request log (one line per request, werkzeug's) going to ``request_log``."""
    port = _free_port()
    with open(request_log, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=log)
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


def pin(pid: int, cpu: int) -> None:
    """Every thread of ``pid`` (affinity is per thread; threads started later inherit it) on ``cpu``."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})


@contextlib.contextmanager
def s3_server(pinned: bool):
    """moto in server mode with its request log, the S3 environment set: yields (server, URI query, requests).
    ``pinned``: this process on CPU 0 and the server on CPU 1."""
    os.environ.update(S3_ENV)
    requests = RequestLog(Path(tempfile.mkdtemp(prefix="gm-moto-")) / "requests.log")
    server, query = start_s3(requests.path)
    if pinned:
        pin(os.getpid(), 0)
        pin(server.pid, 1)
    try:
        yield server, query, requests
    finally:
        server.terminate()
        server.wait()


def load_plan(pipeline: Path, corpus: str | None):
    from gristmill.pipeline import build_plan
    from gristmill.pipeline.spec import load_pipeline

    if corpus:
        os.environ["CORPUS"] = str(Path(corpus).resolve())
    spec, base = load_pipeline(pipeline)
    local = spec.execution.model_copy(update={"executor": "local"})
    return build_plan(spec.model_copy(update={"execution": local}), base)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_REQUEST = re.compile(r'"(?:\x1b\[[0-9;]*m)*([A-Z]+) (\S+) HTTP/[0-9.]+')


class RequestLog:
    """The requests moto logged since a mark: (method, path) per request."""

    def __init__(self, path: Path):
        self.path = path

    def mark(self) -> int:
        time.sleep(0.2)  # the server logs a request after answering it
        return self.path.stat().st_size

    def since(self, offset: int, end: int | None = None) -> list[tuple[str, str]]:
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            text = fh.read(None if end is None else end - offset).decode("utf-8", "replace")
        return [(m.group(1), m.group(2)) for m in _REQUEST.finditer(text)]


def request_kind(method: str, path: str, run_prefix: str) -> str:
    """``METHOD where``: a listing (``?list-type``), or the run directory's top-level entry the key is under."""
    key, _, query = path.partition("?")
    if "list-type" in query or "prefix=" in query:
        return f"{method} (listing)"
    rel = key.split(run_prefix, 1)[1] if run_prefix in key else key
    top = rel.split("/", 1)[0]
    if top == "segments" and rel.endswith("/_SUCCESS"):
        top = "segments/*/_SUCCESS"
    return f"{method} {top}"


def timed_run(plan, run_dir: str, log=lambda message: None) -> tuple[float, float]:
    from gristmill.pipeline import LocalExecutor, RunDir, run_plan

    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run_plan(plan, RunDir(run_dir), LocalExecutor(), log=log)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipeline", type=Path, default=REPO / "examples" / "demo.yaml")
    ap.add_argument("--corpus", help="for benchmarks/configs/llama.yaml: the corpus folder ($CORPUS)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pin", action="store_true",
                    help="the pipeline (local and S3 runs alike) on CPU 0, the S3 server on CPU 1: the server's CPU "
                         "then stops competing with the pipeline's, as a real object store's would")
    ap.add_argument("--requests", action="store_true",
                    help="one more S3 run, its requests split by phase, method and folder")
    ap.add_argument("--timeline", action="store_true",
                    help="each run's own timeline (stats.json), local vs S3 seconds per phase")
    args = ap.parse_args()
    with s3_server(args.pin) as (server, query, requests):
        plan = load_plan(args.pipeline, args.corpus)
        timed_run(plan, tempfile.mkdtemp(prefix="gm-warm-"))  # numba caches, model loads: not measured
        rows = {"local": [], "s3": []}
        timelines: dict[str, list[collections.Counter]] = {"local": [], "s3": []}
        server_cpu, request_counts = [], []
        for i in range(args.repeat):
            local_dir, s3_dir = tempfile.mkdtemp(prefix="gm-local-"), f"s3://bench/run-{i}?{query}"
            rows["local"].append(timed_run(plan, local_dir))
            cpu, mark = process_cpu(server.pid), requests.mark()
            rows["s3"].append(timed_run(plan, s3_dir))
            request_counts.append(len(requests.since(mark)))
            server_cpu.append(process_cpu(server.pid) - cpu)
            if args.timeline:  # read after the requests are counted
                timelines["local"].append(timeline_seconds(local_dir))
                timelines["s3"].append(timeline_seconds(s3_dir))
        phases = requests_by_phase(plan, f"s3://bench/run-requests?{query}", requests) if args.requests else None
    print(f"pipeline {args.pipeline.relative_to(REPO) if args.pipeline.is_relative_to(REPO) else args.pipeline}, "
          f"{args.repeat} runs each, local executor{', pinned: pipeline CPU 0, S3 server CPU 1' if args.pin else ''}\n")
    print("| run directory | wall s (each) | CPU s (each) | median wall | median CPU |")
    print("|---|---|---|---:|---:|")
    med = {}
    for where, runs in rows.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        med[where] = (statistics.median(walls), statistics.median(cpus))
        print(f"| {where} | {', '.join(f'{w:.2f}' for w in walls)} | {', '.join(f'{c:.2f}' for c in cpus)} "
              f"| {med[where][0]:.2f} | {med[where][1]:.2f} |")
    print(f"\nS3 / local: wall {med['s3'][0] / med['local'][0]:.2f}x, CPU {med['s3'][1] / med['local'][1]:.2f}x")
    print(f"S3 server (moto): CPU s per run {', '.join(f'{c:.2f}' for c in server_cpu)}; requests per run "
          f"{', '.join(f'{n:,}' for n in request_counts)}")
    if args.timeline:
        print_timelines(timelines)
    if phases:
        print_phases(*phases)


def timeline_seconds(run_dir: str) -> collections.Counter:
    """A run's own timeline (stats/stats.json) in rows: each global build, reading and writing parts, the
    streaming steps, and each of the driver's phases (the lease, checking and committing segments, the report...)."""
    from gristmill.core.storage import resolve

    rows: collections.Counter = collections.Counter()
    for entry in json.loads((resolve(run_dir) / "stats" / "stats.json").read_text())["timeline"]:
        kind, phase = entry["kind"], entry["phase"]
        if kind == "global":
            row = phase.split(" · ", 1)[-1]
        elif kind in ("parts", "step"):
            row = {"parts": "read and write parts", "step": "streaming steps"}[kind]
        else:  # the driver's phases, those of every segment together
            row = phase.split(": ", 1)[-1] if entry.get("segment") else phase
        rows[row] += entry["seconds"]
    return rows


def print_timelines(timelines: dict[str, list[collections.Counter]]) -> None:
    rows = list(dict.fromkeys(row for runs in timelines.values() for t in runs for row in t))
    median = {where: {row: statistics.median(t[row] for t in runs) for row in rows}
              for where, runs in timelines.items()}
    print("\n| phase (the runs' timelines, medians) | local s | S3 s | S3 - local s |")
    print("|---|---:|---:|---:|")
    for row in rows:
        local, s3 = median["local"][row], median["s3"][row]
        print(f"| {row} | {local:.2f} | {s3:.2f} | {s3 - local:+.2f} |")


# Columns of the per-phase table: how a request kind is summed into a method.
METHODS = ("HEAD", "GET", "GET (listing)", "PUT", "DELETE", "POST")
_LOGGED_PHASE = re.compile(r"^segment (\S+): (building|running|committed \d)")


def logged_phase(message: str) -> str | None:
    """The phase a line of the run's log begins: a segment's global build, its streaming pass and commit, the
    driver after it (the run's statistics after the last one)."""
    found = _LOGGED_PHASE.match(message)
    if not found:
        return None
    segment, what = found.groups()
    return {"building": f"{segment}: build", "running": f"{segment}: stream + commit"}.get(
        what, f"driver after {segment}")


def requests_by_phase(plan, run_dir: str, requests: RequestLog
                      ) -> tuple[dict[str, collections.Counter], dict[str, collections.Counter]]:
    """One S3 run, its requests told apart by phase: ({phase: Counter(method)}, {run / report: Counter(kind)})."""
    import gristmill.pipeline.report as report

    marks = [("lease and plan", requests.mark())]
    write_report = report.write_report

    def marked(*a, **kw):
        marks.append(("report", requests.mark()))
        return write_report(*a, **kw)

    def log(message: str) -> None:
        phase = logged_phase(message)
        if phase is not None:
            marks.append((phase, requests.mark()))

    with _patched(report, "write_report", marked):
        timed_run(plan, run_dir, log=log)
    end = requests.mark()
    prefix = "/" + run_dir.split("://", 1)[1].split("?", 1)[0] + "/"
    by_step: dict[str, collections.Counter] = {}
    by_folder = {"run": collections.Counter(), "report": collections.Counter()}
    for (phase, a), (_, b) in zip(marks, marks[1:] + [("end", end)]):
        kinds = [request_kind(m, p, prefix) for m, p in requests.since(a, b)]
        by_step.setdefault(phase, collections.Counter()).update(k.split(" ", 1)[0] if "listing" not in k else k
                                                                for k in kinds)
        by_folder["report" if phase == "report" else "run"].update(kinds)
    return by_step, by_folder


@contextlib.contextmanager
def _patched(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def print_table(what: str, rows: list[str], columns: list[str], count) -> None:
    """A markdown table of request counts ``count(row, column)``, with a total row and column."""
    print(f"\n| {what} | " + " | ".join(columns) + " | all |")
    print("|---|" + "---:|" * (len(columns) + 1))
    for row in rows + ["all"]:
        cells = [sum(count(r, c) for r in rows) if row == "all" else count(row, c) for c in columns]
        print(f"| {row} | " + " | ".join(f"{n:,}" for n in cells) + f" | {sum(cells):,} |")


def print_phases(by_step: dict[str, collections.Counter], by_folder: dict[str, collections.Counter]) -> None:
    """Requests per phase (a row each) and method; then per method and folder (a row each), run and report."""
    print_table("phase (from the run's log)", list(by_step), list(METHODS), lambda p, m: by_step[p][m])
    kinds = sorted(set().union(*by_folder.values()), key=lambda k: -sum(c[k] for c in by_folder.values()))
    print_table("request (method, folder)", kinds, list(by_folder), lambda k, p: by_folder[p][k])


if __name__ == "__main__":
    main()
