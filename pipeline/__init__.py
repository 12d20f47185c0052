"""gristmill pipelines: load a YAML spec, plan it, run it locally or on Ray, inspect the run directory.

The names below load on first use (PEP 562), so importing a submodule such as ``pipeline.registry`` from a stage
module does not pull in the executors (and cannot create an import cycle through them).
"""

from importlib import import_module

_EXPORTS = {
    "LocalExecutor": "pipeline.executors",
    "RayExecutor": "pipeline.executors",
    "Plan": "pipeline.plan",
    "build_plan": "pipeline.plan",
    "RunResult": "pipeline.run",
    "run_plan": "pipeline.run",
    "RunDir": "pipeline.rundir",
    "PipelineSpec": "pipeline.spec",
    "SpecError": "pipeline.spec",
    "load_pipeline": "pipeline.spec",
    "parse_pipeline": "pipeline.spec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
