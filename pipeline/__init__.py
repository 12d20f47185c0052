"""gristmill pipelines: load a YAML spec, plan it, run it locally or on Ray, inspect the run directory.

The names below load on first use (PEP 562), so importing a submodule such as ``gristmill.pipeline.registry`` from a stage
module does not pull in the executors (and cannot create an import cycle through them).
"""

from importlib import import_module

_EXPORTS = {
    "LocalExecutor": "gristmill.pipeline.executors",
    "RayExecutor": "gristmill.pipeline.executors",
    "Plan": "gristmill.pipeline.plan",
    "build_plan": "gristmill.pipeline.plan",
    "RunResult": "gristmill.pipeline.run",
    "run_plan": "gristmill.pipeline.run",
    "RunDir": "gristmill.pipeline.rundir",
    "PipelineSpec": "gristmill.pipeline.spec",
    "SpecError": "gristmill.pipeline.spec",
    "load_pipeline": "gristmill.pipeline.spec",
    "parse_pipeline": "gristmill.pipeline.spec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
