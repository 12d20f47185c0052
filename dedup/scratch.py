"""Scratch buffers of the compiled MinHash path, reused from chunk to chunk and batch to batch by each thread.

A batch's intermediates (normalized text, token positions, token hashes, shingle hashes: about 5 bytes written
for each byte of text) were fresh memory on every call, and the kernels paid a page fault for every 4 KiB they
wrote (3-8 ms of system time per 6.6 MB of text, ~10% of the signatures' CPU). Taken from here, the text is
processed ``minhash.CHUNK_BYTES`` at a time in the same few buffers, which stay mapped: tens of MB per thread
at most. A buffer above ``KEEP_BYTES`` (a single document larger than a chunk can need one) is not kept."""

from __future__ import annotations

import threading

import numpy as np

KEEP_BYTES = 64 << 20


class Scratch(threading.local):
    """Named buffers of this thread; ``array`` hands out the first ``size`` items of one."""

    def __init__(self):
        self.buffers: dict[str, np.ndarray] = {}

    def array(self, name: str, size: int, dtype) -> np.ndarray:
        """A buffer of ``size`` items of ``dtype`` (contents undefined), valid until ``name`` is asked for again."""
        buffer = self.buffers.get(name)
        if buffer is None or buffer.dtype != dtype or len(buffer) < size:
            buffer = np.empty(max(size, 2 * len(buffer) if buffer is not None else 0), dtype=dtype)
            if buffer.nbytes <= KEEP_BYTES:
                self.buffers[name] = buffer
        return buffer[:size]


SCRATCH = Scratch()
