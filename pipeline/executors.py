"""Executors run one segment: ingest (or a global step's apply) followed by the segment's streaming steps,
ending in committed Parquet parts. Both run the same per-batch code (``gristmill.pipeline._internal.runner``), so their
output is byte-identical.

- ``LocalExecutor``: in-process, one batch at a time; for tests, debugging and small inputs.
- ``RayExecutor``: ingest units and committed parts are the work items, several per task. When every step runs as
  a task, a plain Ray task per block of items chains the steps per table and writes its parts (``_SegmentTask``),
  as many at a time as there are CPUs; otherwise Ray Data runs each stage as a
  ``map_batches(batch_format="pyarrow")`` operator (an actor pool for stateful stages, tasks otherwise) and a
  ``Datasink`` writes the parts. Either way the segment commits on the driver once every part is written.
  ``start()`` sets up the worker processes once per run; ``init_local_ray`` starts the embedded local Ray.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core.runtime import LocalRuntime, Runtime
from gristmill.pipeline._internal.runner import StepRunner, cached_stage, read_part, read_unit, write_parts
from gristmill.pipeline.plan import Plan, Segment
from gristmill.pipeline.progress import Progress, totals_by_step
from gristmill.pipeline.spec import ExecutionSpec
from gristmill.stages.base import StageOutput


# An embedded local Ray serves one run. Ray ends a worker process that has been idle for 1 s whenever fewer CPUs
# are free than workers are idle, so a global step that reserves every CPU (tokenizer training) cost the next
# segment a cold worker, started ~0.5-0.9 s late with its stages set up again (BENCHMARKS.md, issue 9). The
# run's workers live as long as the run instead; Ray's memory monitor still ends idle workers under pressure.
# Its metrics agent would serve Prometheus /metrics without a token: nothing reads them in a local run.
LOCAL_RAY_SYSTEM_CONFIG = {"idle_worker_killing_time_threshold_ms": 24 * 3600 * 1000,
                           "enable_metrics_collection": False}

# On Linux, Ray replaces a node IP of 127.0.0.1 by the machine's routable address, and every Ray process of the
# node then listens there (GCS, raylet, workers, agents) or on all interfaces (the dashboard's and the autoscaler
# monitor's Prometheus /metrics, which take no token). Ray keeps 127.0.0.1 in its single-machine mode, the default
# on macOS and Windows, switched by this variable and read once, when ``ray`` is first imported.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# The embedded Ray's processes inherit these unless the user set them: no usage report sent to Ray's servers.
LOCAL_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}


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
    """Start the embedded local Ray (``LOCAL_RAY_SYSTEM_CONFIG``): every process of it listens on 127.0.0.1 only,
    token authentication left at Ray's default (on), no metrics exporter, no usage report. Ray must be imported
    here first (``gristmill run`` does so); when it was imported before, the node would listen on the machine's
    address and this refuses to start it. A cluster's own settings are its operators' (deploy/README.md)."""
    ray = import_ray_single_machine()
    if ray.is_initialized():
        return
    added = {k: v for k, v in LOCAL_RAY_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 configure_logging=False, _system_config=LOCAL_RAY_SYSTEM_CONFIG)
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


class SegmentResult:
    def __init__(self, written: list[dict], pieces: list[dict]):
        self.written = sorted(written, key=lambda w: w["part"])
        self.pieces = pieces


class _DictReporter:
    def __init__(self) -> None:
        self.pieces: dict[tuple, dict] = {}

    def __call__(self, key: tuple, report: dict) -> None:
        self.pieces[key] = report


def _ingest_batches(plan: Plan, runner: StepRunner, unit_indices: Iterable[int]) -> Iterator[pa.Table]:
    for i in unit_indices:
        batches = read_unit(plan, plan.units[i])
        while True:
            start = time.perf_counter()  # reading, decoding and extracting happen inside next()
            out = next(batches, None)
            if out is None:
                break
            yield runner.finish(out.table, out, time.perf_counter() - start)


def _start_progress(progress: Progress | None, plan: Plan, segment: Segment, input_parts: list[str]) -> None:
    if progress is not None:
        progress.start_segment(segment.name, len(plan.units) if segment.index == 0 else len(input_parts))


def _show(progress: Progress | None, segment: Segment, pieces, final: bool = False) -> None:
    if progress is not None:
        progress.update(totals_by_step(pieces, by_unit=segment.index == 0), final=final)


class LocalExecutor:
    name = "local"
    workers = 1

    def __init__(self, progress: Progress | None = None):
        self.progress = progress
        self.runtime = LocalRuntime()

    def start(self, plan: Plan, segment: Segment, run_dir: str) -> None:
        """Nothing to start: stages are set up by the segment's runners, in this process."""

    def close(self) -> None:
        pass

    def run_segment(self, plan: Plan, segment: Segment, input_parts: list[str], state: Any, run_dir: str,
                    segment_dir: Path) -> SegmentResult:
        reporter = _DictReporter()
        rejects = plan.spec.output.rejects
        runners = [StepRunner(step, run_dir, rejects, reporter, state if i == 0 else None)
                   for i, step in enumerate(segment.steps)]
        if segment.index == 0:
            batches = _ingest_batches(plan, runners[0], range(len(plan.units)))
        else:
            batches = (runners[0](read_part(p)) for p in input_parts)
        written = []
        _start_progress(self.progress, plan, segment, input_parts)
        for table in batches:
            for runner in runners[1:]:
                table = runner(table)
            written += write_parts(segment_dir, table)
            _show(self.progress, segment, reporter.pieces.values())
        _show(self.progress, segment, reporter.pieces.values(), final=True)
        return SegmentResult(written, list(reporter.pieces.values()))


