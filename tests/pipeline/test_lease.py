"""The run directory's lease: one run at a time; a second stops at once naming the holder; a dead holder's lease
is taken over only with --force-unlock; the lease is released however the run ends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest

from gristmill.pipeline import LocalExecutor, RunDir, run_plan
from gristmill.pipeline.lease import LeaseHeldError, LeaseLostError, RunLease
from gristmill.pipeline.rundir import StaleSegmentError

from demo_pipeline import DEMO, make_plan
from lease_race import race_for_lease


def run_local(data_dir, run_dir, text=DEMO, log=lambda m: None, **kwargs):
    return run_plan(make_plan(data_dir, text), RunDir(run_dir), LocalExecutor(), log=log, **kwargs)


def committed_rows(run_dir) -> int:
    return sum(json.loads(m.read_text())["rows"] for m in sorted((run_dir / "segments").glob("*/_SUCCESS")))


def write_lease(run_dir, **fields) -> None:
    now = time.time()
    record = {"owner": "f" * 32, "host": socket.gethostname(), "pid": os.getpid(), "pid_start": None,
              "started": now - 3600, "heartbeat": now, **fields}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "_LEASE").write_text(json.dumps(record))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_run_on_the_same_directory_stops_at_once_naming_the_holder(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    inside, go_on = threading.Event(), threading.Event()

    def first_log(message: str) -> None:
        if message.startswith("segment 00-ingest: running"):  # the first run is mid-segment
            inside.set()
            go_on.wait(60)

    first: dict = {}
    thread = threading.Thread(target=lambda: first.update(result=run_local(data_dir, run_dir, log=first_log)))
    thread.start()
    try:
        assert inside.wait(60)
        started = time.monotonic()
        with pytest.raises(LeaseHeldError) as refused:
            run_local(data_dir, run_dir)
        assert time.monotonic() - started < 5
    finally:
        go_on.set()
        thread.join(120)
    message = str(refused.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in message, message
    assert "since" in message and "last heartbeat" in message and "looks alive" in message
    # The first run was not disturbed: it committed every row an undisturbed run commits.
    assert first["result"].computed == ["00-ingest"]
    clean = tmp_path / "clean"
    run_local(data_dir, clean)
    assert committed_rows(run_dir) == committed_rows(clean) == pq.read_table(
        run_dir / "segments" / "00-ingest").num_rows
    assert not (run_dir / "_LEASE").exists()


def test_a_dead_runs_lease_is_refused_without_force_unlock_and_taken_with_it(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    pid = dead_pid()
    write_lease(run_dir, pid=pid)
    with pytest.raises(LeaseHeldError, match=rf"looks dead \(pid {pid} is not running on this host\); rerun "
                                             "with --force-unlock"):
        run_local(data_dir, run_dir)
    assert not (run_dir / "segments").exists()  # refused before anything was written
    logged: list[str] = []
    result = run_local(data_dir, run_dir, log=logged.append, force_unlock=True)
    assert result.computed == ["00-ingest"]
    assert any(m.startswith("lease: taking over") and f"pid {pid}" in m for m in logged)
    assert not (run_dir / "_LEASE").exists()


def test_force_unlock_refuses_a_holder_that_looks_alive(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    write_lease(run_dir)  # this very process: alive
    with pytest.raises(LeaseHeldError, match="looks alive; --force-unlock only takes over the lease of a dead run"):
        run_local(data_dir, run_dir, force_unlock=True)
    assert json.loads((run_dir / "_LEASE").read_text())["owner"] == "f" * 32


def test_a_reused_pid_is_not_taken_for_the_holder(tmp_path):
    write_lease(tmp_path, pid_start="1")  # our pid, but a process started at another time
    lease = RunLease(tmp_path / "_LEASE")
    assert lease.stale_reason(lease.read()) == f"pid {os.getpid()} is not running on this host"


def test_another_hosts_lease_is_stale_only_when_its_heartbeat_is_old(tmp_path):
    write_lease(tmp_path, host="elsewhere.example", heartbeat=time.time() - 30)
    with pytest.raises(LeaseHeldError, match="looks alive"):
        RunLease(tmp_path / "_LEASE", stale_after_s=120).acquire(force_unlock=True)
    write_lease(tmp_path, host="elsewhere.example", heartbeat=time.time() - 600)
    with pytest.raises(LeaseHeldError, match=r"heartbeat is \d+s old \(stale after 120s\)"):
        RunLease(tmp_path / "_LEASE", stale_after_s=120).acquire()
    with RunLease(tmp_path / "_LEASE", stale_after_s=120, log=lambda m: None).acquire(force_unlock=True) as lease:
        assert json.loads((tmp_path / "_LEASE").read_text())["owner"] == lease.record["owner"]
    assert not (tmp_path / "_LEASE").exists()


def test_the_heartbeat_is_refreshed_while_the_run_lives(tmp_path):
    with RunLease(tmp_path / "_LEASE", heartbeat_s=0.05).acquire() as lease:
        first = json.loads((tmp_path / "_LEASE").read_text())
        time.sleep(0.5)
        later = json.loads((tmp_path / "_LEASE").read_text())
        assert later["heartbeat"] > first["heartbeat"] and later["owner"] == lease.record["owner"]
        assert later["host"] == socket.gethostname() and later["pid"] == os.getpid()
    assert not (tmp_path / "_LEASE").exists()


def test_a_lease_taken_over_stops_the_run_before_its_next_commit(tmp_path):
    lease = RunLease(tmp_path / "_LEASE", heartbeat_s=0.05, log=lambda m: None).acquire()
    write_lease(tmp_path, owner="a" * 32)  # someone else's now (a --force-unlock that thought us dead)
    time.sleep(0.5)
    with pytest.raises(LeaseLostError, match="taken over"):
        lease.check()
    lease.release()
    assert json.loads((tmp_path / "_LEASE").read_text())["owner"] == "a" * 32  # not ours to remove


def test_of_runs_racing_for_one_directory_exactly_one_gets_it(tmp_path):
    outcomes = race_for_lease(tmp_path / "_LEASE", 8)
    holders = [o for o in outcomes if isinstance(o, RunLease)]
    assert len(holders) == 1 and len(outcomes) == 8
    assert json.loads((tmp_path / "_LEASE").read_text())["owner"] == holders[0].record["owner"]
    holders[0].release()


def test_the_lease_is_released_when_a_run_fails(data_dir, tmp_path):
    run_local(data_dir, tmp_path)
    with pytest.raises(StaleSegmentError):
        run_local(data_dir, tmp_path, DEMO.replace("seed: 3", "seed: 4"))
    assert not (tmp_path / "_LEASE").exists()
