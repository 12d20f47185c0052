"""The Ray executor runs the same per-batch code as the local one: the committed Parquet must be
byte-identical, and so must the stats and rejects."""

from __future__ import annotations

import math

import pytest

from gristmill.pipeline import LocalExecutor, RayExecutor, RunDir, run_plan

from demo_pipeline import DEMO, make_plan


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


@pytest.mark.ray
@pytest.mark.parametrize("mode", [{}, {"fuse_steps": True}, {"stateful_as_tasks": True}],
                         ids=["operator-per-step", "fused", "stateful-as-tasks"])
def test_local_and_ray_give_byte_identical_parquet(ray_cluster, data_dir, tmp_path, mode):
    # lang.fasttext_v1 is stateful: an actor pool by default, tasks with a per-process set-up in the last mode.
    plan = make_plan(data_dir, DEMO.replace("  - stage: clean.pii_v1", "  - stage: clean.pii_v1\n  - stage: lang.fasttext_v1"))
    local = run_plan(plan, RunDir(tmp_path / "local"), LocalExecutor(), log=lambda m: None)
    remote = run_plan(plan, RunDir(tmp_path / "ray"), RayExecutor(**mode), log=lambda m: None)

    for sub in ("segments", "rejects"):
        a, b = _files(tmp_path / "local" / sub), _files(tmp_path / "ray" / sub)
        assert a and a.keys() == b.keys()
        assert all(a[k] == b[k] for k in a), f"{sub} differ between executors"
    assert [s.to_json() | {"seconds": 0} for _, ss in local.stats for s in ss] == \
           [s.to_json() | {"seconds": 0} for _, ss in remote.stats for s in ss]


@pytest.mark.parametrize("n_items,cpus", [(1, 2), (7, 2), (150, 2), (150, 1), (1000, 64), (3, 16)])
def test_work_blocks_hold_every_item_once_and_bound_the_items_per_task(n_items, cpus):
    """A Ray task takes several work items (scheduling a task per small unit cost as much as its work), but never
    more than ITEMS_PER_TASK: a task's items are held in one block, so they bound a worker's memory."""
    from gristmill.pipeline.executors import ITEMS_PER_TASK, TASKS_PER_CPU, _work_blocks

    items = [{"unit": i} for i in range(n_items)]
    blocks = _work_blocks(items, cpus)
    units = sorted(u for b in blocks for u in b["unit"])
    assert units == list(range(n_items))
    sizes = [len(b["unit"]) for b in blocks]
    assert max(sizes) <= ITEMS_PER_TASK
    assert len(blocks) >= min(n_items, cpus * TASKS_PER_CPU)
    # the last 2 * cpus items go out one per task, so the workers finish together
    tail = min(n_items, 2 * cpus)
    assert sizes[-tail:] == [1] * tail
    # round-robin: the units of one large input (consecutive items) are spread over the tasks, not packed in one
    bulk = blocks[:len(blocks) - tail]
    if bulk and len(bulk[0]["unit"]) > 1:
        first = bulk[0]["unit"]
        assert first[1] - first[0] == len(bulk)


@pytest.mark.parametrize("n_items,cpus", [(1, 2), (7, 2), (79, 2), (158, 2), (150, 1), (1000, 64)])
def test_factored_blocks_hold_every_item_once_in_shrinking_tasks(n_items, cpus):
    """Tasks that run every step and write their own parts (memory bounded by a batch, not by the task) come in
    rounds of ``cpus`` tasks holding half of what is left: few tasks (each costs a scheduling gap), the last
    ones single items so the workers finish together, and each task samples the whole plan, not one input."""
    from gristmill.pipeline.executors import _factored_blocks

    blocks = _factored_blocks([{"unit": i} for i in range(n_items)], cpus)
    units = [u for b in blocks for u in b["unit"]]
    assert sorted(units) == list(range(n_items))
    sizes = [len(b["unit"]) for b in blocks]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 1
    assert sum(sizes[:cpus]) >= n_items // 2  # the first round holds half of the work
    assert len(blocks) <= 2 * cpus * (1 + math.log2(max(n_items, 2)))
    if sizes[0] > 1:  # strided: a task's items are spread over the plan, not a run of neighbours
        first = blocks[0]["unit"]
        assert first[1] - first[0] == 2 * cpus


@pytest.mark.ray
def test_start_sets_up_a_worker_process_per_cpu_before_the_first_segment(ray_cluster, data_dir, tmp_path):
    """Before segment 00 every CPU gets its own worker process with the segment's stages set up, so the
    segment's tasks start on both CPUs at once instead of one CPU waiting on process start-up and imports."""
    import ray

    plan = make_plan(data_dir, DEMO)
    executor = RayExecutor(stateful_as_tasks=True)
    try:
        pids = executor.start(plan, plan.segments[0], str(tmp_path))
        assert len(set(pids)) == int(ray.cluster_resources()["CPU"])
    finally:
        executor.close()


@pytest.mark.ray
def test_close_ends_the_runs_collector_actor(ray_cluster, data_dir, tmp_path):
    """A long-lived cluster must not keep a process per finished run."""
    import ray

    executor = RayExecutor()
    plan = make_plan(data_dir, DEMO)
    executor.start(plan, plan.segments[0], str(tmp_path))
    collector = executor._collector
    executor.close()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(collector.pieces.remote(), timeout=30)


