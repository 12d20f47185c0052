"""The run's timeline: phases from the command's start to the report whose seconds sum to the wall time, recorded
in stats.json, drawn by the report and queryable as the ``timeline`` view."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gristmill.pipeline.cli import main
from gristmill.pipeline.inspection import connect
from gristmill.pipeline.report import write_report
from gristmill.pipeline.timeline import OTHER, RunClock

from demo_pipeline import DEMO, PACKED

REPO = Path(__file__).resolve().parents[2]


def test_a_segment_wall_time_is_shared_by_worker_seconds():
    clock = RunClock()
    # Two parallel workers reported 6 s in a 3 s segment: each step gets its share of the 3 s.
    clock.add_segment_steps("00-ingest", 3.0, [("ingest", "ingest", 2.0), ("steps[0]", "clean.x", 4.0)])
    assert [(r["phase"], r["seconds"], r["worker_seconds"]) for r in clock.rows] == [
        ("ingest · ingest", 1.0, 2.0), ("steps[0] · clean.x", 2.0, 4.0)]
    # In-process the steps took 1 s of a 1.5 s segment: the rest was reading and writing parts.
    clock.add_segment_steps("01-dedup", 1.5, [("steps[1]", "dedup.y", 1.0)])
    assert [(r["phase"], r["kind"], r["seconds"]) for r in clock.rows[2:]] == [
        ("steps[1] · dedup.y", "step", 1.0), ("01-dedup: read and write parts", "parts", 0.5)]
    with pytest.raises(ValueError, match="timeline kind 'io'"):
        clock.add("x", "io", 1.0)


def test_snapshot_rows_sum_to_the_wall_time_with_an_explicit_rest():
    clock = RunClock(origin=time.perf_counter() - 2.0)  # two seconds ago, of which one was measured
    clock.add("plan build", "start", 1.0)
    snap = clock.snapshot()
    assert snap["timeline"][-1]["phase"] == OTHER
    assert snap["timeline"][-1]["seconds"] == pytest.approx(snap["wall_seconds"] - 1.0)
    assert sum(r["seconds"] for r in snap["timeline"]) == pytest.approx(snap["wall_seconds"])
    assert clock.finish() is clock.finish()  # the final timeline is taken once


def test_the_clock_of_a_command_starts_with_its_process():
    """Seconds before the clock was made (the interpreter's start and imports) are the timeline's first row."""
    code = ("import time; time.sleep(1.0); from gristmill.pipeline.timeline import RunClock; "
            "c = RunClock.from_process_start(); print(c.rows[0]['phase'], c.rows[0]['seconds'], c.elapsed())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    phase, seconds, elapsed = out.stdout.rsplit(" ", 2)
    assert phase == "process start and imports"
    assert 1.0 <= float(seconds) <= float(elapsed) < 60


@pytest.fixture(scope="module")
def packed_run(tmp_path_factory, data_dir) -> tuple[Path, str]:
    """PACKED (three segments: ingest and clean, tokenizer training, packing) through ``gristmill run``."""
    base = tmp_path_factory.mktemp("timeline")
    pipeline = base / "p.yaml"
    pipeline.write_text(PACKED.format(data=data_dir))
    run_dir = base / "run"
    out = subprocess.run([sys.executable, "-m", "gristmill", "run", str(pipeline), "--executor", "local",
                          "--run-dir", str(run_dir), "--quiet"], capture_output=True, text=True, timeout=600,
                         env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir, out.stdout


def _timeline(run_dir: Path) -> tuple[float, list[dict]]:
    stats = json.loads((run_dir / "stats" / "stats.json").read_text())
    return stats["wall_seconds"], stats["timeline"]


def test_local_run_timeline_sums_to_its_wall_time_and_covers_every_step(packed_run):
    run_dir, stdout = packed_run
    wall, rows = _timeline(run_dir)
    assert sum(r["seconds"] for r in rows) == pytest.approx(wall, abs=1e-6)
    phases = [r["phase"] for r in rows]
    assert phases[:2] == ["process start and imports", "plan build"] and phases[-2:] == ["report", OTHER]
    plan = json.loads((run_dir / "plan.json").read_text())
    steps = [f"{s['label']} · {s['stage_name']}" for seg in plan["segments"] for s in seg["steps"]]
    assert [p for p in phases if p in steps] == steps  # every step, in plan order
    builds = [r["phase"] for r in rows if r["kind"] == "global"]
    assert builds == ["steps[4] · tokenizer.train_bbpe_v1 (build)", "steps[6] · mixture.pack_v1 (build)"]
    # Most of the wall time is measured by a named phase, not left to the rest.
    assert rows[-1]["seconds"] < 0.25 * wall
    # The command's own figure is the recorded wall time, plan build included.
    printed = float(re.search(r"\((\d+\.\d)s, plan", stdout).group(1))
    assert printed == pytest.approx(wall, abs=0.051)


def test_report_draws_the_recorded_timeline_and_it_survives_a_regeneration(packed_run):
    run_dir, _ = packed_run
    wall, rows = _timeline(run_dir)
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    drawn = [(m.group(1), float(m.group(2))) for m in
             re.finditer(r'<tr data-phase="([^"]*)" data-kind="[a-z]+" data-seconds="([^"]*)"', page)]
    assert [p for p, _ in drawn] == [r["phase"] for r in rows]
    assert [s for _, s in drawn] == pytest.approx([r["seconds"] for r in rows])
    assert f'data-wall-seconds="{wall:.6f}"' in page
    con = connect(run_dir)
    assert con.execute("SELECT sum(seconds) FROM timeline").fetchone()[0] == pytest.approx(wall)
    assert con.execute("SELECT value FROM run_facts WHERE key = 'wall_seconds'").fetchone()[0] == str(round(wall, 3))
    write_report(run_dir)  # `gristmill report` later: the same rows from stats.json
    again = (run_dir / "report.html").read_text(encoding="utf-8")
    assert f'data-wall-seconds="{wall:.6f}"' in again
    assert again.count('<tr data-phase="') == len(rows)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_run_timeline_includes_ray_start_and_worker_set_up(data_dir, tmp_path):
    """``gristmill run`` on its embedded Ray (a process of its own): starting Ray is part of the wall time."""
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(DEMO.format(data=data_dir))
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    out = subprocess.run([sys.executable, "-m", "gristmill", "run", str(pipeline), "--executor", "ray",
                          "--run-dir", str(run_dir), "--quiet"], capture_output=True, text=True, timeout=600,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    wall, rows = _timeline(run_dir)
    by_phase = {r["phase"]: r for r in rows}
    assert by_phase["Ray start"]["kind"] == "start" and by_phase["Ray start"]["seconds"] > 0.2
    assert by_phase["workers set up"]["seconds"] > 0
    assert [r["phase"] for r in rows][:3] == ["process start and imports", "plan build", "Ray start"]
    assert sum(r["seconds"] for r in rows) == pytest.approx(wall, abs=1e-6)
    assert rows[-1]["seconds"] < 0.25 * wall
    printed = float(re.search(r"\((\d+\.\d)s, plan", out.stdout).group(1))
    assert printed == pytest.approx(wall, abs=0.051)
