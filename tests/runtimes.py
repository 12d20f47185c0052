"""The runtime a test hands a global stage, by executor name (``ray`` needs the session's ``ray_cluster``)."""

from __future__ import annotations

from gristmill.core.runtime import LocalRuntime, Runtime


def runtime_for(executor: str) -> Runtime:
    if executor == "ray":
        from gristmill.pipeline._internal.ray_runtime import RayRuntime

        return RayRuntime()
    if executor != "local":
        raise ValueError(f"unknown executor {executor!r}")
    return LocalRuntime()
