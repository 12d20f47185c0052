"""Run a command in a child process and measure it as a whole process tree: wall seconds and the CPU seconds
(user + system) of the child and every descendant it waited for (``RUSAGE_CHILDREN``), so threads, worker
processes and executors a tool starts on its own are all counted."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(args: list[str], env: dict[str, str] | None = None,
                 cwd: str | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the whole tree, stdout) of ``python ARGS``; raises with the child's stderr on failure."""
    cpu, wall = _children_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, *args], env={**os.environ, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall, _children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return wall, cpu, done.stdout
