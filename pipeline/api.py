"""The Python API's ``gristmill.run``, and the one function that ``gristmill run`` and it share.

``execute`` turns a plan and the run options (run directory, executor, Ray address, force) into a finished run;
the CLI prints its result, ``run`` returns it with the run's manifest and shard files.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

from gristmill.core import storage
from gristmill.core.layout import RunLayout
from gristmill.core.storage import Location

EXECUTORS = ("local", "ray")


class RunOptionsError(ValueError):
    """Run options that contradict each other or the pipeline (an address without the ray executor, ...)."""


@dataclasses.dataclass(frozen=True)
class PipelineRun:
    """A finished run: what each stage did, and where its output is.

    ``stats`` maps each segment to the statistics of its steps (``StageStats``: rows and bytes in and out,
    drops by reason, per source), in plan order; ``global_stats`` a segment's global step (dedup builds: candidate
    pairs, clusters, estimated false positives ...) to its ``GlobalStepStats``. ``manifest`` is ``manifest.json`` and ``shards`` its shard
    files in manifest order, when the pipeline packs shards (else ``None`` and ``[]``).
    """

    run_dir: Location
    plan_hash: str
    stats: dict[str, list[Any]]
    global_stats: dict[str, Any]
    segments_computed: list[str]
    segments_skipped: list[str]
    seconds: float
    manifest: dict[str, Any] | None
    shards: list[Location]

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.run_dir)


def load_plan(pipeline: str | os.PathLike, base_dir: str | os.PathLike | None = None):
    """The plan of a pipeline file, or of YAML text (relative input paths then resolve against ``base_dir``,
    by default the working directory)."""
    from gristmill.pipeline.plan import build_plan
    from gristmill.pipeline.spec import load_pipeline, parse_pipeline

    if isinstance(pipeline, os.PathLike) or "\n" not in pipeline:  # YAML text of a pipeline spans lines
        spec, base = load_pipeline(pipeline)
    else:
        spec, base = parse_pipeline(pipeline, "<pipeline text>"), Path(base_dir or os.getcwd()).resolve()
    return build_plan(spec, base)


def init_ray(address: str | None) -> None:
    """Connect to the Ray cluster at ``address``, or start the embedded local Ray (loopback only)."""
    import logging

    # gristmill draws its own progress; Ray Data's bars and INFO lines would interleave with it.
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if not address:
        from gristmill.pipeline.executors import init_local_ray

        init_local_ray()  # first to import ray: it keeps the embedded Ray on loopback
        return
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=True)


def execute(plan, run_dir: str | os.PathLike | None = None, executor: str | None = None,
            address: str | None = None, force: bool = False, force_unlock: bool = False, progress=None,
            log: Callable[[str], None] = lambda message: None, clock=None):
    """Run ``plan``: into ``run_dir`` (default: the pipeline's ``output.run_dir``, else ``runs/NAME``), with
    ``executor`` (default: the pipeline's ``execution.executor``), on the Ray cluster at ``address`` (default
    ``$RAY_ADDRESS``, else an embedded local Ray). ``clock`` (a ``RunClock``) times the phases of the run, Ray's
start included; by default the run is timed from here. Returns ``pipeline.run.RunResult``."""
    from gristmill.pipeline.executors import LocalExecutor, RayExecutor
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir
    from gristmill.pipeline.timeline import RunClock

    clock = clock or RunClock()
    executor_name = executor or plan.spec.execution.executor
    if executor_name not in EXECUTORS:
        raise RunOptionsError(f"executor {executor_name!r}: expected one of {', '.join(EXECUTORS)}")
    address = address or os.environ.get("RAY_ADDRESS")
    if address and executor_name == "local":
        raise RunOptionsError(f"a Ray address ({address}) needs the ray executor, not local")
    directory = RunDir(run_dir or plan.spec.output.run_dir or os.path.join("runs", plan.spec.name))
    if executor_name == "ray":
        with clock.phase("Ray start" if not address else "Ray connect", "start"):
            init_ray(address)
        runner = RayExecutor(progress=progress)
    else:
        runner = LocalExecutor(progress=progress)
    return run_plan(plan, directory, runner, force=force, force_unlock=force_unlock, log=log, clock=clock)


def run(pipeline: str | os.PathLike, run_dir: str | os.PathLike | None = None, executor: str | None = None,
        *, address: str | None = None, force: bool = False, force_unlock: bool = False,
        base_dir: str | os.PathLike | None = None, log: Callable[[str], None] | None = None) -> PipelineRun:
    """Run a pipeline (a YAML file's path, or YAML text) as ``gristmill run`` does, without progress display;
    ``log`` receives the run's messages (warnings, skipped segments). Raises the CLI's errors (``SpecError``,
    ``StaleSegmentError``, ``LeaseHeldError``, ...) instead of printing them."""
    from gristmill.mixtures.shards import load_manifest

    plan = load_plan(pipeline, base_dir)
    result = execute(plan, run_dir, executor, address=address, force=force, force_unlock=force_unlock,
                     log=log or (lambda message: None))
    root = storage.resolve(result.run_dir)
    layout = RunLayout(root)
    manifest = load_manifest(root) if layout.manifest.is_file() else None
    return PipelineRun(
        run_dir=root,
        plan_hash=result.plan_hash,
        stats={segment.segment: segment.stages for segment in result.stats},
        global_stats={segment.segment: segment.global_step for segment in result.stats if segment.global_step},
        segments_computed=list(result.computed),
        segments_skipped=list(result.skipped),
        seconds=result.seconds,
        manifest=manifest,
        shards=[layout.file(entry["path"]) for entry in (manifest or {}).get("shards", [])],
    )
