"""Running a plan: segment by segment, skipping committed ones, committing each only when complete.

The run holds the run directory's lease (pipeline/lease.py) from before it reads anything until it ends, and has
it confirmed before it writes anything. A
committed segment is reused only if its parts still match its ``_SUCCESS`` listing; otherwise it is recomputed,
and every segment after it. A rerun refused for a changed plan leaves the run directory, ``plan.json``
included, as it was.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from gristmill.core import storage
from gristmill.core.layout import RunLayout
from gristmill.core.parts import SegmentPart
from gristmill.pipeline.executors import LocalExecutor, RayExecutor, SegmentResult, segment_head
from gristmill.pipeline.lease import RunLease
from gristmill.pipeline.plan import Plan, Segment
from gristmill.pipeline.rundir import (ListedDirs, RunDir, StaleSegmentError, atomic_write_bytes, column_layouts,
                                       json_bytes)
from gristmill.pipeline.stats import (GlobalStepStats, RunSummary, SegmentStats, StageStats, aggregate,
                                      load_segment_stats, update_run_stats, write_run_stats, write_segment_stats)
from gristmill.pipeline.timeline import RunClock
from gristmill.stages.base import GlobalContext


class IntegrityError(RuntimeError):
    """What was written disagrees with what the stages reported; the segment is not committed."""


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    plan_hash: str
    stats: list[SegmentStats]
    skipped: list[str]
    computed: list[str]
    seconds: float


def run_plan(plan: Plan, run_dir: RunDir, executor: LocalExecutor | RayExecutor, force: bool = False,
             log=print, force_unlock: bool = False, clock: RunClock | None = None) -> RunResult:
    """Run ``plan`` into ``run_dir``; ``force`` rebuilds segments committed by another plan, ``force_unlock``
    takes over the lease a dead run left behind (see pipeline/lease.py). ``clock`` holds what ran before (the
    command's plan build and Ray start), so the run's wall time and timeline include it."""
    clock = clock or RunClock()
    try:
        run_dir.root.mkdir(parents=True, exist_ok=True)
        asked = time.perf_counter()
        # Unconfirmed: the object-store settle runs during the plan check's reads (see _run_holding_lease).
        with RunLease(run_dir.lease_path, log=log).acquire(force_unlock=force_unlock, confirm=False) as lease:
            clock.add("lease", "driver", time.perf_counter() - asked)
            return _run_holding_lease(plan, run_dir, executor, force, log, lease, clock)
    finally:
        executor.close()  # also when the lease or the plan check refused the run (closing twice is harmless)


def _run_holding_lease(plan: Plan, run_dir: RunDir, executor, force: bool, log, lease: RunLease,
                       clock: RunClock) -> RunResult:
    checking = time.perf_counter()
    listed = run_dir.listed_dirs()  # the folders a segment's reset removes: listed once, during the settle
    found = _refuse_stale(plan, run_dir, force, listed)  # before plan.json is written: a refused rerun changes nothing
    plan_bytes = json_bytes(plan.to_json())
    clock.add("plan check and plan.json", "driver", time.perf_counter() - checking)
    may_write = LeaseConfirmation(lease, lambda: atomic_write_bytes(run_dir.plan_path, plan_bytes))
    for warning in plan.warnings:
        log(f"warning: {warning}")
    per_segment: list[SegmentStats] = []
    skipped, computed = [], []
    build_seconds: dict[str, float] = {}
    try:
        markers = _run_segments(plan, run_dir, executor, force, log, per_segment, skipped, computed, build_seconds,
                                lease, clock, found, listed, may_write)
        with clock.phase("lease"):
            may_write()  # a run that computed nothing still confirms its lease and writes plan.json
    finally:
        may_write.settle()
        with clock.phase("executor close"):
            executor.close()
    with clock.phase("write stats"):
        snapshot = clock.snapshot()
        written = write_run_stats(run_dir.stats_dir, per_segment, RunSummary(
            plan_hash=plan.plan_hash, executor=executor.name, wall_seconds=snapshot["wall_seconds"],
            segments_skipped=skipped, segments_computed=computed, workers=getattr(executor, "workers", None),
            build_seconds=build_seconds, warnings=plan.warnings, timeline=snapshot["timeline"]))
    # What the report reads that this run wrote, as written: plan.json, the markers it committed, its statistics.
    kept = {run_dir.plan_path: plan_bytes, **{run_dir.stats_dir / name: data for name, data in written.items()},
            **{run_dir.success_path(name): json_bytes(markers[name]) for name in computed}}
    final = _write_report(run_dir, clock, log, kept)
    return RunResult(run_dir.root, plan.plan_hash, per_segment, skipped, computed, final["wall_seconds"])


def _write_report(run_dir: RunDir, clock: RunClock, log, kept: dict) -> dict:
    """Write report.html, whose timeline ends with its own seconds; then record that final timeline (and the
    wall time it sums to) in stats.json, so a later ``gristmill report`` draws the same figures. ``kept``: files
    this run wrote ({path: bytes}), which the report reads as written instead of fetching them."""
    from gristmill.pipeline._internal.duck import RunFiles
    from gristmill.pipeline._internal.report_stats import write_run_tables
    from gristmill.pipeline.report import write_report

    start = time.perf_counter()
    files = RunFiles(run_dir.root)  # the report's reading of the run, which the run tables reuse
    for path, data in kept.items():
        files.wrote(path, data=data)
    try:
        log(f"report: {write_report(run_dir.root, clock=clock, files=files)}")
    except Exception as exc:  # a report problem must not fail a run whose data is committed
        log(f"report.html not written: {exc!r} (retry with: gristmill report {run_dir.root})")
        if clock.final is None:
            clock.add("report (failed)", "driver", time.perf_counter() - start)
    final = clock.finish()
    path = run_dir.stats_dir / "stats.json"
    files.wrote(path, data=update_run_stats(run_dir.stats_dir, final, current=files.read_bytes(path)))
    try:
        write_run_tables(run_dir.root, files)
    except Exception as exc:
        log(f"stats/timeline.parquet not written: {exc!r} (retry with: gristmill report {run_dir.root})")
    return final


class LeaseConfirmation:
    """The lease confirmed (what is left of its settle on an object store, then a read-back) and then plan.json
    written, on a thread of its own, so that the first segment's work overlaps the settle. Calling it waits for
    both and raises what they raised: every write of the run passes it first, so a run that lost the lease has
    written nothing but its lease."""

    def __init__(self, lease: RunLease, write_plan):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="gristmill-lease")
        self._done = self._pool.submit(lambda: (lease.confirm(), write_plan()))

    def __call__(self) -> None:
        self._done.result()

    def settle(self) -> None:
        """Wait for the thread however it ends (before the lease is released), raising nothing."""
        wait([self._done])
        self._pool.shutdown(wait=True)


def _refuse_stale(plan: Plan, run_dir: RunDir, force: bool, listed: ListedDirs) -> dict[str, dict | None]:
    """Raise ``StaleSegmentError`` if a segment was committed by another plan and ``force`` is not given;
    returns each segment's marker as read (None: not committed, or no folder in ``listed``), so the run does not
    read them again."""
    if force:
        return {}
    return {segment.name: run_dir.committed(segment.name, segment.hash) if segment.name in listed.segments else None
            for segment in plan.segments}


def _run_segments(plan: Plan, run_dir: RunDir, executor, force: bool, log, per_segment: list, skipped: list,
                  computed: list, build_seconds: dict, lease: RunLease, clock: RunClock,
                  found: dict[str, dict | None], listed: ListedDirs,
                  may_write: LeaseConfirmation) -> dict[str, dict]:
    """``found``: markers ``_refuse_stale`` read (under this run's lease, so still what the store holds);
    ``listed``: the folders there were when the run started. Returns every segment's marker, as committed or
    read."""
    input_parts: list[SegmentPart] = []
    previous: tuple[str, dict] | None = None  # the last segment's name and marker
    markers: dict[str, dict] = {}  # every segment's so far, committed or reused: where their parts' columns are
    rebuild = started = False
    for segment in plan.segments:
        info = None
        if not rebuild:
            try:
                info = (found[segment.name] if segment.name in found
                        else run_dir.committed(segment.name, segment.hash))
            except StaleSegmentError:
                if not force:
                    raise
                rebuild = True  # everything downstream of a rebuilt segment is rebuilt too
        if info is not None:
            problems = run_dir.check_parts(segment.name, info)
            if problems:
                log(f"segment {segment.name}: committed, but its parts no longer match its _SUCCESS "
                    f"({'; '.join(problems)}): recomputing it and every segment after it")
                info, rebuild = None, True
        stats_path = run_dir.segment_stats_path(segment.name)
        if info is not None and stats_path.exists():
            log(f"segment {segment.name}: committed, skipped")
            per_segment.append(load_segment_stats(stats_path))
            skipped.append(segment.name)
        else:
            segment_head(plan, segment, input_parts).prepare(log)  # the inputs' head finds where limits cut
            if not started:
                t = time.perf_counter()
                workers = executor.start(plan, segment, str(run_dir.root))
                if workers:
                    clock.add("workers set up", "start", time.perf_counter() - t)
                    log(f"executor {executor.name} ({executor.mode}): {len(set(workers))} workers set up in "
                        f"{time.perf_counter() - t:.1f}s")
                started = True
            stats, build_seconds[segment.name], info = _run_segment(plan, segment, input_parts, previous,
                                                                    run_dir, executor, log, lease, clock, markers,
                                                                    listed, may_write)
            per_segment.append(stats)
            computed.append(segment.name)
        markers[segment.name] = info
        input_parts = run_dir.segment_parts(segment.name, info, markers)
        previous = (segment.name, info)
    return markers


def _run_segment(plan: Plan, segment: Segment, input_parts: list[SegmentPart], previous: tuple[str, dict] | None,
                 run_dir: RunDir, executor, log, lease: RunLease, clock: RunClock,
                 markers: dict[str, dict], listed: ListedDirs,
                 may_write: LeaseConfirmation) -> tuple[SegmentStats, float, dict]:
    """Compute and commit one segment (``previous``: the name and marker of the segment it reads; ``markers``:
    those of every segment before it); returns its stats, the seconds its global ``build`` took and its
    ``_SUCCESS`` marker."""
    head = segment.global_step
    slugs = [s.slug for s in segment.steps]
    if head is not None or run_dir.reset_writes(segment.name, slugs, listed):
        may_write()
    seg_dir = run_dir.reset_segment(segment.name, slugs, listed)
    state = global_stats = None
    build_start = time.perf_counter()
    if head is not None:
        stage = head.instantiate()
        stage.layout = RunLayout(run_dir.root)
        ctx = GlobalContext.for_step(stage.layout, head.stage_name, head.position, input_parts, executor.runtime,
                                     plan.spec.seed)
        log(f"segment {segment.name}: building {head.stage_name} over {len(input_parts)} parts")
        state = stage.build(ctx)  # type: ignore[attr-defined]
        global_stats = GlobalStepStats(head.position, head.label, head.stage_name, ctx.stats)
    build_seconds = time.perf_counter() - build_start if head is not None else 0.0
    if head is not None:
        clock.add(f"{head.label} · {head.stage_name} (build)", "global", build_seconds, segment.name, head.label,
                  head.stage_name)
    log(f"segment {segment.name}: running {', '.join(s.stage_name for s in segment.steps)}")
    stream_start = time.perf_counter()
    result = executor.run_segment(plan, segment, input_parts, state, str(run_dir.root), seg_dir, may_write)
    stream_seconds = time.perf_counter() - stream_start
    stats = aggregate(result.pieces)
    clock.add_segment_steps(segment.name, stream_seconds, _worker_seconds(segment, stats))
    commit_start = time.perf_counter()
    _check_integrity(segment, result, stats)
    layouts, parts = column_layouts(segment.name, result.written, *(previous or (None, None)))
    marker = {
        "hash": segment.hash, "rows": sum(w["rows"] for w in result.written), "build_seconds": build_seconds,
        "layouts": layouts, "parts": parts, "upstream": run_dir.upstream_digests(segment.name, layouts, markers),
    }
    if result.rejects:
        marker["rejects"] = result.rejects  # under rejects/: read by the report as listed (size and hash)
    may_write()
    lease.check()  # a run whose lease was taken over must not commit over its successor's work
    stats_out = SegmentStats(segment.name, stats, global_stats)
    # Before the marker, the commit point: a committed segment always has its statistics (a resume skips it only then).
    write_segment_stats(run_dir.segment_stats_path(segment.name), stats_out)
    run_dir.commit_segment(segment.name, marker)
    clock.add(f"{segment.name}: check and commit", "driver", time.perf_counter() - commit_start, segment.name)
    files = sum(1 for p in parts if "bytes" in p)
    log(f"segment {segment.name}: committed {marker['rows']:,} rows in {len(parts)} parts ({files} files)")
    return stats_out, build_seconds, marker


def _worker_seconds(segment: Segment, stats: list[StageStats]) -> list[tuple[str, str, float]]:
    """(label, stage, seconds its workers reported, all sources) per step of the segment, in order."""
    by_position: dict[int, float] = {}
    for s in stats:
        by_position[s.position] = by_position.get(s.position, 0.0) + s.seconds
    return [(step.label, step.stage_name, by_position.get(step.position, 0.0)) for step in segment.steps]


def _check_integrity(segment: Segment, result: SegmentResult, stats: list[StageStats]) -> None:
    """Rows on disk per part must equal the last step's reported output, and every step's accounting must
    hold: otherwise a document was lost or duplicated somewhere, and the segment must not be committed."""
    for s in stats:
        if not s.accounting_holds():
            raise IntegrityError(f"{s.label} ({s.stage}), source {s.source}: rows in {s.rows_in} != "
                                 f"out {s.rows_out} + dropped {s.rows_dropped}")
    last = segment.steps[-1].position
    reported: dict[int, int] = {}
    for piece in result.pieces:
        if piece["position"] == last:
            reported[piece["part"]] = reported.get(piece["part"], 0) + piece["rows_out"]
    written = {w["part"]: w["rows"] for w in result.written}
    if len(written) != len(result.written):
        raise IntegrityError(f"segment {segment.name}: a part was written by two batches (split part)")
    for part, rows in reported.items():
        if rows != written.get(part, 0):
            raise IntegrityError(f"segment {segment.name}: part {part:016x} has {written.get(part, 0)} rows "
                                 f"on disk but its last step kept {rows}")
    # Counts between consecutive steps must chain: what a step kept is what the next one received.
    by_pos: dict[int, tuple[int, int]] = {}
    for s in stats:
        rin, rout = by_pos.get(s.position, (0, 0))
        by_pos[s.position] = (rin + s.rows_in, rout + s.rows_out)
    positions = [s.position for s in segment.steps]
    for a, b in zip(positions, positions[1:]):
        if by_pos.get(a, (0, 0))[1] != by_pos.get(b, (0, 0))[0]:
            raise IntegrityError(f"segment {segment.name}: step {a} kept {by_pos.get(a, (0, 0))[1]} rows but "
                                 f"step {b} received {by_pos.get(b, (0, 0))[0]}")