def test_ray_data_cold_start_is_shortened_on_the_installed_ray():
    """Ray Data re-reads the CPUs it may use once a second, and a new dataset runs one task at a time until it
    has; the executor shortens that interval through a private attribute. If a Ray upgrade renames it, this
    fails, and the 2-worker start of every segment must be checked again (BENCHMARKS.md, issue 9)."""
    from ray.data._internal.execution.resource_manager import ResourceManager

    from gristmill.pipeline.executors import _shorten_ray_data_cold_start

    assert _shorten_ray_data_cold_start()
    assert ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S <= 0.1


def _counting_tasks():
    """An actor counting the tasks running at once, and a task that enters, works 0.2 s, leaves and returns its
    block's units (unit -1 fails). Defined here so that Ray ships them by value (this module is not importable
    in a worker)."""

    class Concurrency:
        def __init__(self) -> None:
            self.now = self.peak = 0

        def enter(self) -> None:
            self.now += 1
            self.peak = max(self.peak, self.now)

        def leave(self) -> None:
            self.now -= 1

        def max_seen(self) -> int:
            return self.peak

    def counted(counter, block: dict) -> list[int]:
        import time

        import ray

        ray.get(counter.enter.remote())  # a task blocked in ray.get lends its CPU to the next queued task
        time.sleep(0.2)
        ray.get(counter.leave.remote())
        if block["unit"] == [-1]:
            raise ValueError("unit -1 is unreadable")
        return block["unit"]

    return Concurrency, counted


@pytest.mark.ray
def test_bounded_tasks_never_run_more_than_their_slots_and_return_every_result(ray_cluster):
    """Submitted all at once, segment tasks that wait in ray.get (Ray lends a blocked task's CPU) ran on more
    worker processes than CPUs, each one cold (imports, stage set-up); bounded, at most ``slots`` run and every
    block's result comes back. Half-CPU tasks here: Ray alone would run 4 of them at once on 2 CPUs."""
    import ray

    from gristmill.pipeline.executors import _run_bounded

    concurrency, counted = _counting_tasks()
    counter = ray.remote(num_cpus=0)(concurrency).remote()
    run = ray.remote(num_cpus=0.5)(counted)
    blocks = [{"unit": [i, i + 100]} for i in range(8)]
    out = _run_bounded(run, counter, blocks, slots=lambda: 2)
    assert sorted(out) == sorted(u for b in blocks for u in b["unit"])
    assert ray.get(counter.max_seen.remote()) == 2
    ray.kill(counter)


@pytest.mark.ray
def test_bounded_tasks_raise_the_tasks_own_error(ray_cluster):
    import ray

    from gristmill.pipeline.executors import _run_bounded

    concurrency, counted = _counting_tasks()
    counter = ray.remote(num_cpus=0)(concurrency).remote()
    run = ray.remote(num_cpus=1, max_retries=0)(counted)
    with pytest.raises(ValueError, match="unit -1 is unreadable"):
        _run_bounded(run, counter, [{"unit": [1]}, {"unit": [-1]}, {"unit": [2]}, {"unit": [3]}], slots=lambda: 2)
    ray.kill(counter)


@pytest.mark.ray
def test_local_ray_keeps_idle_workers_while_a_task_holds_every_cpu(ray_cluster):
    """Ray ends a worker idle for 1 s while fewer CPUs are free than workers idle: a global step holding every
    CPU (tokenizer training) lost the other worker, whose replacement started the next segment cold. The
    embedded local Ray (``init_local_ray``, as the session cluster) keeps them."""
    import os

    import ray

    import time

    def pid_after(seconds: float) -> int:
        time.sleep(seconds)
        return os.getpid()

    def hold(seconds: float) -> None:
        time.sleep(seconds)

    cpus = int(ray.cluster_resources()["CPU"])
    pid = ray.remote(num_cpus=1)(pid_after)
    workers = set(ray.get([pid.remote(0.3) for _ in range(cpus)]))
    assert len(workers) == cpus
    ray.get(ray.remote(num_cpus=cpus)(hold).remote(2.5))
    for worker in workers:
        os.kill(worker, 0)  # raises ProcessLookupError if Ray ended it


@pytest.mark.parametrize("setting, embedded, as_tasks", [
    ("auto", True, True),      # embedded local Ray: no autoscaler to ask for nodes, tasks are faster
    ("auto", False, False),    # a cluster: Ray Data's actor-pool operators ask its autoscaler for nodes
    ("tasks", False, True),
    ("actors", True, False),
])
def test_stateful_stages_setting_picks_tasks_or_actor_pools_by_where_ray_runs(setting, embedded, as_tasks):
    from gristmill.pipeline.spec import ExecutionSpec

    executor = RayExecutor.for_execution(ExecutionSpec(stateful_stages=setting, max_actors=3), embedded=embedded)
    assert executor.stateful_as_tasks is as_tasks
    assert executor.max_actors == 3
    assert ("as tasks" in executor.mode) is as_tasks