# --- Ray ----------------------------------------------------------------------------------------------------

class RayReporter:
    """Sends piece reports to the driver's collector actor; synchronous so no report is in flight when the
    segment commits. One call per batch and step, never per document; ``buffered``: one call per ``flush()``
    (``_SegmentTask`` flushes once per table, after writing its parts, instead of once per step)."""

    def __init__(self, collector, buffered: bool = False):
        self.collector = collector
        self.buffered = buffered
        self._reports: list[tuple[tuple, dict]] = []

    def __call__(self, key: tuple, report: dict) -> None:
        self._reports.append((key, report))
        if not self.buffered:
            self.flush()

    def flush(self) -> None:
        import ray

        if self._reports:
            reports, self._reports = self._reports, []
            ray.get(self.collector.report_many.remote(reports))


class _Collector:
    """The driver-side store of one segment's piece reports; one actor per run, emptied by ``reset``."""

    def __init__(self) -> None:
        self._pieces: dict[tuple, dict] = {}
        self._arrivals = 0  # workers set up by RayExecutor.start

    def arrive(self) -> None:
        self._arrivals += 1

    def arrivals(self) -> int:
        return self._arrivals

    def reset(self) -> None:
        self._pieces = {}

    def report_many(self, reports: list[tuple[tuple, dict]]) -> None:
        for key, report in reports:
            self._pieces[key] = report  # keyed: a retried batch overwrites its own report

    def pieces(self) -> list[dict]:
        return list(self._pieces.values())

    def totals(self, by_unit: bool) -> dict[int, dict]:
        return totals_by_step(self._pieces.values(), by_unit)


def _set_up_worker(steps: list, run_dir: str, collector, workers: int) -> int:
    """A Ray task: import and set up ``steps`` in this worker process, where the segment's tasks find them
    (``StepRunner.cache_setup``); then hold the CPU until all ``workers`` such tasks run (or 10 s pass), so that
    each lands in a process of its own. Returns the process id."""
    import os

    import ray

    for step in steps:
        cached_stage(step, run_dir)
    ray.get(collector.arrive.remote())
    deadline = time.monotonic() + 10
    while ray.get(collector.arrivals.remote()) < workers and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def _items(batch: pa.Table, key: str) -> list:
    """A task's work items: its block is one row holding their list (see ``_work_blocks``)."""
    return pc.list_flatten(batch[key]).to_pylist()


class _IngestUnits:
    def __init__(self, plan: Plan, runner: StepRunner):
        self.plan = plan
        self.runner = runner

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        yield from _ingest_batches(self.plan, self.runner, _items(batch, "unit"))


class _ReadParts:
    def __init__(self, runner: StepRunner):
        self.runner = runner

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        for path in _items(batch, "path"):
            yield self.runner(read_part(path))


def _head(plan: Plan, runner: StepRunner, reads_units: bool):
    """The segment's first step over a task's work items: ingest of units (segment 00) or a global step's apply
    over parts."""
    return _IngestUnits(plan, runner) if reads_units else _ReadParts(runner)


