"""Executors run one segment: its head (ingest, or a global step's apply over the previous segment's parts; see
``SegmentHead``) and its streaming steps, ending in committed Parquet parts. Both run the same per-batch code
(``gristmill.pipeline._internal.runner``), so their output is byte-identical. One strategy each:

- ``LocalExecutor``: in-process, one batch at a time; for tests, debugging and small inputs.
- ``RayExecutor``: the head's work items (ingest units, or parts) in blocks, one plain Ray task per block that
  chains every step per table and writes its parts (``_SegmentTask``), returning what it wrote and its stats
  reports; stateful stages are set up once per worker process. The segment commits on the driver once every task
  has returned. ``start()`` sets up the worker processes once per run; ``init_local_ray`` starts the embedded
  local Ray. Public Ray API only.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Any, Callable

from gristmill.core.runtime import LocalRuntime, Runtime
from gristmill.core.storage import BackgroundWrites
from gristmill.pipeline._internal.inputs import InputsHead
from gristmill.pipeline._internal.runner import PartsHead, SegmentHead, StepRunner, cached_stage
from gristmill.pipeline.plan import Plan, Segment
from gristmill.pipeline.progress import Progress, totals_by_step
from gristmill.pipeline.spec import ExecutionSpec
from gristmill.stages.base import StageOutput


# On Linux, Ray replaces a node IP of 127.0.0.1 by the machine's routable address, and every Ray process of the
# node then listens there (GCS, raylet, workers, agents) or on all interfaces (the dashboard's and the autoscaler
# monitor's Prometheus /metrics, which take no token). Ray keeps 127.0.0.1 in its single-machine mode, the default
# on macOS and Windows, switched by this variable and read once, when ``ray`` is first imported.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# The embedded Ray's processes inherit these unless the user set them: no usage report sent to Ray's servers
# (RAY_USAGE_STATS_ENABLED, Ray's usage-stats documentation); and two settings of Ray's system config, given as
# RAY_<name> environment variables, the way Ray's documentation sets its memory monitor (RAY_memory_usage_threshold)
# and the way a cluster's operators set them on `ray start` (deploy/README.md). Ray ends a worker process that has
# been idle for 1 s whenever fewer CPUs are free than workers are idle, so a global step that reserves every CPU
# (tokenizer training) cost the next segment a cold worker, started ~0.5-0.9 s late with its stages set up again
# (BENCHMARKS.md, issue 9): the run's workers live as long as the run instead (Ray's memory monitor still ends
# idle workers under pressure). Its metrics agent would serve Prometheus /metrics without a token: nothing reads
# them in a local run.
LOCAL_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0",
                 "RAY_idle_worker_killing_time_threshold_ms": str(24 * 3600 * 1000),
                 "RAY_enable_metrics_collection": "false"}


def import_ray_single_machine():
    """``import ray`` with Ray's single-machine mode on, when this is the first import of ``ray``. The variable is
    removed again at once: ``ray start`` processes started later (a cluster's nodes) must not inherit it."""
    if "ray" not in sys.modules and SINGLE_MACHINE_ENV not in os.environ:
        os.environ[SINGLE_MACHINE_ENV] = "0"
        try:
            import ray
        finally:
            del os.environ[SINGLE_MACHINE_ENV]
    import ray

    return ray


def init_local_ray(num_cpus: int | None = None) -> None:
    """Start the embedded local Ray (``LOCAL_RAY_ENV``): every process of it listens on 127.0.0.1 only,
    token authentication left at Ray's default (on), no metrics exporter, no usage report. Ray must be imported
    here first (``gristmill run`` does so); when it was imported before, the node would listen on the machine's
    address and this refuses to start it. A cluster's own settings are its operators' (deploy/README.md)."""
    ray = import_ray_single_machine()
    if ray.is_initialized():
        return
    added = {k: v for k, v in LOCAL_RAY_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        # Single-machine mode (import_ray_single_machine) puts the node on 127.0.0.1; checked below.
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    finally:
        for key in added:
            del os.environ[key]
    node_ip = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(node_ip).is_loopback:
        ray.shutdown()
        raise RuntimeError(
            f"the embedded Ray would listen on {node_ip}, not only on 127.0.0.1: ray was imported before "
            f"gristmill.pipeline.executors.init_local_ray; call it (or import_ray_single_machine) before importing "
            f"ray, or set {SINGLE_MACHINE_ENV}=0")


def segment_head(plan: Plan, segment: Segment, input_parts: list) -> SegmentHead:
    """What the segment starts from: the pipeline's inputs, or the previous segment's committed parts."""
    return InputsHead(plan) if segment.reads_inputs else PartsHead(input_parts)


class SegmentResult:
    def __init__(self, written: list[dict], pieces: list[dict], rejects: list[dict] | None = None):
        self.written = sorted(written, key=lambda w: w["part"])
        # The rejects files written (path under rejects/, bytes, hash), one entry per path: a piece run again
        # rewrote its file with the same rows.
        self.rejects = sorted({r["path"]: r for r in rejects or []}.values(), key=lambda r: r["path"])
        self.pieces = pieces


class _DictReporter:
    def __init__(self) -> None:
        self.pieces: dict[tuple, dict] = {}

    def __call__(self, key: tuple, report: dict) -> None:
        self.pieces[key] = report


def _show(progress: Progress | None, head: SegmentHead, pieces, final: bool = False) -> None:
    if progress is not None:
        progress.update(totals_by_step(pieces, by_unit=head.by_unit), final=final)


def stream_block(head: SegmentHead, runners: list[StepRunner], items: list, segment_dir: Path,
                 after_table: Callable[[], None], gate: Callable[[], None] | None = None) -> list[dict]:
    """Every step of a segment over each table of the work ``items``, each table's parts written at once (then
    ``after_table``); returns what was written. Every upload ends before this returns, so before the segment or
    task commits; ``gate`` is passed before the first write (``BackgroundWrites``)."""
    written: list[dict] = []
    with BackgroundWrites(gate=gate) as writes:
        for runner in runners:
            runner.writes = writes
        for table in head.tables(runners[0], items):
            for runner in runners[1:]:
                table = runner(table)
            written += head.write_parts(segment_dir, table, writes)
            after_table()
    for runner in runners:
        runner.writes = None
    return written


class LocalExecutor:
    name = "local"
    mode = "in-process"
    workers = 1

    def __init__(self, progress: Progress | None = None):
        self.progress = progress
        self.runtime = LocalRuntime()

    def start(self, plan: Plan, segment: Segment, run_dir: str) -> None:
        """Nothing to start: stages are set up by the segment's runners, in this process."""

    def close(self) -> None:
        pass

    def run_segment(self, plan: Plan, segment: Segment, input_parts: list[str], state: Any, run_dir: str,
                    segment_dir: Path, may_write: Callable[[], None] | None = None) -> SegmentResult:
        """``may_write``: passed before the segment's first write (the run's lease confirmed); its work starts
        at once."""
        reporter = _DictReporter()
        rejects = plan.spec.output.rejects
        runners = [StepRunner(step, run_dir, rejects, reporter, state if i == 0 else None)
                   for i, step in enumerate(segment.steps)]
        head = segment_head(plan, segment, input_parts)
        items = head.items()
        if self.progress is not None:
            self.progress.start_segment(segment.name, len(items))
        written = stream_block(head, runners, items, segment_dir,
                               lambda: _show(self.progress, head, reporter.pieces.values()), gate=may_write)
        _show(self.progress, head, reporter.pieces.values(), final=True)
        return SegmentResult(written, list(reporter.pieces.values()), [r for u in runners for r in u.rejects_written])


# --- Ray ----------------------------------------------------------------------------------------------------

class _TaskReports:
    """A segment task's piece reports. All of them go back with the task's result, which is what the segment's
    stats are made of; as each table's parts are written they are also sent on to the driver's collector for the
    progress display, without waiting for it (a task blocked in ``ray.get`` lends its CPU to a queued task, which
    Ray starts in a new, cold worker process)."""

    def __init__(self, collector, segment: str):
        self.collector = collector
        self.segment = segment
        self.reports: dict[tuple, dict] = {}  # keyed: a batch run twice overwrites its own report
        self._unsent: list[tuple[tuple, dict]] = []

    def __call__(self, key: tuple, report: dict) -> None:
        self.reports[key] = report
        self._unsent.append((key, report))

    def flush(self) -> None:
        if self._unsent and self.collector is not None:
            self.collector.report_many.remote(self.segment, self._unsent)
        self._unsent = []


class _Collector:
    """The driver's view of the running segment's progress (reports its tasks send as they go; the segment's stats
    come from the tasks' results), and the barrier of ``RayExecutor.start``. One actor per run."""

    def __init__(self) -> None:
        self._segment: str | None = None
        self._pieces: dict[tuple, dict] = {}
        self._arrived = 0
        self._all_arrived = None

    async def arrive(self, workers: int, timeout: float) -> None:
        """Returns once ``workers`` callers have arrived, or after ``timeout`` seconds."""
        import asyncio

        if self._all_arrived is None:
            self._all_arrived = asyncio.Event()
        self._arrived += 1
        if self._arrived >= workers:
            self._all_arrived.set()
        try:
            await asyncio.wait_for(self._all_arrived.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def start_segment(self, segment: str) -> None:
        self._segment, self._pieces = segment, {}

    def report_many(self, segment: str, reports: list[tuple[tuple, dict]]) -> None:
        if segment == self._segment:  # a late report of a finished segment is not this one's progress
            self._pieces.update(reports)

    def totals(self, by_unit: bool) -> dict[int, dict]:
        return totals_by_step(self._pieces.values(), by_unit)


def assigned_cpus() -> int:
    """The CPUs Ray assigned to the calling task or actor (call it only inside one): a stage's native thread
    pools are sized to them."""
    import ray

    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1) or 1))


