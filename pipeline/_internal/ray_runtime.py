"""The compute seam on Ray (``gristmill.core.runtime``): tasks, actors and ``ray.wait``-bounded maps, public API
only. Results stay in Ray's object store and flow from task to task as ``ObjectRef``s, never through the driver
unless a stage asks for them."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import ray

from gristmill.core.runtime import ActorHandle, Runtime


class _RayActor(ActorHandle):
    def __init__(self, handle: Any):
        self.handle = handle

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.handle, method).remote(*args)


class RayRuntime(Runtime):
    """Ray tasks and actors on the cluster ``ray.init`` joined."""

    def __init__(self) -> None:
        self._remote: dict[tuple, Any] = {}

    def _function(self, fn: Callable, num_returns: int, num_cpus: float) -> Any:
        key = (fn, num_returns, num_cpus)
        if key not in self._remote:
            self._remote[key] = ray.remote(num_returns=num_returns, num_cpus=num_cpus)(fn)
        return self._remote[key]

    def submit(self, fn: Callable, *args: Any, num_returns: int = 1, num_cpus: float = 1.0) -> Any:
        out = self._function(fn, num_returns, num_cpus).remote(*args)
        return list(out) if num_returns > 1 else out

    def get(self, handles: Any) -> Any:
        return ray.get(handles)

    def map(self, fn: Callable, items: Iterable[Any], num_cpus: float = 1.0) -> list:
        """Submitted as slots free up (at most ``cpus / num_cpus`` queued), so a long map does not flood the
        scheduler or pin every item's arguments in the object store at once."""
        remote = self._function(fn, 1, num_cpus)
        items = list(items)
        slots = max(1, int(self.cpus / num_cpus)) if num_cpus > 0 else max(1, len(items))
        refs: list[Any] = []
        pending: list[Any] = []
        for item in items:
            if len(pending) >= slots:
                _, pending = ray.wait(pending, num_returns=1)
            ref = remote.remote(item)
            refs.append(ref)
            pending.append(ref)
        return ray.get(refs)

    def actor(self, cls: type, *args: Any, num_cpus: float = 0.0) -> ActorHandle:
        return _RayActor(ray.remote(num_cpus=num_cpus)(cls).remote(*args))

    @property
    def cpus(self) -> int:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    @property
    def node_cpus(self) -> int:
        return max([1, *(int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive"))])
