"""Run a command in a child process and measure it as a whole process tree: wall seconds and the CPU seconds
(user + system) of the child and every descendant (``RUSAGE_CHILDREN``), so threads, worker processes and
executors a tool starts on its own are all counted.

A descendant counts once it is reaped. Processes whose parent exits first (Ray's raylet, GCS and workers outlive
the driver by a moment; a daemonized helper) would be reaped by init and lost: this process makes itself their
reaper (Linux ``PR_SET_CHILD_SUBREAPER``) and waits for every one of them before reading the figure."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _become_subreaper() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_orphans(timeout: float) -> int:
    """Wait for the descendants re-parented to this process; returns how many are still alive at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 0
        if pid == 0:
            if time.monotonic() > deadline:
                return len([p for p in os.listdir("/proc") if p.isdigit() and _parent(p) == os.getpid()])
            time.sleep(0.05)


def _parent(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def run_measured(args: list[str], env: dict[str, str] | None = None,
                 cwd: str | None = None, orphan_timeout: float = 60.0) -> tuple[float, float, str]:
    """(wall s, CPU s of the whole tree, stdout) of ``python ARGS``; raises with the child's stderr on failure.
    Wall time ends when the child exits; CPU includes the descendants it left behind (waited for)."""
    _become_subreaper()
    cpu, wall = _children_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, *args], env={**os.environ, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True)
    wall = time.perf_counter() - wall
    alive = _reap_orphans(orphan_timeout)
    cpu = _children_cpu() - cpu
    label = " ".join(a if len(a) < 80 else a[:77] + "..." for a in args[:3])
    if done.returncode != 0:
        raise RuntimeError(f"{label} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    if alive:
        print(f"warning: {alive} descendants of {label} still running after {orphan_timeout:.0f} s: "
              "their CPU is not counted", file=sys.stderr)
    return wall, cpu, done.stdout


def least_cpu(fn, repeat: int) -> tuple[object, float]:
    """(``fn``'s last result, the CPU seconds of this process for the fastest of ``repeat`` calls)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return out, best
