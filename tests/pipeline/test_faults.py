"""Faults: a Ray worker killed mid-stage, the driver killed mid-segment or between segments, and a second run
started on a run directory in use.

The faults come from a test-only plugin installed the way third-party stages are (a dist-info with a
``gristmill.stages`` entry point, put on PYTHONPATH), so the driver and every Ray worker load it:

- ``test.crash_once_v1`` passes rows through; armed by a file, it ``os._exit()``s its process (a Ray worker,
  or with ``hang`` blocks the driver) on the first batch of one ingest unit, exactly once (an O_EXCL marker);
- ``test.barrier_v1`` is a no-op global step, so the pipeline has two segments.

Every disturbed run must end with the same committed bytes (parts, rejects, markers) as an undisturbed run
and with the row accounting holding.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from demo_pipeline import DEMO

BIN = Path(sys.executable).parent

PLUGIN = '''
import os
import time

from gristmill.stages.base import GlobalStage, StageOutput, StageParams, StreamingStage


class CrashOnceParams(StageParams):
    tag: str
    unit: int = 0


class CrashOnce(StreamingStage):
    """Armed by $GRISTMILL_TEST_FAULT_DIR/arm-TAG-exit (or -hang): fires once, on a batch of ingest unit UNIT."""

    name = "test.crash_once_v1"
    Params = CrashOnceParams

    def process(self, table):
        fault_dir = os.environ.get("GRISTMILL_TEST_FAULT_DIR")
        tag, unit = self.params.tag, self.params.unit
        if fault_dir and table.num_rows and any(d >> 32 == unit for d in table["doc_id"].to_pylist()):
            for mode in ("exit", "hang"):
                if os.path.exists(os.path.join(fault_dir, f"arm-{tag}-{mode}")):
                    try:
                        os.close(os.open(os.path.join(fault_dir, f"fired-{tag}"), os.O_CREAT | os.O_EXCL))
                    except FileExistsError:
                        break  # fired before: this is the retry, which must succeed
                    if mode == "exit":
                        os._exit(17)
                    time.sleep(600)
        return StageOutput(table, None)


class Barrier(GlobalStage):
    name = "test.barrier_v1"

    def build(self, ctx):
        return None
'''

ENTRY_POINTS = """\
[gristmill.stages]
test.crash_once_v1 = gristmill_fault_stages:CrashOnce
test.barrier_v1 = gristmill_fault_stages:Barrier
"""

FAULT_STEPS = """\
  - stage: test.crash_once_v1
    params: {{tag: a, unit: 2}}
  - stage: test.barrier_v1
  - stage: test.crash_once_v1
    params: {{tag: b, unit: 0}}
