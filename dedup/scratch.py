"""Scratch buffers of the compiled MinHash path, reused from chunk to chunk and batch to batch by each thread.

A batch's intermediates (normalized text, token positions, token and shingle hashes: ~6 bytes for each byte of
text) were fresh memory on every call: the kernels then paid a page fault for every 4 KiB they wrote (a fifth of
the signatures' CPU). Taken from here, the text is processed a chunk at a time (``minhash.CHUNK_BYTES``) in the
same few buffers, which stay mapped and in the cache. Buffers above ``KEEP_BYTES`` (a single document larger
than a chunk needs them) are not kept."""

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
