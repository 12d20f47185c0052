"""The compute seam: what a stage may ask of whatever runs it.

A stage gets a ``Runtime`` in its context and fans work out through it: ``submit`` a function (its arguments
may be handles of earlier submissions, resolved before it runs), ``get`` results, ``map`` a function over items
with bounded parallelism, or start an ``actor`` for state that must live across calls (a Bloom filter
partition). ``cpus`` says how many CPUs the work may use. The same functions run on every runtime, so a stage's
result never depends on which one ran it, and a stage never learns which one that is.

``LocalRuntime`` runs everything in-process, in submission order; the orchestrator brings its own runtime
for Ray (``gristmill.pipeline._internal.ray_runtime``).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable


class ActorHandle:
    """A stateful worker: ``call(method, *args)`` gives a handle of the method's result."""

    def call(self, method: str, *args: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class Runtime:
    """The interface; see the module docstring."""

    def submit(self, fn: Callable, *args: Any, num_returns: int = 1, num_cpus: float = 1.0) -> Any:
        """Run ``fn(*args)``; with ``num_returns > 1`` a list of handles, one per returned value."""
        raise NotImplementedError  # pragma: no cover - interface

    def get(self, handles: Any) -> Any:
        """The value of a handle, or the values of a list of handles."""
        raise NotImplementedError  # pragma: no cover - interface

    def map(self, fn: Callable, items: Iterable[Any], num_cpus: float = 1.0) -> list:
        """``[fn(item) for item in items]`` in order, at most ``cpus / num_cpus`` running at once."""
        raise NotImplementedError  # pragma: no cover - interface

    def actor(self, cls: type, *args: Any, num_cpus: float = 0.0) -> ActorHandle:
        """An instance of ``cls(*args)`` that keeps its state between ``call``s."""
        raise NotImplementedError  # pragma: no cover - interface

    @property
    def cpus(self) -> int:
        """CPUs the work may use at once (at least 1)."""
        raise NotImplementedError  # pragma: no cover - interface

    @property
    def node_cpus(self) -> int:
        """The most CPUs one task can reserve (the largest machine's), for multi-threaded native work."""
        raise NotImplementedError  # pragma: no cover - interface


class _LocalActor(ActorHandle):
    def __init__(self, instance: Any):
        self.instance = instance

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.instance, method)(*args)


class LocalRuntime(Runtime):
    """Everything in this process, one call at a time: handles are the values themselves."""

    def __init__(self, cpus: int | None = None):
        self._cpus = max(1, int(cpus or os.cpu_count() or 1))

    def submit(self, fn: Callable, *args: Any, num_returns: int = 1, num_cpus: float = 1.0) -> Any:
        out = fn(*args)
        return list(out) if num_returns > 1 else out

    def get(self, handles: Any) -> Any:
        return handles

    def map(self, fn: Callable, items: Iterable[Any], num_cpus: float = 1.0) -> list:
        return [fn(item) for item in items]

    def actor(self, cls: type, *args: Any, num_cpus: float = 0.0) -> ActorHandle:
        return _LocalActor(cls(*args))

    @property
    def cpus(self) -> int:
        return self._cpus

    @property
    def node_cpus(self) -> int:
        return self._cpus