"""


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    (root / "gristmill_fault_stages.py").write_text(PLUGIN)
    dist = root / "gristmill_fault_stages-0.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gristmill-fault-stages\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


@pytest.fixture(scope="module")
def pipeline_file(tmp_path_factory, data_dir) -> Path:
    text = DEMO.format(data=data_dir).replace("output:\n", FAULT_STEPS.format() + "output:\n")
    path = tmp_path_factory.mktemp("pipeline") / "faults.yaml"
    path.write_text(text)
    return path


def _env(plugin_dir: Path, fault_dir: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "GRISTMILL_TEST_FAULT_DIR")}
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_dir), *filter(None, [env.get("PYTHONPATH")])])
    env["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    if fault_dir is not None:
        env["GRISTMILL_TEST_FAULT_DIR"] = str(fault_dir)
    return env


def _run_args(pipeline: Path, run_dir: Path, executor: str) -> list[str]:
    return [str(BIN / "gristmill"), "run", str(pipeline), "--run-dir", str(run_dir), "--executor", executor,
            "--quiet"]


def committed_bytes(run_dir: Path) -> dict[str, bytes]:
    """Every committed file of every segment (parts and markers) and every rejects file, by relative path."""
    out = {}
    segments = sorted((run_dir / "segments").iterdir())
    for seg in segments:
        assert (seg / "_SUCCESS").exists(), f"{seg} is not committed"
        for f in sorted(seg.iterdir()):
            data = f.read_bytes()
            if f.name == "_SUCCESS":  # the marker's content, less its timings
                marker = {k: v for k, v in json.loads(data).items() if not k.endswith("seconds")}
                data = json.dumps(marker, sort_keys=True).encode()
            out[str(f.relative_to(run_dir))] = data
    for f in sorted((run_dir / "rejects").glob("*/*.parquet")):
        out[str(f.relative_to(run_dir))] = f.read_bytes()
    return out


def accounting(run_dir: Path) -> list[tuple]:
    """(segment, position, source, in, out, dropped) per step; asserts in == out + dropped for each."""
    stats = json.loads((run_dir / "stats" / "stats.json").read_text())
    rows = []
    for s in stats["stages"]:
        assert s["rows_in"] == s["rows_out"] + s["rows_dropped"], s
        rows.append((s["segment"], s["position"], s["source"], s["rows_in"], s["rows_out"], s["rows_dropped"]))
    return sorted(rows)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, plugin_dir, pipeline_file) -> Path:
    """An undisturbed run (local executor, which writes the same bytes as the Ray executor)."""
    run_dir = tmp_path_factory.mktemp("baseline") / "run"
    done = subprocess.run(_run_args(pipeline_file, run_dir, "local"), env=_env(plugin_dir, None),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in sorted((run_dir / "segments").iterdir())] == ["00-ingest", "01-test.barrier_v1"]
    return run_dir


@pytest.mark.ray
@pytest.mark.slow
def test_worker_killed_mid_stage_is_retried_without_losing_or_duplicating(tmp_path, plugin_dir, pipeline_file,
                                                                       baseline):
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    (fault_dir / "arm-a-exit").touch()  # segment 0, the batch of ingest unit 2: its Ray worker exits
    run_dir = tmp_path / "run"
    done = subprocess.run(_run_args(pipeline_file, run_dir, "ray"), env=_env(plugin_dir, fault_dir),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-5000:]
    assert (fault_dir / "fired-a").exists(), "the worker was never killed"
    assert committed_bytes(run_dir) == committed_bytes(baseline)
    assert accounting(run_dir) == accounting(baseline)


@contextmanager
def _background_run(args: list[str], env: dict[str, str]):
    """A ``gristmill run`` in its own process, killed (if still running) and its pipes closed on the way out."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before {path.name}: {proc.stderr.read()}")
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.1)


