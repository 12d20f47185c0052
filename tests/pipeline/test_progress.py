"""Live progress: in a log (not a TTY) plain lines at most once per interval, no carriage returns or escapes;
on a terminal one block redrawn in place; counters summed from piece reports, never per document."""

from __future__ import annotations

import io

from gristmill.pipeline.progress import Progress, totals_by_step


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def piece(position: int, part: int, rows_in: int, rows_out: int, nbytes: int) -> dict:
    return {"position": position, "label": "ingest" if position == 0 else f"steps[{position - 1}]",
            "stage": "ingest" if position == 0 else "filter_v1", "part": part, "rows_in": rows_in,
            "rows_out": rows_out, "bytes_in": nbytes}


def test_totals_sum_piece_reports_per_step_and_count_units():
    pieces = [piece(0, 0 << 32, 10, 8, 1000), piece(0, 1 << 32, 5, 5, 500), piece(0, (1 << 32) + 7, 2, 1, 20),
              piece(1, 0 << 32, 8, 6, 900)]
    totals = totals_by_step(pieces)
    assert totals[0] == {"label": "ingest", "stage": "ingest", "rows_in": 17, "rows_out": 14, "bytes_in": 1520,
                         "units": 2}
    assert totals[1]["rows_in"] == 8 and totals[1]["units"] == 1
    assert totals_by_step(pieces, by_unit=False)[0]["units"] == 3


def test_log_output_is_throttled_plain_lines():
    clock, log = FakeClock(), io.StringIO()
    progress = Progress(log, log_interval=10.0, clock=clock)
    progress.start_segment("00-ingest", total_units=4)
    totals = totals_by_step([piece(0, 0, 100, 90, 2_000_000), piece(1, 0, 90, 80, 1_800_000)])
    for _ in range(50):  # many batches within one interval: nothing printed
        clock.now += 0.1
        progress.update(totals)
    assert log.getvalue() == ""
    clock.now += 6  # 11 s since the segment started
    progress.update(totals)
    first = log.getvalue()
    assert first.splitlines()[0].startswith("[00-ingest]   11.0s  units 1/4  eta ~33s")
    assert "in       100 out        90 dropped       10" in first
    assert "docs/s" in first and "MB/s" in first
    clock.now += 5
    progress.update(totals)
    assert log.getvalue() == first  # still within the interval
    progress.update(totals, final=True)  # the final block is always written
    text = log.getvalue()
    assert text.count("[00-ingest]") == 2
    assert "\r" not in text and "\x1b" not in text


def test_log_skips_a_block_with_no_counters_yet():
    clock, log = FakeClock(), io.StringIO()
    progress = Progress(log, log_interval=1.0, clock=clock)
    progress.start_segment("00-ingest", total_units=2)
    clock.now += 5
    progress.update({})
    assert log.getvalue() == ""


def test_terminal_redraws_the_block_in_place():
    clock, term = FakeClock(), Terminal()
    progress = Progress(term, tty_interval=0.5, clock=clock)
    assert progress.interval == 0.5
    progress.start_segment("00-ingest", total_units=2)
    totals = totals_by_step([piece(0, 0, 10, 9, 100), piece(1, 0, 9, 9, 90)])
    clock.now += 1
    progress.update(totals)
    assert "\x1b[" not in term.getvalue()
    clock.now += 1
    progress.update(totals)
    # Cursor up over the 3 lines drawn (header + 2 steps) and clear, then the new block.
    assert term.getvalue().count("\x1b[3F\x1b[J") == 1
