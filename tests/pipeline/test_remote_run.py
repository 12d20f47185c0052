"""Runs whose inputs and run directory are on a real S3-compatible server (moto, 127.0.0.1): parts byte-identical
to the same run on the local disk, the lease's best-effort create, parts listed by their segment's marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from demo_pipeline import DEMO


def test_demo_on_s3_matches_the_local_run(tmp_path, data_dir, s3_query):
    from gristmill.core import storage
    from gristmill.pipeline import build_plan, parse_pipeline
    from gristmill.pipeline.executors import LocalExecutor
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir

    for f in [*(data_dir / "warc").glob("*.warc.gz"), *(data_dir / "python-stdlib").glob("*.py")]:
        storage.resolve(f"s3://gristmill-run/data/{f.parent.name}/{f.name}?{s3_query}").write_bytes(f.read_bytes())
    local_text = DEMO.format(data=data_dir)
    remote_text = (local_text.replace(f"{data_dir}/warc/cc-main-2020-34-sample.warc.gz",
                                      f"s3://gristmill-run/data/warc/cc-main-2020-34-sample.warc.gz?{s3_query}")
                   .replace(f"{data_dir}/warc/truncated-record.warc.gz",
                            f"s3://gristmill-run/data/warc/truncated-record.warc.gz?{s3_query}")
                   .replace(f"{data_dir}/python-stdlib/*.py", f"s3://gristmill-run/data/python-stdlib/*.py?{s3_query}"))
    assert "s3://" in remote_text

    local = run_plan(build_plan(parse_pipeline(local_text, "l.yaml"), data_dir), RunDir(tmp_path / "run"),
                     LocalExecutor(), log=lambda m: None)
    remote_dir = RunDir(f"s3://gristmill-run/runs/demo?{s3_query}")
    remote = run_plan(build_plan(parse_pipeline(remote_text, "r.yaml"), data_dir), remote_dir, LocalExecutor(),
                      log=lambda m: None)
    assert [(s.rows_in, s.rows_out) for seg in remote.stats for s in seg.stages] == \
        [(s.rows_in, s.rows_out) for seg in local.stats for s in seg.stages]

    local_parts = sorted((tmp_path / "run" / "segments" / "00-ingest").glob("part-*.parquet"))
    remote_parts = remote_dir.segment_dir("00-ingest").glob("part-*.parquet")
    assert [p.name for p in remote_parts] == [p.name for p in local_parts]
    # Text documents carry their path in `origin`, which differs between the two runs; the WARC parts don't.
    for lp, rp in zip(local_parts, remote_parts):
        if lp.name.startswith("part-00000000"):
            assert rp.read_bytes() == lp.read_bytes()
    assert (remote_dir.segment_dir("00-ingest") / "_SUCCESS").exists()

    # A rerun skips the committed segment on the object store.
    again = run_plan(build_plan(parse_pipeline(remote_text, "r.yaml"), data_dir), remote_dir, LocalExecutor(),
                     log=lambda m: None)
    assert again.skipped == ["00-ingest"]


def test_lease_on_an_object_store_run_directory(s3_query):
    """Best-effort create (write, settle, read back): a second run is refused naming the holder; release
    removes the lease; a stale lease of another host is taken over with force_unlock only."""
    import json
    import time

    from gristmill.core import storage
    from gristmill.pipeline.lease import LeaseHeldError, RunLease

    path = f"s3://gristmill-run/runs/leased/_LEASE?{s3_query}"
    with RunLease(path, settle_s=0.1).acquire() as lease:
        with pytest.raises(LeaseHeldError, match=f"pid {os.getpid()} on host .*looks alive"):
            RunLease(path, settle_s=0.1).acquire()
        assert json.loads(storage.resolve(path).read_text())["owner"] == lease.record["owner"]
    assert not storage.resolve(path).exists()

    stale = {"owner": "e" * 32, "host": "elsewhere.example", "pid": 1, "started": 0, "heartbeat": time.time() - 600}
    storage.resolve(path).write_text(json.dumps(stale))
    with pytest.raises(LeaseHeldError, match="looks dead .*--force-unlock"):
        RunLease(path, settle_s=0.1).acquire()
    with RunLease(path, settle_s=0.1, log=lambda m: None).acquire(force_unlock=True) as lease:
        assert json.loads(storage.resolve(path).read_text())["owner"] == lease.record["owner"]
    assert not storage.resolve(path).exists()


def test_two_runs_racing_for_an_object_store_lease_with_the_default_settle(s3_query):
    """Both look before either PUT lands: the settle (scaled from the store's own look and PUT) lets the earlier
    writer see the later one's lease, so exactly one run holds the directory."""
    from gristmill.pipeline.lease import MIN_SETTLE_S, SETTLE_MARGIN, LeaseHeldError, RunLease
    from lease_race import race_for_lease

    path = f"s3://gristmill-run/runs/raced/_LEASE?{s3_query}"
    lease = RunLease(path)
    assert lease._settle(0.001) == MIN_SETTLE_S and lease._settle(0.5) == SETTLE_MARGIN * 0.5
    assert RunLease(path, settle_s=3.0)._settle(0.001) == 3.0

    outcomes = race_for_lease(path, 2)
    held = [o for o in outcomes if isinstance(o, RunLease)]
    refused = [o for o in outcomes if isinstance(o, LeaseHeldError)]
    assert len(held) == 1 and len(refused) == 1
    held[0].release()


def test_listed_parts_on_an_object_store_run_directory(data_dir, s3_query):
    """A part deleted from a committed segment on S3: verify names it and a rerun recomputes the segment."""
    from gristmill.pipeline import build_plan, parse_pipeline
    from gristmill.pipeline.executors import LocalExecutor
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir

    plan = build_plan(parse_pipeline(DEMO.format(data=data_dir), "d.yaml"), data_dir)
    run_dir = RunDir(f"s3://gristmill-run/runs/listed?{s3_query}")
    run_plan(plan, run_dir, LocalExecutor(), log=lambda m: None)
    assert run_dir.verify_segments() == []
    marker = run_dir.marker("00-ingest")
    assert [p["path"] for p in marker["parts"]] == [p.name for p in run_dir.segment_dir("00-ingest").glob("part-*")]
    victim = run_dir.segment_dir("00-ingest") / marker["parts"][0]["path"]
    victim.delete()
    assert run_dir.verify_segments() == [f"segments/00-ingest/{victim.name}: listed in _SUCCESS but missing"]
    logged: list[str] = []
    again = run_plan(plan, run_dir, LocalExecutor(), log=logged.append)
    assert again.computed == ["00-ingest"] and any("no longer match" in m for m in logged)
    assert run_dir.verify_segments() == [] and victim.exists()
    assert not (run_dir.root / "_LEASE").exists()
    from gristmill.pipeline.cli import main

    assert main(["verify", str(run_dir.root)]) == 0


def test_a_run_on_an_object_store_reports_from_the_statistics_it_wrote_without_fetching_them(
    data_dir, s3_query, s3_requests
):
    """The run's statistics, the report's derived tables and the final stats.json are read by the report and the
    run tables from the bytes the run wrote: no request under stats/ but the writes."""
    import json

    from gristmill.pipeline import build_plan, parse_pipeline
    from gristmill.pipeline.executors import LocalExecutor
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir

    run_dir = RunDir(f"s3://gristmill-run/runs/stats?{s3_query}")
    result = run_plan(build_plan(parse_pipeline(DEMO.format(data=data_dir), "l.yaml"), data_dir), run_dir,
                      LocalExecutor(), log=lambda m: None)
    stats = [(method, key) for method, key in s3_requests.requests if "/runs/stats/stats/" in key]
    assert stats and {method for method, _ in stats} == {"PUT"}, [r for r in stats if r[0] != "PUT"]
    final = json.loads((run_dir.stats_dir / "stats.json").read_text())
    assert final["wall_seconds"] == result.seconds and any("report" in str(row) for row in final["timeline"])
    assert (run_dir.root / "report.html").read_text().count("<section") >= 3


def test_the_settle_is_left_to_confirm_and_a_rival_written_meanwhile_wins(s3_query):
    """``acquire(confirm=False)`` returns after the PUT; ``confirm()`` waits out the rest of the settle and reads
    back: a rival's lease written in between wins, and releasing the loser leaves the rival's lease in place."""
    import json
    import time

    from gristmill.core import storage
    from gristmill.pipeline.lease import LeaseHeldError, RunLease

    path = f"s3://gristmill-run/runs/confirmed/_LEASE?{s3_query}"
    asked = time.perf_counter()
    lease = RunLease(path, settle_s=1.0).acquire(confirm=False)
    assert time.perf_counter() - asked < 0.9  # the settle is not spent in acquire
    rival = {"owner": "r" * 32, "host": "elsewhere.example", "pid": 1, "started": time.time(),
             "heartbeat": time.time()}
    storage.resolve(path).write_text(json.dumps(rival))
    with pytest.raises(LeaseHeldError, match="run rrrrrrrr"):
        with lease:
            lease.confirm()
    assert time.perf_counter() - asked >= 1.0  # confirm waited out the whole settle before reading back
    assert json.loads(storage.resolve(path).read_text())["owner"] == "r" * 32

    storage.resolve(path).delete()
    with RunLease(path, settle_s=0.1).acquire(confirm=False) as lease:
        lease.confirm()
        assert json.loads(storage.resolve(path).read_text())["owner"] == lease.record["owner"]
    assert not storage.resolve(path).exists()


def test_a_run_refused_by_a_rivals_lease_wrote_nothing_to_the_run_directory(tmp_path, data_dir, s3_query):
    """A rival whose PUT lands during this run's settle (it looked before ours landed) holds the directory: the
    run, which did its plan check meanwhile, stops at the lease's confirmation having written nothing."""
    import json
    import threading
    import time

    from gristmill.core import storage
    from gristmill.pipeline import build_plan, parse_pipeline
    from gristmill.pipeline.executors import LocalExecutor
    from gristmill.pipeline.lease import LeaseHeldError
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir

    run_dir = RunDir(f"s3://gristmill-run/runs/rivalled?{s3_query}")
    rival = {"owner": "r" * 32, "host": "elsewhere.example", "pid": 1, "started": time.time(),
             "heartbeat": time.time()}

    def rival_put_after_ours() -> None:
        deadline = time.monotonic() + 30
        while not run_dir.lease_path.exists() and time.monotonic() < deadline:
            time.sleep(0.002)
        run_dir.lease_path.write_text(json.dumps(rival))

    racer = threading.Thread(target=rival_put_after_ours)
    racer.start()
    plan = build_plan(parse_pipeline(DEMO.format(data=data_dir), "d.yaml"), data_dir)
    with pytest.raises(LeaseHeldError, match="run rrrrrrrr .* at the same time"):
        run_plan(plan, run_dir, LocalExecutor(), log=lambda m: None)
    racer.join()
    assert [loc.name for loc in run_dir.root.walk_files()] == ["_LEASE"]
    assert json.loads(run_dir.lease_path.read_text())["owner"] == "r" * 32


def test_a_runs_report_reads_the_parts_and_markers_it_committed_without_fetching_them(
    data_dir, s3_query, s3_requests
):
    """The report opens each segment's parts and rejects files as its ``_SUCCESS`` lists them (size and hash), so
    the files this process wrote are read from the bytes it holds, and the markers it wrote as written: no GET
    under segments/ or rejects/ in the whole run."""
    from gristmill.pipeline import build_plan, parse_pipeline
    from gristmill.pipeline.executors import LocalExecutor
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir

    run_dir = RunDir(f"s3://gristmill-run/runs/held?{s3_query}")
    run_plan(build_plan(parse_pipeline(DEMO.format(data=data_dir), "l.yaml"), data_dir), run_dir, LocalExecutor(),
             log=lambda m: None)
    segments = [(method, key) for method, key in s3_requests.requests if "/runs/held/segments/" in key]
    assert any(method == "PUT" and key.endswith("/_SUCCESS") for method, key in segments)
    assert [(method, key) for method, key in segments if method == "GET"] == []
    # Rejected rows' files are listed by the marker of the segment whose steps dropped them, and read as held.
    rejects = [(method, key) for method, key in s3_requests.requests if "/runs/held/rejects/" in key]
    listed = run_dir.marker("00-ingest")["rejects"]
    assert sorted(key for method, key in rejects if method == "PUT") == sorted(
        f"/gristmill-run/runs/held/rejects/{entry['path']}" for entry in listed)
    assert {method for method, _ in rejects} == {"PUT"}
    assert "<section" in (run_dir.root / "report.html").read_text()


def test_a_run_lists_the_folders_it_resets_once_while_its_lease_settles(data_dir, s3_query, s3_requests):
    """segments/ and rejects/ are listed once, before the lease is confirmed: resetting a segment then lists
    nothing, no marker is asked for of a segment without a folder, and a rerun still removes what a killed run
    left in a folder that was there (a stray part, a stray rejects file)."""
    import uuid

    from gristmill.pipeline import build_plan, parse_pipeline
    from gristmill.pipeline.executors import LocalExecutor
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir

    name = f"listed-{uuid.uuid4().hex[:8]}"  # a run directory no other test (the server is the process's) wrote
    run_dir = RunDir(f"s3://gristmill-run/runs/{name}?{s3_query}")
    plan = build_plan(parse_pipeline(DEMO.format(data=data_dir), "l.yaml"), data_dir)
    run_plan(plan, run_dir, LocalExecutor(), log=lambda m: None)
    listings = [key.rsplit("prefix=", 1)[1] for method, key in s3_requests.requests if "list-type" in key]
    assert listings.count(f"runs/{name}/segments/") == 1 and listings.count(f"runs/{name}/rejects/") == 1
    assert not [p for p in listings if p.startswith(f"runs/{name}/segments/") and p != f"runs/{name}/segments/"]
    assert not any(m == "HEAD" and k.endswith("/_SUCCESS") for m, k in s3_requests.requests)

    first = {loc.path for loc in run_dir.root.walk_files()}
    rejected = next(loc for loc in run_dir.root.walk_files() if "/rejects/" in loc.path)
    (run_dir.segment_dir("00-ingest") / "_SUCCESS").delete()  # as if killed before its commit
    (run_dir.segment_dir("00-ingest") / "part-00000000ffffffff.parquet").write_bytes(b"left by a killed run")
    rejected.with_name("part-00000000ffffffff-0000000000000000.parquet").write_bytes(b"left by a killed run")
    run_plan(plan, run_dir, LocalExecutor(), log=lambda m: None)
    assert {loc.path for loc in run_dir.root.walk_files()} == first