@pytest.mark.parametrize("tag, committed_before_kill", [
    ("a", []),               # killed mid-segment 0, after some of its parts were written
    ("b", ["00-ingest"]),    # killed in segment 1, after segment 0 committed
])
def test_driver_killed_then_rerun_resumes_with_identical_output(tmp_path, plugin_dir, pipeline_file, baseline, tag,
                                                                committed_before_kill):
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    (fault_dir / f"arm-{tag}-hang").touch()
    run_dir = tmp_path / "run"
    args = _run_args(pipeline_file, run_dir, "local")
    with _background_run(args, _env(plugin_dir, fault_dir)) as proc:
        _wait_for(fault_dir / f"fired-{tag}", proc)
        committed = sorted(p.parent.name for p in (run_dir / "segments").glob("*/_SUCCESS"))
        assert committed == committed_before_kill
        # Mid-segment 0 some parts are on disk already (uncommitted); they must not be trusted by the rerun.
        assert any((run_dir / "segments").glob("*/part-*.parquet"))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    # The same command again (taking over the killed run's lease): committed segments are skipped, the
    # interrupted one is recomputed from scratch.
    rerun = subprocess.run(args + ["--force-unlock"], env=_env(plugin_dir, None), capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    for name in committed_before_kill:
        assert f"segment {name}: committed, skipped" in rerun.stderr
    assert committed_bytes(run_dir) == committed_bytes(baseline)
    assert accounting(run_dir) == accounting(baseline)


def test_a_second_run_is_refused_while_one_runs_and_a_killed_runs_lease_needs_force_unlock(
        tmp_path, plugin_dir, pipeline_file, baseline):
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    (fault_dir / "arm-a-hang").touch()
    run_dir = tmp_path / "run"
    args = _run_args(pipeline_file, run_dir, "local")
    with _background_run(args, _env(plugin_dir, fault_dir)) as proc:
        _wait_for(fault_dir / "fired-a", proc)  # the first run is mid-segment 0, holding the lease
        second = subprocess.run(args, env=_env(plugin_dir, None), capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"pid {proc.pid} on host" in second.stderr and "looks alive" in second.stderr
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    refused = subprocess.run(args, env=_env(plugin_dir, None), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert f"looks dead (pid {proc.pid} is not running on this host); rerun with --force-unlock" in refused.stderr
    taken = subprocess.run(args + ["--force-unlock"], env=_env(plugin_dir, None), capture_output=True, text=True,
                           timeout=300)
    assert taken.returncode == 0, taken.stderr[-5000:]
    assert "lease: taking over" in taken.stderr
    assert committed_bytes(run_dir) == committed_bytes(baseline)
    assert accounting(run_dir) == accounting(baseline)
    assert not (run_dir / "_LEASE").exists()


def test_changed_plan_after_a_crash_is_refused_unless_forced(tmp_path, plugin_dir, pipeline_file, baseline):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(baseline, run_dir)
    (run_dir / "segments" / "01-test.barrier_v1" / "_SUCCESS").unlink()  # as if killed in segment 1
    changed = tmp_path / "changed.yaml"
    changed.write_text(pipeline_file.read_text().replace("seed: 3", "seed: 4"))
    refused = subprocess.run(_run_args(changed, run_dir, "local"), env=_env(plugin_dir, None), capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 2 and "committed by a different plan" in refused.stderr
    # Refusing touched nothing: segment 0 is still committed with the old plan's bytes, plan.json is the old one.
    assert (run_dir / "plan.json").read_bytes() == (baseline / "plan.json").read_bytes()
    seg0 = run_dir / "segments" / "00-ingest"
    assert {f.name: f.read_bytes() for f in seg0.iterdir()} == {
        f.name: f.read_bytes() for f in (baseline / "segments" / "00-ingest").iterdir()}
    forced = subprocess.run(_run_args(changed, run_dir, "local") + ["--force"], env=_env(plugin_dir, None),
                            capture_output=True, text=True, timeout=300)
    assert forced.returncode == 0, forced.stderr
    assert "committed, skipped" not in forced.stderr
    assert accounting(run_dir) == accounting(baseline)  # the seed changes no row of this pipeline


# --- third-party stages come only from entry points -------------------------------------------------------------

def test_entry_point_stage_loads_and_import_paths_are_refused(tmp_path, plugin_dir, data_dir):
    (plugin_dir / "evil_module.py").write_text(
        f"open({str(tmp_path / 'imported')!r}, 'w').close()\n\nclass Evil:\n    name = 'evil_v1'\n")
    ok = tmp_path / "ok.yaml"
    ok.write_text(DEMO.format(data=data_dir).replace("output:\n", FAULT_STEPS.format() + "output:\n"))
    env = _env(plugin_dir, None)
    done = subprocess.run([str(BIN / "gristmill"), "validate", str(ok)], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("ok:"), done.stderr

    without_plugin = subprocess.run([str(BIN / "gristmill"), "validate", str(ok)],
                                    env={k: v for k, v in env.items() if k != "PYTHONPATH"},
                                    capture_output=True, text=True)
    assert without_plugin.returncode == 2 and "unknown stage 'test.crash_once_v1'" in without_plugin.stderr

    for stage in ("evil_module:Evil", "evil_module.Evil", "evil_module.evil_v1", "os.system"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(DEMO.format(data=data_dir).replace("  - stage: clean.pii_v1\n", f"  - stage: {stage}\n"))
        refused = subprocess.run([str(BIN / "gristmill"), "validate", str(bad)], env=env, capture_output=True,
                                 text=True)
        assert refused.returncode == 2 and f"unknown stage {stage!r}" in refused.stderr, refused.stderr
    assert not (tmp_path / "imported").exists(), "a YAML stage name imported a module"