def _chain(plan: Plan, runners: list[StepRunner], reads_units: bool, batch: pa.Table) -> Iterator[pa.Table]:
    """Every step of a segment on each table of a task's work items, exactly as ``LocalExecutor`` chains them."""
    for table in _head(plan, runners[0], reads_units)(batch):
        for runner in runners[1:]:
            table = runner(table)
        yield table


class _FusedSegment:
    """One actor per CPU runs every step of the segment on its unit (``_chain``): state (models, tokenizers) is
    set up once per actor, batches never wait in the object store between steps, and no CPU is held by a pool
    that is mostly idle (an actor stage between task stages does that)."""

    def __init__(self, plan: Plan, runners: list[StepRunner], reads_units: bool):
        self.plan = plan
        self.runners = runners
        self.reads_units = reads_units
        for runner in runners[1:]:
            _ = runner.stage

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        yield from _chain(self.plan, self.runners, self.reads_units, batch)


class _SegmentTask:
    """Every step of the segment on each table of a block of work items (``_chain``), writing the table's parts
    at once; returns only what it wrote (part, rows, file name). Used when every step runs as a task, one plain
    Ray task per block (``_run_bounded``). Ray Data would fuse the steps into one task too, but would join the
    task's tables into blocks of up to ``target_max_block_size`` between steps and before the write (a worker's
    memory grew with the items of a task), and it notices a finished task only on its 0.1 s polling tick. Here
    memory is bounded by one batch, whatever the block holds, so blocks can be few and large
    (``_factored_blocks``). Stages come from the worker's set-up cache (``RayExecutor.start``)."""

    def __init__(self, plan: Plan, runners: list[StepRunner], reads_units: bool, segment_dir: Path):
        self.plan = plan
        self.runners = runners
        self.reads_units = reads_units
        self.segment_dir = segment_dir

    def __call__(self, block: dict) -> list[dict]:
        written: list[dict] = []
        for table in _chain(self.plan, self.runners, self.reads_units, pa.Table.from_pylist([block])):
            written += write_parts(self.segment_dir, table)
            self.runners[0].reporter.flush()
        return written


def _run_segment_task(task: _SegmentTask, block: dict) -> list[dict]:
    """The Ray task: ``task`` comes from the object store (put once per segment), ``block`` is one ``_rows``
    row."""
    return task(block)


def _run_bounded(run, task, blocks: list[dict], slots: Callable[[], int]) -> list[dict]:
    """Runs ``run.remote(task, block)`` for every block, at most ``slots()`` at a time (asked again as tasks end,
    so nodes that join are used), the next one submitted the moment one finishes (``ray.wait`` returns at once,
    ~10 ms between a worker's tasks where Ray Data's polling tick cost ~0.15 s). Bounded because Ray lends the CPU
    of a task blocked in ``ray.get`` (its reports to the collector, a global step's state) to the next queued
    task, which it starts in a new, cold worker process: all blocks submitted at once ran 4 workers on 2 CPUs
    (BENCHMARKS.md, issue 9). On a failure the tasks still running are cancelled. Returns the concatenated
    results."""
    import ray

    queue, pending, out = list(reversed(blocks)), [], []
    try:
        while queue or pending:
            limit = slots()
            while queue and len(pending) < limit:
                pending.append(run.remote(task, queue.pop()))
            done, pending = ray.wait(pending, num_returns=1)
            out += ray.get(done[0])
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    return out


class _StepActor:
    """Actor-pool wrapper: the stage's ``setup()`` (a model load) happens once per actor."""

    def __init__(self, runner: StepRunner):
        self.runner = runner
        _ = runner.stage

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.runner(batch)


def _shorten_ray_data_cold_start() -> bool:
    """Ray Data (2.60) learns how many CPUs a dataset may use from its autoscaling-coordinator actor, by an
    asynchronous call whose answer it reads when it refreshes its limits, once a second
    (``ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S``); until then a new dataset runs one task at a time. With
    a dataset per segment, the other CPUs sat idle for the first 1-1.7 s of every segment (BENCHMARKS.md, issue
    9). No public setting exists, so this shortens that interval where the attribute exists (a refresh is one
    non-blocking actor call); returns whether it did. Called on the driver, where the executor runs."""
    try:
        from ray.data._internal.execution.resource_manager import ResourceManager
    except ImportError:
        return False
    interval = getattr(ResourceManager, "GLOBAL_LIMITS_UPDATE_INTERVAL_S", None)
    if not isinstance(interval, (int, float)):
        return False
    ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S = min(interval, 0.1)
    return True