def _set_up_worker(steps: list, run_dir: str, collector, workers: int) -> int:
    """A Ray task: import and set up ``steps`` in this worker process, where the segment's tasks find them
    (``StepRunner.cache_setup``); then wait until all ``workers`` such tasks have arrived (at most 10 s), so that
    each lands in a process of its own (a task waiting in ``ray.get`` lends its CPU to the next one, which Ray
    starts in another process). Returns the process id."""
    import ray

    for step in steps:
        cached_stage(step, run_dir, assigned_cpus())
    ray.get(collector.arrive.remote(workers, 10.0))
    return os.getpid()


class _SegmentTask:
    """Every step of the segment on each table of a block of work items, writing the table's parts at once;
    returns what it wrote (part, rows, file name) and its piece reports. Memory is bounded by one batch, whatever
    the block holds, so blocks can be few and large (``_factored_blocks``). Stages come from the worker's set-up
    cache (``RayExecutor.start``)."""

    def __init__(self, head: SegmentHead, runners: list[StepRunner], segment_dir: Path, collector, segment: str):
        self.head = head
        self.runners = runners
        self.segment_dir = segment_dir
        self.collector = collector
        self.segment = segment

    def __call__(self, state: Any, block: list) -> tuple[list[dict], dict[tuple, dict], list[dict]]:
        reports = _TaskReports(self.collector, self.segment)
        cpus = assigned_cpus()
        for runner in self.runners:
            runner.reporter = reports
            runner.worker_cpus = cpus
            runner.rejects_written = []  # this task's
        self.runners[0].state = state
        written = stream_block(self.head, self.runners, block, self.segment_dir, reports.flush)
        return written, reports.reports, [r for runner in self.runners for r in runner.rejects_written]


