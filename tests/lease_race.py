"""Several runs racing for one run directory's lease (tests/pipeline: local and object-store leases)."""

from __future__ import annotations

import threading

from gristmill.pipeline.lease import LeaseHeldError, RunLease


def race_for_lease(path, contenders: int) -> list[RunLease | LeaseHeldError]:
    """What each of ``contenders`` threads, released together, got from ``RunLease(path).acquire()``: the lease
    it holds or the refusal."""
    start = threading.Barrier(contenders)
    outcomes: list[RunLease | LeaseHeldError] = []

    def contend() -> None:
        start.wait()
        try:
            outcomes.append(RunLease(path).acquire())
        except LeaseHeldError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes
