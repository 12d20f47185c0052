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
def test_local_and_ray_give_byte_identical_parquet(ray_cluster, data_dir, tmp_path):
    # lang.fasttext_v1 is stateful: set up once per worker process, reused by every task that process runs.
    plan = make_plan(data_dir, DEMO.replace("  - stage: clean.pii_v1", "  - stage: clean.pii_v1\n  - stage: lang.fasttext_v1"))
    local = run_plan(plan, RunDir(tmp_path / "local"), LocalExecutor(), log=lambda m: None)
    remote = run_plan(plan, RunDir(tmp_path / "ray"), RayExecutor(), log=lambda m: None)

    for sub in ("segments", "rejects"):
        a, b = _files(tmp_path / "local" / sub), _files(tmp_path / "ray" / sub)
        assert a and a.keys() == b.keys()
        assert all(a[k] == b[k] for k in a), f"{sub} differ between executors"
    # Both markers list the same rejects files, each once, as written (Ray's from its tasks' returns).
    listed = [RunDir(tmp_path / name).marker("00-ingest")["rejects"] for name in ("local", "ray")]
    assert listed[0] == listed[1] and sorted(e["path"] for e in listed[0]) == sorted(
        str(p.relative_to(tmp_path / "local" / "rejects")) for p in (tmp_path / "local" / "rejects").rglob("*.parquet"))
    assert [s.to_json() | {"seconds": 0} for seg in local.stats for s in seg.stages] == \
           [s.to_json() | {"seconds": 0} for seg in remote.stats for s in seg.stages]


@pytest.mark.ray
def test_ray_progress_ends_each_segment_with_the_segments_own_totals(ray_cluster, data_dir, tmp_path):
    """Tasks send their reports on to the driver's collector as they go (never waiting on it); the segment's stats
    come from the tasks' results, and the last progress block of a segment shows exactly them."""
    import io

    from gristmill.pipeline.progress import Progress

    stream = io.StringIO()
    plan = make_plan(data_dir, DEMO)
    result = run_plan(plan, RunDir(tmp_path), RayExecutor(progress=Progress(stream, log_interval=0.05)),
                      log=lambda m: None)
    last_block = stream.getvalue().split("[00-ingest]")[-1]
    assert f"units {len(plan.units)}/{len(plan.units)}" in last_block
    for s in result.stats[0].stages:
        step_in = sum(t.rows_in for t in result.stats[0].stages if t.position == s.position)
        assert f"in {step_in:>9,}" in last_block


@pytest.mark.parametrize("n_items,cpus", [(1, 2), (7, 2), (79, 2), (158, 2), (150, 1), (1000, 64)])
def test_factored_blocks_hold_every_item_once_in_shrinking_tasks(n_items, cpus):
    """Tasks that run every step and write their own parts (memory bounded by a batch, not by the task) come in
    rounds of ``cpus`` tasks holding half of what is left: few tasks (each costs a scheduling gap), the last
    ones single items so the workers finish together, and each task samples the whole plan, not one input."""
    from gristmill.pipeline.executors import _factored_blocks

    blocks = _factored_blocks(list(range(n_items)), cpus)
    units = [u for b in blocks for u in b]
    assert sorted(units) == list(range(n_items))
    sizes = [len(b) for b in blocks]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 1
    assert sum(sizes[:cpus]) >= n_items // 2  # the first round holds half of the work
    assert len(blocks) <= 2 * cpus * (1 + math.log2(max(n_items, 2)))
    if sizes[0] > 1:  # strided: a task's items are spread over the plan, not a run of neighbours
        first = blocks[0]
        assert first[1] - first[0] == 2 * cpus


@pytest.mark.ray
def test_start_sets_up_a_worker_process_per_cpu_before_the_first_segment(ray_cluster, data_dir, tmp_path):
    """Before segment 00 every CPU gets its own worker process with the segment's stages set up, so the
    segment's tasks start on both CPUs at once instead of one CPU waiting on process start-up and imports."""
    import ray

    plan = make_plan(data_dir, DEMO)
    executor = RayExecutor()
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
        ray.get(collector.totals.remote(True), timeout=30)


def _blocks_task():
    """A task that works 0.1 s and returns its block (a block [-1] fails). Defined here so that Ray ships it by
    value (this module is not importable in a worker)."""

    def task(block: list) -> list:
        import time

        time.sleep(0.1)
        if block == [-1]:
            raise ValueError("unit -1 is unreadable")
        return block

    return task


@pytest.mark.ray
def test_gather_returns_every_result_and_reports_progress_while_waiting(ray_cluster):
    import ray

    from gristmill.pipeline.executors import _gather

    run = ray.remote(num_cpus=1)(_blocks_task())
    polls = []
    out = _gather([run.remote([i, i + 100]) for i in range(6)], lambda: polls.append(1), 0.05)
    assert sorted(out) == sorted([i, i + 100] for i in range(6))
    assert len(polls) >= 6  # at least once per finished task


@pytest.mark.ray
def test_gather_raises_the_tasks_own_error_and_cancels_the_rest(ray_cluster):
    import ray

    from gristmill.pipeline.executors import _gather

    run = ray.remote(num_cpus=1, max_retries=0)(_blocks_task())
    with pytest.raises(ValueError, match="unit -1 is unreadable"):
        _gather([run.remote(b) for b in ([1], [-1], [2], [3], [4], [5])])


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


@pytest.mark.parametrize("key, value", [("stateful_stages", "actors"), ("fuse_steps", True), ("max_actors", 2)])
def test_execution_settings_of_removed_strategies_are_refused_by_name(key, value):
    """The Ray executor has one strategy; a pipeline still choosing another one hears which key to remove."""
    from pydantic import ValidationError

    from gristmill.pipeline.spec import ExecutionSpec

    with pytest.raises(ValidationError, match=key):
        ExecutionSpec(**{key: value})
