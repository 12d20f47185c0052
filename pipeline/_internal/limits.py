"""Trial-run inputs: ``sample`` (a seeded fraction of the documents) and ``limit`` (the first N documents).

Both are decided by ``doc_id`` alone, never by which worker reads what, so the local and the Ray executor keep the
same documents. ``sample`` keeps a document when ``hash(seed, doc_id)`` falls below the fraction. ``limit`` needs
to know where the N-th kept document of the input is: ``find_cutoff`` reads the input's units in order until it
has seen N of them and returns that document's ``doc_id``. The driver does this once before ingest
(``resolve_cutoffs``) and the plan carries the answer to the workers; ingest then reads units up to the cutoff,
drops the rows of the cutoff's batch that come after it (reason ``limit``) and reads no further, counting the
files of the units after it, which it does not open.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.mixtures.packer import keyed_hash

SAMPLE_REASON = "sample"
LIMIT_REASON = "limit"
# Ingest counters on the batch where an input's limit was reached.
LIMIT_REACHED = "limit_reached"
FILES_NOT_READ = "files_not_read_by_limit"
# Keeps the sample hash apart from the mixture's per-epoch and interleave hashes of the same doc_ids.
_SAMPLE_STREAM = 0x5A4D_504C_4500


def sampled_out(doc_ids: pa.Array, fraction: float, seed: int) -> pa.Array:
    """True for the documents a ``sample: fraction`` leaves out."""
    if fraction >= 1:
        return pa.array(np.zeros(len(doc_ids), dtype=bool))
    threshold = np.uint64(min(int(fraction * 2.0**64), 2**64 - 1))
    hashes = keyed_hash(seed, _SAMPLE_STREAM, doc_ids.to_numpy(zero_copy_only=False))
    return pa.array(hashes >= threshold)


def mark(reasons: pa.Array, rows: pa.Array, reason: str, documents_only: bool) -> pa.Array:
    """``reasons`` with ``reason`` set on ``rows`` (only on rows still documents, if ``documents_only``)."""
    if documents_only:
        rows = pc.and_(rows, pc.is_null(reasons))
    return pc.if_else(rows, pa.scalar(reason, pa.string()), reasons)


def find_cutoff(batches: Iterator[tuple[pa.Array, pa.Array]], limit: int) -> int | None:
    """The doc_id of the ``limit``-th document in ``(doc_ids, reasons)`` batches read in input order; None when
    there are fewer."""
    seen = 0
    for doc_ids, reasons in batches:
        kept = pc.is_null(reasons).to_numpy(zero_copy_only=False)
        count = int(kept.sum())
        if seen + count >= limit:
            return int(doc_ids.to_numpy(zero_copy_only=False)[np.flatnonzero(kept)[limit - seen - 1]])
        seen += count
    return None


def cutoff_for(plan, input_index: int, read_input: Callable[[int], Iterator[tuple[pa.Array, pa.Array]]]) -> int | None:
    """The input's cutoff: from the plan when the driver resolved it, else found here (and remembered)."""
    if input_index not in plan.limit_cutoffs:
        limit = plan.spec.inputs[input_index].limit
        plan.limit_cutoffs[input_index] = find_cutoff(read_input(input_index), limit)
    return plan.limit_cutoffs[input_index]
