"""Where a run's wall time goes: consecutive phases measured on the driver, from the command's start (plan build,
Ray start) to the report, whose seconds add up to the run's wall time.

A streaming segment's wall time is shared among its steps in proportion to the seconds their workers reported:
on Ray those are summed over workers running in parallel (more than the segment's wall time), in-process they
leave out reading and writing parts, which get a row of their own. What no phase measured is an explicit
``other (driver)`` row, so the rows always sum to the wall time.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

# Row kinds, in the order the report's legend lists them.
KINDS = ("start", "step", "global", "parts", "driver")
OTHER = "other (driver)"


class RunClock:
    """Phases of one run, measured from ``origin`` (a ``time.perf_counter()`` value; default: now)."""

    def __init__(self, origin: float | None = None):
        self.origin = time.perf_counter() if origin is None else origin
        self.rows: list[dict] = []
        self.final: dict | None = None

    @classmethod
    def from_process_start(cls) -> "RunClock":
        """A clock started when this process was (where the OS says when: Linux), its first row the interpreter's
        start and imports, so the run's wall time is what ``time gristmill run ...`` shows."""
        age = process_age()
        clock = cls(time.perf_counter() - (age or 0.0))
        if age:
            clock.add("process start and imports", "start", age)
        return clock

    def elapsed(self) -> float:
        return time.perf_counter() - self.origin

    def add(self, phase: str, kind: str, seconds: float, segment: str | None = None, step: str | None = None,
            stage: str | None = None, worker_seconds: float | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"timeline kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.rows.append({"phase": phase, "kind": kind, "segment": segment, "step": step, "stage": stage,
                          "seconds": max(0.0, float(seconds)), "worker_seconds": worker_seconds})

    @contextmanager
    def phase(self, phase: str, kind: str = "driver", segment: str | None = None) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, kind, time.perf_counter() - start, segment)

    def add_segment_steps(self, segment: str, wall: float, steps: list[tuple[str, str, float]]) -> None:
        """Share a streaming segment's ``wall`` seconds among its ``steps`` (label, stage, worker seconds)."""
        worker_total = sum(s for _, _, s in steps)
        scale = wall / worker_total if worker_total > wall else 1.0
        for label, stage, seconds in steps:
            self.add(f"{label} · {stage}", "step", seconds * scale, segment, label, stage, seconds)
        if worker_total < wall:
            self.add(f"{segment}: read and write parts", "parts", wall - worker_total, segment)

    def snapshot(self) -> dict:
        """The rows so far plus the unmeasured rest, and the wall time they sum to."""
        wall = self.elapsed()
        rows = [dict(r) for r in self.rows]
        rest = wall - sum(r["seconds"] for r in rows)
        rows.append({"phase": OTHER, "kind": "driver", "segment": None, "step": None, "stage": None,
                     "seconds": max(0.0, rest), "worker_seconds": None})
        return {"wall_seconds": wall, "timeline": rows}

    def finish(self) -> dict:
        """The run's final timeline (taken once; later calls return the same)."""
        if self.final is None:
            self.final = self.snapshot()
        return self.final


def process_age() -> float | None:
    """Seconds since this process started, from /proc (Linux); None where that is not known."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time after boot
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - started)