def _run_segment_task(task: _SegmentTask, state: Any,
                      block: list) -> tuple[list[dict], dict[tuple, dict], list[dict]]:
    """The Ray task: ``task`` and ``state`` come from the object store (each put once per segment, resolved by
    Ray before the task starts), ``block`` is a list of work items."""
    return task(state, block)


def _factored_blocks(items: list, cpus: int) -> list[list]:
    """The work items in tasks of shrinking size (factoring): each round deals ``cpus`` tasks that together hold
    half of what is left, so the first tasks are large (few tasks: a task costs ~6 ms of set-up and reporting,
    one task per item was 15% slower on short segments, BENCHMARKS.md issue 9) and the last ones single items
    (the workers finish together). Items are taken in a strided order, so a task samples every input of the plan
    rather than a run of one input's units (one WARC file's units cost more than a JSONL file's)."""
    stride = 2 * cpus
    order = [item for first in range(stride) for item in items[first::stride]]
    blocks, i = [], 0
    while i < len(order):
        size = -(-(len(order) - i) // (2 * cpus))
        for _ in range(cpus):
            if i < len(order):
                blocks.append(order[i:i + size])
                i += size
    return blocks


def _gather(refs: list, on_progress=None, interval: float | None = None) -> list:
    """The results of ``refs`` in the order they finish, calling ``on_progress()`` at least every ``interval``
    seconds while waiting; on a failure the tasks still running are cancelled and the task's error raised."""
    import ray

    pending, out = list(refs), []
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=interval)
            out += ray.get(done)
            if on_progress is not None:
                on_progress()
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    return out