def _factored_blocks(items: list[dict], cpus: int) -> list[dict]:
    """The work items in tasks of shrinking size (factoring): each round deals ``cpus`` tasks that together hold
    half of what is left, so the first tasks are large (few tasks: a task costs ~6 ms of set-up and reporting,
    one task per item was 15% slower on short segments, BENCHMARKS.md issue 9) and the last ones single items
    (the workers finish together). Items are taken in a strided order, so a task samples every input of the plan
    rather than a run of one input's units (one WARC file's units cost more than a JSONL file's). Only for
    ``_SegmentTask``, whose memory does not grow with a task's items."""
    stride = 2 * cpus
    order = [item for first in range(stride) for item in items[first::stride]]
    blocks, i = [], 0
    while i < len(order):
        size = -(-(len(order) - i) // (2 * cpus))
        for _ in range(cpus):
            if i < len(order):
                blocks.append(order[i:i + size])
                i += size
    return _rows(blocks)


# How a segment's work items (ingest units, or parts) become Ray Data tasks. A task per item cost ~0.1 s of
# scheduling between tasks, as much as a small unit's own work, and halved the 2-worker speed-up (BENCHMARKS.md,
# issue 9); so a task takes several items. But Ray Data joins a task's output tables into one block of up to
# target_max_block_size before the next fused step sees it, so the items of one task bound a worker's memory:
# at most ITEMS_PER_TASK each, whatever the corpus size, and at least TASKS_PER_CPU tasks per CPU for balance.
TASKS_PER_CPU = 4
ITEMS_PER_TASK = 8


def _work_blocks(items: list[dict], cpus: int) -> list[dict]:
    """The work items dealt round-robin into blocks, one Ray Data task each (see ITEMS_PER_TASK), and the last
    ``2 * cpus`` items one per task. Round-robin spreads the large units of one input (WARC files, say) over the
    tasks, which keeps every block's size near the average (a block of 8 WARC units measured +16% peak memory);
    the single-item tasks at the end let the workers finish together instead of one waiting on the other's
    last large task. Output files are keyed by part, never by task, so the grouping changes nothing written."""
    tail = min(len(items), 2 * cpus)
    bulk, last = items[:len(items) - tail], items[len(items) - tail:]
    n = min(len(bulk), max(cpus * TASKS_PER_CPU, -(-len(bulk) // ITEMS_PER_TASK)))
    return _rows([bulk[i::n] for i in range(n)] + [[item] for item in last])


def _rows(blocks: list[list[dict]]) -> list[dict]:
    """One Ray Data row per task: each key of the work items with the list of their values (see ``_items``)."""
    return [{key: [item[key] for item in block] for key in block[0]} for block in blocks]


def _make_sink(segment_dir: Path):
    from ray.data import Datasink

    class PartsDatasink(Datasink):
        def __init__(self) -> None:
            self.segment_dir = segment_dir
            self.written: list[dict] | None = None

        def write(self, blocks, ctx) -> list[dict]:
            out = []
            for block in blocks:
                out += write_parts(self.segment_dir, block)
            return out

        def on_write_complete(self, write_result) -> None:
            self.written = [w for ret in write_result.write_returns for w in ret]

    return PartsDatasink()


class RayExecutor:
    name = "ray"

    def __init__(self, max_actors: int | None = None, progress: Progress | None = None, fuse_steps: bool = False,
                 stateful_as_tasks: bool = False):
        self.stateful_as_tasks = stateful_as_tasks
        self.workers: int | None = None
        self._collector = None
        self.max_actors = max_actors
        self.progress = progress
        # False (default): one Ray Data operator per step, each with its own declared resources (tasks, or an actor
        # pool for stateful stages); True: one operator runs the whole segment per unit (an actor per CPU).
        self.fuse_steps = fuse_steps
        self._runtime = None

    @property
    def runtime(self) -> Runtime:
        """What global steps fan their work out with: Ray tasks and actors on the cluster this process joined."""
        if self._runtime is None:
            from gristmill.pipeline._internal.ray_runtime import RayRuntime

            self._runtime = RayRuntime()
        return self._runtime

    @property
    def mode(self) -> str:
        """How steps run, for the log (``stateful_stages: auto`` depends on where Ray runs)."""
        if self.fuse_steps:
            return "segments fused, an actor per CPU"
        return "stateful stages as tasks" if self.stateful_as_tasks else "stateful stages as actor pools"

    @classmethod
    def for_execution(cls, execution: ExecutionSpec, embedded: bool, progress: Progress | None = None) -> RayExecutor:
        """The executor a pipeline's ``execution`` settings ask for, on an embedded local Ray or on a cluster
        (``stateful_stages: auto`` is tasks on the first, actor pools on the second; see ``ExecutionSpec``)."""
        mode = execution.stateful_stages
        return cls(execution.max_actors, progress=progress, fuse_steps=execution.fuse_steps,
                   stateful_as_tasks=mode == "tasks" or (mode == "auto" and embedded))

    def start(self, plan: Plan, segment: Segment, run_dir: str) -> list[int]:
        """Once per run, before its first segment (``segment``): start what every segment uses, so that a
        segment's wall time is streaming work. Otherwise segment 00 began by spawning the collector actor and Ray
        Data's own actors and by importing and setting up each stage in every worker, 2-3 s in which the second
        CPU sat idle (BENCHMARKS.md, issue 9). Returns the process ids of the workers set up."""
        import ray
        import ray.data

        cpus = self._cpus()
        if self._collector is None:
            self._collector = ray.remote(num_cpus=0)(_Collector).remote()
        set_up = ray.remote(num_cpus=1)(_set_up_worker)
        steps = self._worker_steps(segment)
        ready = [set_up.remote(steps, run_dir, self._collector, cpus) for _ in range(cpus)]
        if not all(self._all_tasks(s) for s in plan.segments):  # some segment runs Ray Data operators
            _shorten_ray_data_cold_start()
            ray.data.range(1).materialize()  # an execution starts Ray Data's stats and autoscaling actors
        return ray.get(ready)

    def close(self) -> None:
        """Ends the run's collector actor (a long-lived cluster keeps no process per finished run)."""
        if self._collector is not None:
            import ray

            ray.kill(self._collector)
            self._collector = None

    def _worker_steps(self, segment: Segment) -> list:
        """The steps of ``segment`` that run in task workers and can be set up before it runs: not those after
        a global step (their set-up may read what its build writes, as tokenize reads the trained tokenizer),
        nor those run in actors."""
        if segment.global_step is not None:
            return []
        return [s for s in segment.steps[1:] if self._runs_as_task(s)]

    def _runs_as_task(self, step) -> bool:
        """Whether ``step`` runs in a Ray task (in a task worker), not in an actor."""
        return not self.fuse_steps and (self.stateful_as_tasks or not step.instantiate().resources.actor)

    @staticmethod
    def _cpus() -> int:
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run_segment(self, plan: Plan, segment: Segment, input_parts: list[str], state: Any, run_dir: str,
                    segment_dir: Path) -> SegmentResult:
        import ray

        if self._collector is None:
            self.start(plan, segment, run_dir)
        ray.get(self._collector.reset.remote())
        all_tasks = self._all_tasks(segment)
        reporter = RayReporter(self._collector, buffered=all_tasks)
        runners = [StepRunner(step, run_dir, plan.spec.output.rejects, reporter, None) for step in segment.steps]
        for runner in runners:
            runner.cache_setup = True  # tasks reuse their worker process's set-up stages (see start)
        if segment.index == 0:
            items = [{"unit": i} for i in range(len(plan.units))]
        else:
            runners[0].state = ray.put(state) if state is not None else None
            items = [{"path": p} for p in input_parts]
        if not items:
            return SegmentResult([], [])
        self.workers = self._cpus()
        _start_progress(self.progress, plan, segment, input_parts)
        if all_tasks:
            written = self._run_as_tasks(plan, segment, runners, items, segment_dir)
        else:
            written = self._run_as_operators(plan, segment, runners, items, segment_dir)
        return SegmentResult(written, ray.get(self._collector.pieces.remote()))

    def _run_as_tasks(self, plan: Plan, segment: Segment, runners: list[StepRunner], items: list[dict],
                      segment_dir: Path) -> list[dict]:
        """Every step runs as a task: one ``_SegmentTask`` per block of ``_factored_blocks``, as plain Ray
        tasks, as many at a time as the cluster's CPUs hold."""
        import ray

        num_cpus = max([1.0] + [r.step.instantiate().resources.num_cpus for r in runners[1:]])
        task = ray.put(_SegmentTask(plan, runners, segment.index == 0, segment_dir))
        run = ray.remote(num_cpus=num_cpus)(_run_segment_task)
        slots = lambda: max(1, int(self._cpus() // num_cpus))  # noqa: E731  tasks that fit the cluster now
        blocks = _factored_blocks(items, slots())  # a round deals one block per task that runs at once
        written: list[dict] = []
        self._execute(lambda: written.extend(_run_bounded(run, task, blocks, slots)), segment)
        return written

    def _run_as_operators(self, plan: Plan, segment: Segment, runners: list[StepRunner], items: list[dict],
                          segment_dir: Path) -> list[dict]:
        """Some step runs in actors (or ``fuse_steps``): Ray Data operators stream blocks between the steps and a
        ``Datasink`` writes the parts."""
        import ray.data

        ctx = ray.data.DataContext.get_current()
        # A part must never be split across blocks (parts are the unit of output files); parts are bounded by
        # batch_bytes, so blocks may be at least that large.
        ctx.target_max_block_size = max(ctx.target_max_block_size or 0, 2 * plan.spec.execution.batch_bytes)
        ds = self._dataset(_work_blocks(items, self.workers))
        if self.fuse_steps:
            ds = self._map_fused(ds, plan, runners, segment.index == 0, self.workers, len(items))
        else:
            ds = ds.map_batches(_head(plan, runners[0], segment.index == 0), batch_size=1, batch_format="pyarrow",
                                num_cpus=1)
            for runner in runners[1:]:
                ds = self._map_step(ds, runner, self.workers)
        sink = _make_sink(segment_dir)
        # Fused: writing is I/O on blocks the segment's actors made and must not wait for a CPU they hold.
        # Otherwise the write fuses into the last task operator, as Ray Data does by default.
        write_args = {"num_cpus": 0} if self.fuse_steps else None
        self._execute(lambda: ds.write_datasink(sink, ray_remote_args=write_args), segment)
        return sink.written or []

    def _all_tasks(self, segment: Segment) -> bool:
        """Whether every step of the segment runs as a Ray task (then ``_SegmentTask`` runs the segment)."""
        return all(self._runs_as_task(s) for s in segment.steps[1:])

    @staticmethod
    def _dataset(blocks: list[dict]):
        """One Ray Data block (one row: the items' list) per task. from_items computes block metadata on the
        driver; from_arrow ran a remote task per block for it and waited on them (~0.9 s per segment)."""
        import ray.data

        return ray.data.from_items(blocks, override_num_blocks=len(blocks))

    def _execute(self, run, segment: Segment) -> None:
        """``run()`` runs the segment's tasks; in a thread while the driver polls the collector's totals for the
        display: one small call every interval, never a call per document. The segment's commit point is the
        driver, once ``run()`` returns: every task has written its parts and returned what it wrote."""
        import threading

        import ray

        if self.progress is None:
            run()
            return
        errors: list[BaseException] = []

        def write() -> None:
            try:
                run()
            except BaseException as exc:  # re-raised on the driver's thread below
                errors.append(exc)

        thread = threading.Thread(target=write, name="gristmill-write", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(timeout=self.progress.interval)
            totals = ray.get(self._collector.totals.remote(segment.index == 0))
            self.progress.update(totals, final=not thread.is_alive())
        if errors:
            raise errors[0]

    def _map_fused(self, ds, plan: Plan, runners: list[StepRunner], reads_units: bool, cpus: int, items: int):
        num_cpus = max(r.step.instantiate().resources.num_cpus for r in runners[1:]) if runners[1:] else 1
        size = max(1, min(items, int(cpus // max(num_cpus, 1e-9)) or 1, self.max_actors or cpus))
        return ds.map_batches(_FusedSegment, fn_constructor_args=(plan, runners, reads_units), batch_size=1,
                              batch_format="pyarrow", concurrency=size, num_cpus=num_cpus)

    def _map_step(self, ds, runner: StepRunner, cpus: int):
        resources = runner.step.instantiate().resources
        if resources.actor and not self.stateful_as_tasks:
            size = min(cpus, resources.max_actors or cpus, self.max_actors or cpus)
            return ds.map_batches(_StepActor, fn_constructor_args=(runner,), batch_size=None,
                                  batch_format="pyarrow", concurrency=(1, size), num_cpus=resources.num_cpus)
        return ds.map_batches(runner, batch_size=None, batch_format="pyarrow", num_cpus=resources.num_cpus)


__all__ = ["LocalExecutor", "RayExecutor", "SegmentResult", "StageOutput", "import_ray_single_machine",
           "init_local_ray"]
