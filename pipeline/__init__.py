"""gristmill pipelines: load a YAML spec, plan it, run it locally or on Ray, inspect the run directory."""

from pipeline.executors import LocalExecutor, RayExecutor
from pipeline.plan import Plan, build_plan
from pipeline.run import RunResult, run_plan
from pipeline.rundir import RunDir
from pipeline.spec import PipelineSpec, SpecError, load_pipeline, parse_pipeline

__all__ = [
    "LocalExecutor", "Plan", "PipelineSpec", "RayExecutor", "RunDir", "RunResult", "SpecError",
    "build_plan", "load_pipeline", "parse_pipeline", "run_plan",
]