class RayExecutor:
    name = "ray"
    mode = "a plain Ray task per block of work items"

    def __init__(self, progress: Progress | None = None):
        self.workers: int | None = None
        self._collector = None
        self.progress = progress
        self._runtime = None

    @property
    def runtime(self) -> Runtime:
        """What global steps fan their work out with: Ray tasks and actors on the cluster this process joined."""
        if self._runtime is None:
            from gristmill.pipeline._internal.ray_runtime import RayRuntime

            self._runtime = RayRuntime()
        return self._runtime

    def start(self, plan: Plan, segment: Segment, run_dir: str) -> list[int]:
        """Once per run, before its first segment (``segment``): start the collector and set up the segment's
        stages in one worker process per CPU, so that a segment's wall time is streaming work; otherwise segment
        00 began by importing and setting up each stage in every worker, 2-3 s in which the second CPU sat idle
        (BENCHMARKS.md, issue 9). Returns the process ids of the workers set up."""
        import ray

        cpus = self._cpus()
        if self._collector is None:
            # On the driver's node: a worker node lost mid-run loses its tasks, which Ray retries, but an actor
            # there would take the run's progress and set-up barrier with it. The driver's node failing ends the
            # run anyway.
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            driver_node = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
            self._collector = ray.remote(num_cpus=0)(_Collector).options(scheduling_strategy=driver_node).remote()
        set_up = ray.remote(num_cpus=1)(_set_up_worker)
        steps = [] if segment.global_step is not None else list(segment.steps[1:])
        return ray.get([set_up.remote(steps, run_dir, self._collector, cpus) for _ in range(cpus)])

    def close(self) -> None:
        """Ends the run's collector actor (a long-lived cluster keeps no process per finished run)."""
        if self._collector is not None:
            import ray

            ray.kill(self._collector)
            self._collector = None

    @staticmethod
    def _cpus() -> int:
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run_segment(self, plan: Plan, segment: Segment, input_parts: list[str], state: Any, run_dir: str,
                    segment_dir: Path, may_write: Callable[[], None] | None = None) -> SegmentResult:
        """Every block of work items is submitted at once: a task never waits on another process, so Ray runs one
        per CPU it has, and the queued ones are demand an autoscaling cluster grows for. ``may_write`` is passed
        before anything is submitted: a task on another node cannot wait for the driver."""
        import ray

        if may_write is not None:
            may_write()

        if self._collector is None:
            self.start(plan, segment, run_dir)
        head = segment_head(plan, segment, input_parts)
        items = head.items()
        if not items:
            return SegmentResult([], [])
        ray.get(self._collector.start_segment.remote(segment.name))
        runners = [StepRunner(step, run_dir, plan.spec.output.rejects, None) for step in segment.steps]
        for runner in runners:
            runner.cache_setup = True  # tasks reuse their worker process's set-up stages (see start)
        num_cpus = max([1.0] + [r.step.instantiate().resources.num_cpus for r in runners[1:]])
        self.workers = self._cpus()
        task = ray.put(_SegmentTask(head, runners, segment_dir, self._collector, segment.name))
        state_ref = ray.put(state) if state is not None else None
        run = ray.remote(num_cpus=num_cpus)(_run_segment_task)
        blocks = _factored_blocks(items, max(1, int(self.workers // num_cpus)))
        if self.progress is not None:
            self.progress.start_segment(segment.name, len(items))
        refs = [run.remote(task, state_ref, block) for block in blocks]
        results = _gather(refs, *self._progress_polling(head))
        written = [w for out, _, _ in results for w in out]
        pieces = {key: report for _, reports, _ in results for key, report in reports.items()}
        _show(self.progress, head, pieces.values(), final=True)
        return SegmentResult(written, list(pieces.values()), [r for _, _, rejects in results for r in rejects])

    def _progress_polling(self, head: SegmentHead) -> tuple:
        """``_gather``'s progress callback and interval: the collector's totals, one small call per interval."""
        if self.progress is None:
            return None, None
        import ray

        def poll() -> None:
            self.progress.update(ray.get(self._collector.totals.remote(head.by_unit)))

        return poll, self.progress.interval


__all__ = ["LocalExecutor", "RayExecutor", "SegmentResult", "StageOutput", "import_ray_single_machine",
           "init_local_ray"]
