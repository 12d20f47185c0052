"""Process start-up to the first record: gristmill vs datatrove 0.10.1 on a small JSONL input.

    python benchmarks/startup.py                  # 50 records, 7 repetitions each, interleaved
    python benchmarks/startup.py --records 50 --repeat 7 [--data ../shared/data]

Input: ``--records`` lines of English text (``DATA/tokenizer/corpus.en``, 20 lines per record) as JSONL.

- gristmill: ``python -m gristmill run`` of a pipeline reading the JSONL with the ``clean.normalize_v1`` step,
  the local executor (``execution.executor: local``).
- datatrove: a script running ``LocalPipelineExecutor`` with ``JsonlReader`` + ``JsonlWriter`` (tasks=1).

Each runs in a fresh Python process. The first record is the moment the reader hands its first batch (gristmill's
``JsonlReader.read``) or document (datatrove's ``JsonlReader.read_file``) to the pipeline: a probe wraps that
method, and at its first result the process reports its wall seconds since the parent started it and the CPU
seconds of its whole process group (all threads and helper processes), then the group is killed. The whole run
to the end is measured
too, as a whole process tree (``process_tree.run_measured``: every process, report writing included). Both
are the median of ``--repeat`` runs.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401  (sys.path: the repository before benchmarks/)

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from process_tree import run_measured
from shared_data import SHARED_DATA

PIPELINE = """name: startup-bench
inputs:
  - source: c4
    format: jsonl
    paths: ["{jsonl}"]
steps:
  - stage: clean.normalize_v1
execution: {{executor: local}}
"""

DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
jsonl_dir, out, logs = sys.argv[1:4]
LocalPipelineExecutor(pipeline=[JsonlReader(jsonl_dir, glob_pattern="*.jsonl"), JsonlWriter(out)],
                      tasks=1, workers=1, logging_dir=logs).run()
"""

# Wraps the reader's method (MODULE:CLASS.METHOD, a generator) so that its first result prints
# "FIRST_RECORD <perf_counter> <cpu s>" and kills the process group at once (the tool's helper processes, such
# as datatrove's multiprocess manager, included), then runs the tool's own code. The CPU is that of every
# process of the group (the probe runs as a session leader), read from /proc, children reaped included.
PROBE = """
import importlib, os, signal, sys, time
target, tool = sys.argv[1], sys.argv[2]
module, _, attr = target.partition(":")
cls_name, method = attr.split(".")
cls = getattr(importlib.import_module(module), cls_name)
original = getattr(cls, method)
def group_cpu():
    group, ticks = os.getpgrp(), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp; then utime, stime, cutime, cstime
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")
def first_record(self, *args, **kwargs):
    for item in original(self, *args, **kwargs):
        now = time.perf_counter()
        print(f"FIRST_RECORD {now} {group_cpu()}", flush=True)
        os.killpg(os.getpgrp(), signal.SIGKILL)
        yield item
setattr(cls, method, first_record)
sys.argv = sys.argv[2:]
if tool == "-m":
    import runpy
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    exec(compile(tool, "<tool>", "exec"), {"__name__": "__main__"})
"""

GRISTMILL_READER = "gristmill.stages.ingest.jsonl:JsonlReader.read"
DATATROVE_READER = "datatrove.pipeline.readers.jsonl:JsonlReader.read_file"


def write_input(data: Path, records: int, directory: Path) -> Path:
    lines = (data / "tokenizer" / "corpus.en").read_text(encoding="utf-8").splitlines()
    directory.mkdir(parents=True)
    path = directory / "docs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(records):
            start = (20 * i) % max(1, len(lines) - 20)
            f.write(json.dumps({"id": str(i), "text": "\n".join(lines[start : start + 20])}) + "\n")
    return path


def to_first_record(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s from spawning the process, its CPU s) until the reader's first result."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True,
                          start_new_session=True)
    marks = [line.split() for line in done.stdout.splitlines() if line.startswith("FIRST_RECORD ")]
    if not marks:
        raise RuntimeError(f"no first record from {args[:2]}:\n{done.stderr[-3000:]}")
    return float(marks[0][1]) - started, float(marks[0][2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder")
    parser.add_argument("--peer-path", help="a folder put on datatrove's PYTHONPATH only, with what its JSONL reader "
                                            "needs and this environment lacks (pip install --target DIR orjson)")
    args = parser.parse_args()
    envs = {"gristmill": {**os.environ, "PYTHONPATH": str(_bootstrap.ROOT)}}
    envs["datatrove"] = {**envs["gristmill"], "PYTHONPATH": os.pathsep.join(
        filter(None, [str(_bootstrap.ROOT), args.peer_path]))}
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        jsonl = write_input(args.data, args.records, Path(tmp) / "in")
        yaml = Path(tmp) / "pipeline.yaml"
        yaml.write_text(PIPELINE.format(jsonl=jsonl), encoding="utf-8")
        for i in range(args.repeat):  # interleaved, so drift on a shared machine hits both alike
            runs = {
                "gristmill": (GRISTMILL_READER, ["-m", "gristmill", "run", str(yaml), "--run-dir",
                                                  f"{tmp}/run-{{}}-{i}", "--quiet"]),
                "datatrove": (DATATROVE_READER, [DATATROVE, str(jsonl.parent), f"{tmp}/dt-{{}}-{i}",
                                                  f"{tmp}/dt-logs-{{}}-{i}"]),
            }
            for name, (reader, tool_args) in runs.items():
                first = to_first_record([reader, *(a.format("first") for a in tool_args)], envs[name])
                whole = run_measured([*(["-c"] if name == "datatrove" else []),
                                      *(a.format("whole") for a in tool_args)], env=envs[name])
                row = results.setdefault(name, {"first_wall": [], "first_cpu": [], "whole_wall": [],
                                                "whole_cpu": []})
                for key, value in zip(row, (*first, whole[0], whole[1])):
                    row[key].append(value)
    median = {name: {k: statistics.median(v) for k, v in row.items()} for name, row in results.items()}
    print(f"{args.records} records, median of {args.repeat} runs each:\n")
    print("| tool | to first record: wall s | to first record: CPU s | whole run: wall s | whole run: CPU s "
          "(process tree) |")
    print("|---|---:|---:|---:|---:|")
    for name, m in median.items():
        print(f"| {name} | {m['first_wall']:.2f} | {m['first_cpu']:.2f} | {m['whole_wall']:.2f} | "
              f"{m['whole_cpu']:.2f} |")
    g, d = median["gristmill"], median["datatrove"]
    print(f"\ngristmill / datatrove to the first record: wall {g['first_wall'] / d['first_wall']:.2f}x, "
          f"CPU {g['first_cpu'] / d['first_cpu']:.2f}x")


if __name__ == "__main__":
    main()
