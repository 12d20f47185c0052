"""The head of the first segment: the pipeline's inputs, each unit read by the head stage its input's ``format``
names (``HeadStage`` in stages/base.py).

A head stage only turns a unit into record batches. Everything else about reading input is the framework's, the
same for every head stage, and lives here: ``doc_id`` numbering (``(unit index << 32) | ordinal``), the
``source`` and part columns, counting the records' notes, the input's size limit (``max_doc_bytes`` with
``oversize``), its ``sample`` and ``limit`` (``limits.py``), naming the input in an unreadable file's error, and
handing every batch to the ingest step's runner, which accounts it like any other stage's output.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.pipeline._internal import limits
from gristmill.pipeline._internal.runner import SegmentHead, StepRunner
from gristmill.pipeline.plan import IngestUnit, Plan
from gristmill.stages.base import NOTES, PART_COLUMN, REJECT_REASON, InputFileError, StageOutput

# The ingest counter of documents cut to the input's ``max_doc_bytes`` (``oversize: truncate``).
TRUNCATED_TO_MAX_DOC_BYTES = "truncated_to_max_doc_bytes"


class InputsHead(SegmentHead):
    """The plan's input units, each read by its input's head stage; the ingest step's runner accounts each batch
    (reading, decoding and extracting are its time)."""

    by_unit = True

    def __init__(self, plan: Plan):
        self.plan = plan

    def prepare(self, log) -> None:
        """Where each input's ``limit`` cuts it, found once on the driver so that every worker reads the same
        documents (the plan carries the cutoffs to them)."""
        resolve_limit_cutoffs(self.plan)
        for i, cutoff in sorted(self.plan.limit_cutoffs.items()):
            inp = self.plan.spec.inputs[i]
            where = "the input has fewer" if cutoff is None else f"reading stops at doc_id {cutoff:#x}"
            log(f"inputs[{i}] (source {inp.source}): limit {inp.limit} documents; {where}")

    def items(self) -> list[int]:
        return list(range(len(self.plan.units)))

    def tables(self, runner: StepRunner, items: Iterable[int]) -> Iterator[pa.Table]:
        for i in items:
            batches = read_unit(self.plan, self.plan.units[i])
            while True:
                start = time.perf_counter()  # reading, decoding and extracting happen inside next()
                out = next(batches, None)
                if out is None:
                    break
                yield runner.finish(out.table, out, time.perf_counter() - start)


@dataclasses.dataclass
class HeadOutput(StageOutput):
    """An input batch (all rows of one part) and its counters: counter name -> rows noted."""

    counters: dict[str, int] = dataclasses.field(default_factory=dict)


def read_unit(plan: Plan, iu: IngestUnit) -> Iterator[HeadOutput]:
    """Read one unit into document batches; every record becomes a row (kept or rejected). An input with a
    ``limit`` is read up to its cutoff document only (pipeline/_internal/limits.py)."""
    inp = plan.spec.inputs[iu.input_index]
    if inp.limit is None:
        yield from _sampled(plan, iu)
        return
    cutoff = limits.cutoff_for(plan, iu.input_index, lambda i: _documents_of_input(plan, i))
    if cutoff is None or iu.unit.index < cutoff >> 32:
        yield from _sampled(plan, iu)
        return
    if iu.unit.index > cutoff >> 32:
        return  # after the limit: not read (counted on the cutoff's batch)
    for out in _sampled(plan, iu):
        doc_ids = out.table["doc_id"].combine_chunks()
        if doc_ids[-1].as_py() < cutoff:
            yield out
            continue
        after = pc.greater(doc_ids, pa.scalar(cutoff, pa.uint64()))
        out.reject_reason = limits.mark(out.reject_reason, after, limits.LIMIT_REASON, documents_only=False)
        out.counters[limits.LIMIT_REACHED] = 1
        unread = sum(len(u.unit.paths) for u in plan.units
                     if u.input_index == iu.input_index and u.unit.index > iu.unit.index)
        if unread:
            out.counters[limits.FILES_NOT_READ] = unread
        yield out
        return


def resolve_limit_cutoffs(plan: Plan) -> None:
    """Find every limited input's cutoff once (the driver, before ingest), so workers read it from the plan."""
    for i, inp in enumerate(plan.spec.inputs):
        if inp.limit is not None:
            limits.cutoff_for(plan, i, lambda index: _documents_of_input(plan, index))


def _documents_of_input(plan: Plan, input_index: int) -> Iterator[tuple[pa.Array, pa.Array]]:
    for iu in plan.units:
        if iu.input_index == input_index:
            for out in _sampled(plan, iu):
                yield out.table["doc_id"].combine_chunks(), out.reject_reason


