"""Live progress on the driver: per step, documents in/out, drops, MB and throughput, and an ETA where the
input size is known. On a terminal one status block is redrawn in place; in a log (not a TTY) a plain line per
step is printed at most every ``log_interval`` seconds, so logs carry no carriage-return spam."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


def totals_by_step(pieces, by_unit: bool = True) -> dict[int, dict]:
    """{position: {label, stage, rows_in, rows_out, bytes_in, units}} summed over piece reports; ``units`` is
    the number of ingest units seen (a part's key is the doc_id of its first row, unit index in the high bits), or
    of parts seen when a segment reads committed parts (``by_unit=False``)."""
    out: dict[int, dict] = {}
    units: dict[int, set] = {}
    for p in pieces:
        units.setdefault(p["position"], set()).add(p["part"] >> 32 if by_unit else p["part"])
        cur = out.setdefault(p["position"], {"label": p["label"], "stage": p["stage"], "rows_in": 0,
                                             "rows_out": 0, "bytes_in": 0})
        cur["rows_in"] += p["rows_in"]
        cur["rows_out"] += p["rows_out"]
        cur["bytes_in"] += p["bytes_in"]
    for pos, seen in units.items():
        out[pos]["units"] = len(seen)
    return out


class Progress:
    def __init__(self, stream: TextIO | None = None, log_interval: float = 10.0, tty_interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stderr
        self.clock = clock
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = tty_interval if self.tty else log_interval
        self._last = 0.0
        self._lines_drawn = 0
        self._segment = None
        self._start = clock()

    def start_segment(self, name: str, total_units: int) -> None:
        self._segment = name
        self._units = total_units
        self._start = self.clock()
        self._last = self._start
        self._lines_drawn = 0

    def update(self, totals: dict[int, dict], final: bool = False) -> None:
        now = self.clock()
        if not final and (now - self._last < self.interval or not totals):
            return  # throttled; and a block with no counters yet says nothing
        self._last = now
        lines = self._render(totals, now - self._start)
        if self.tty:
            if self._lines_drawn:
                self.stream.write(f"\x1b[{self._lines_drawn}F\x1b[J")
            self._lines_drawn = len(lines)
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        if final:
            self._lines_drawn = 0

    def _render(self, totals: dict[int, dict], elapsed: float) -> list[str]:
        elapsed = max(elapsed, 1e-6)
        head = f"[{self._segment}] {elapsed:6.1f}s"
        if totals and self._units:
            # Units (input files, or committed parts after a global step) started by the first step.
            seen = totals[min(totals)]["units"]
            head += f"  units {seen}/{self._units}"
            if 0 < seen < self._units:
                head += f"  eta ~{elapsed * (self._units - seen) / seen:.0f}s"
        lines = [head]
        for pos in sorted(totals):
            t = totals[pos]
            dropped = t["rows_in"] - t["rows_out"]
            lines.append(
                f"  {t['label']:<10} {t['stage']:<24} in {t['rows_in']:>9,} out {t['rows_out']:>9,} "
                f"dropped {dropped:>8,}  {t['bytes_in'] / 1e6:8.1f} MB  {t['rows_in'] / elapsed:8.0f} docs/s "
                f"{t['bytes_in'] / 1e6 / elapsed:6.2f} MB/s"
            )
        return lines