def _sampled(plan: Plan, iu: IngestUnit) -> Iterator[HeadOutput]:
    """The unit's batches with the documents an input's ``sample`` leaves out dropped (reason ``sample``)."""
    fraction = plan.spec.inputs[iu.input_index].sample
    for out in _numbered(plan, iu):
        if fraction is not None:
            out_of_sample = limits.sampled_out(out.table["doc_id"].combine_chunks(), fraction, plan.spec.seed)
            out.reject_reason = limits.mark(out.reject_reason, out_of_sample, limits.SAMPLE_REASON,
                                            documents_only=True)
        yield out


def _numbered(plan: Plan, iu: IngestUnit) -> Iterator[HeadOutput]:
    """The head stage's record batches for the unit as document batches: numbered, with their source, part and
    notes counted, and the input's size limit applied."""
    inp = plan.spec.inputs[iu.input_index]
    stage = plan.head_stage(iu.input_index)
    stage.setup()
    where = f"inputs[{iu.input_index}] (source {iu.source})"
    ordinal = 0
    for records in _named_input_errors(stage.read(iu.unit), where):
        n = records.num_rows
        if n == 0:
            continue
        doc_ids = (np.uint64(iu.unit.index) << np.uint64(32)) + np.arange(ordinal, ordinal + n, dtype=np.uint64)
        ordinal += n
        table = pa.table({
            "doc_id": pa.array(doc_ids, pa.uint64()),
            "source": pa.array([iu.source] * n, pa.string()),
            "text": records["text"].cast(pa.large_string()),
            "url": records["url"].cast(pa.string()),
            "origin": records["origin"].cast(pa.string()),
            REJECT_REASON: records[REJECT_REASON].cast(pa.string()),
            PART_COLUMN: pa.array(np.full(n, doc_ids[0], dtype=np.uint64), pa.uint64()),
        })
        counters = note_counters(records)
        if inp.oversize == "truncate":
            truncated = pc.sum(pc.cast(oversize_rows(table, inp.max_doc_bytes), pa.int64())).as_py() or 0
            if truncated:
                counters[TRUNCATED_TO_MAX_DOC_BYTES] = truncated
        table = apply_size_limit(table, inp.max_doc_bytes, inp.oversize)
        reasons = table[REJECT_REASON].combine_chunks()
        yield HeadOutput(table.drop_columns([REJECT_REASON]), reasons, counters)


def _named_input_errors(batches: Iterator[pa.Table], where: str) -> Iterator[pa.Table]:
    """The head stage's batches; a file it cannot read is reported with the input it belongs to."""
    try:
        yield from batches
    except InputFileError as exc:
        raise InputFileError(f"{where}: {exc}") from exc


def note_counters(records: pa.Table) -> dict[str, int]:
    """Rows per counter name in the records' optional ``notes`` column (a list of names per row)."""
    if NOTES not in records.column_names:
        return {}
    names = pc.list_flatten(records[NOTES])
    if len(names) == 0:
        return {}
    return {row["values"]: row["counts"] for row in pc.value_counts(names).to_pylist()}


def oversize_rows(table: pa.Table, max_bytes: int) -> pa.Array:
    """Kept rows whose text is longer than ``max_bytes`` (UTF-8)."""
    lengths = pc.binary_length(table["text"])
    return pc.fill_null(pc.and_(pc.greater(lengths, max_bytes), pc.is_null(table[REJECT_REASON])), False)


def apply_size_limit(table: pa.Table, max_bytes: int, mode: str) -> pa.Table:
    """Truncate (at a UTF-8 character boundary) or reject documents whose text exceeds ``max_bytes``."""
    over = oversize_rows(table, max_bytes)
    if not pc.any(over).as_py():
        return table
    idx = np.flatnonzero(over.to_numpy(zero_copy_only=False))
    if mode == "reject":
        reasons = table[REJECT_REASON].to_pylist()
        for i in idx:
            reasons[i] = "too_large"
        return table.set_column(table.schema.get_field_index(REJECT_REASON), REJECT_REASON,
                                pa.array(reasons, pa.string()))
    # Rare rows only: the per-row loop here touches just the oversize documents.
    texts = table["text"].to_pylist()
    for i, short in zip(idx, _utf8_truncate([texts[i] for i in idx], max_bytes)):
        texts[i] = short
    return table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.large_string()))


def _utf8_truncate(texts: list[str], max_bytes: int) -> list[str]:
    return [t.encode("utf-8")[:max_bytes].decode("utf-8", "ignore") for t in texts]
