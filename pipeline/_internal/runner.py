"""The machinery both executors share, so local and Ray runs execute exactly the same code per batch:
reading a unit, running a stage on a batch with its accounting, and writing committed parts."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.core import storage
from gristmill.core.layout import RunLayout
from gristmill.pipeline._internal import limits
from gristmill.pipeline.plan import IngestUnit, Plan, Segment, Step
from gristmill.pipeline.rundir import part_file_name, write_parquet_atomic, write_part
from gristmill.stages.base import PART_COLUMN, REJECT_REASON, GlobalStage, Stage, StageOutput
from gristmill.stages.ingest.base import NOTES, InputFileError

Reporter = Callable[[tuple, dict], None]


class StageContractError(RuntimeError):
    """A stage broke the contract (changed the row count, lost a column); a bug in the stage, not the data."""


# --- ingest -----------------------------------------------------------------------------------------------

def oversize_rows(table: pa.Table, max_bytes: int) -> pa.Array:
    """Kept rows whose text is longer than ``max_bytes`` (UTF-8)."""
    lengths = pc.binary_length(table["text"])
    return pc.fill_null(pc.and_(pc.greater(lengths, max_bytes), pc.is_null(table[REJECT_REASON])), False)


def _utf8_truncate(texts: list[str], max_bytes: int) -> list[str]:
    return [t.encode("utf-8")[:max_bytes].decode("utf-8", "ignore") for t in texts]


# The ingest counter of documents cut to the input's ``max_doc_bytes`` (``oversize: truncate``).
TRUNCATED_TO_MAX_DOC_BYTES = "truncated_to_max_doc_bytes"


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


@dataclasses.dataclass
class ReadOutput(StageOutput):
    """An ingest batch (all rows of one part) and the reader's counters for it: counter name -> rows noted."""

    counters: dict[str, int] = dataclasses.field(default_factory=dict)


def reader_counters(records: pa.Table) -> dict[str, int]:
    """Rows per counter name in the reader's optional ``notes`` column (a list of names per row)."""
    if NOTES not in records.column_names:
        return {}
    names = pc.list_flatten(records[NOTES])
    if len(names) == 0:
        return {}
    return {row["values"]: row["counts"] for row in pc.value_counts(names).to_pylist()}


def read_unit(plan: Plan, iu: IngestUnit) -> Iterator[StageOutput]:
    """Read one unit into document batches; every record becomes a row (kept or rejected). An input with a
    ``limit`` is read up to its cutoff document only (pipeline/_internal/limits.py)."""
    inp = plan.spec.inputs[iu.input_index]
    if inp.limit is None:
        yield from _read_sampled(plan, iu)
        return
    cutoff = limits.cutoff_for(plan, iu.input_index, lambda i: _documents_of_input(plan, i))
    if cutoff is None or iu.unit.index < cutoff >> 32:
        yield from _read_sampled(plan, iu)
        return
    if iu.unit.index > cutoff >> 32:
        return  # after the limit: not read (counted on the cutoff's batch)
    for out in _read_sampled(plan, iu):
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
            for out in _read_sampled(plan, iu):
                yield out.table["doc_id"].combine_chunks(), out.reject_reason


def _read_sampled(plan: Plan, iu: IngestUnit) -> Iterator[ReadOutput]:
    """The unit's batches with the documents an input's ``sample`` leaves out dropped (reason ``sample``)."""
    fraction = plan.spec.inputs[iu.input_index].sample
    for out in _read_records(plan, iu):
        if fraction is not None:
            out_of_sample = limits.sampled_out(out.table["doc_id"].combine_chunks(), fraction, plan.spec.seed)
            out.reject_reason = limits.mark(out.reject_reason, out_of_sample, limits.SAMPLE_REASON,
                                            documents_only=True)
        yield out


def _read_records(plan: Plan, iu: IngestUnit) -> Iterator[ReadOutput]:
    inp = plan.spec.inputs[iu.input_index]
    reader = plan.reader(iu.input_index)
    ordinal = 0
    for records in _named_input_errors(reader.read(iu.unit), f"inputs[{iu.input_index}] (source {iu.source})"):
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
        counters = reader_counters(records)
        if inp.oversize == "truncate":
            truncated = pc.sum(pc.cast(oversize_rows(table, inp.max_doc_bytes), pa.int64())).as_py() or 0
            if truncated:
                counters[TRUNCATED_TO_MAX_DOC_BYTES] = truncated
        table = apply_size_limit(table, inp.max_doc_bytes, inp.oversize)
        reasons = table[REJECT_REASON].combine_chunks()
        yield ReadOutput(table.drop_columns([REJECT_REASON]), reasons, counters)


def _named_input_errors(batches: Iterator[pa.Table], where: str) -> Iterator[pa.Table]:
    """The reader's batches; a file it cannot read is reported with the input it belongs to."""
    try:
        yield from batches
    except InputFileError as exc:
        raise InputFileError(f"{where}: {exc}") from exc


def read_part(path: str) -> pa.Table:
    """A committed part back as a batch, with its ``_part`` column restored from the file name."""
    if storage.is_uri(path):
        table = storage.resolve(path).read_parquet()
    else:
        table = pq.read_table(path)
    name = storage.resolve(path).name
    part = int(name[len("part-"):-len(".parquet")], 16)
    return table.append_column(PART_COLUMN, pa.array(np.full(table.num_rows, part, dtype=np.uint64), pa.uint64()))


# --- accounting -------------------------------------------------------------------------------------------

def _text_bytes(table: pa.Table) -> np.ndarray:
    if "text" not in table.column_names or table.num_rows == 0:
        return np.zeros(table.num_rows, dtype=np.int64)
    return pc.fill_null(pc.binary_length(table["text"]), 0).to_numpy(zero_copy_only=False).astype(np.int64)


def account(step: Step, source_of: Callable[[pa.Table], np.ndarray], table_in: pa.Table, out: StageOutput,
            seconds: float) -> tuple[pa.Table, pa.Table | None, list[tuple[tuple, dict]]]:
    """Split kept and rejected rows, check the contract, and build one report per (part, piece)."""
    table_out = out.table
    if table_out.num_rows != table_in.num_rows:
        raise StageContractError(
            f"{step.label} ({step.stage_name}) returned {table_out.num_rows} rows for {table_in.num_rows}; "
            "stages must return every input row and mark drops in reject_reason"
        )
    if PART_COLUMN not in table_out.column_names:
        raise StageContractError(f"{step.label} ({step.stage_name}) dropped the {PART_COLUMN} column")
    n = table_out.num_rows
    if out.reject_reason is None:
        keep = np.ones(n, dtype=bool)
        reasons = None
    else:
        reasons = out.reject_reason
        if isinstance(reasons, pa.ChunkedArray):
            reasons = reasons.combine_chunks()
        if len(reasons) != n:
            raise StageContractError(f"{step.label} ({step.stage_name}) gave {len(reasons)} reasons for {n} rows")
        keep = pc.is_null(reasons).to_numpy(zero_copy_only=False)

    parts = table_out[PART_COLUMN].to_numpy()
    doc_ids = table_in["doc_id"].to_numpy() if "doc_id" in table_in.column_names else np.zeros(n, np.uint64)
    bytes_in = _text_bytes(table_in)
    bytes_out = _text_bytes(table_out)
    sources = source_of(table_out)
    drops_by_part = _drops_by_part(parts, keep, reasons, bytes_in)

    reports = []
    for part in np.unique(parts):
        rows = parts == part
        kept = rows & keep
        first = int(doc_ids[rows][0]) if rows.any() else 0
        drops = drops_by_part.get(int(part), {})
        kept_bytes = bytes_out[kept]
        share = rows.sum() / max(n, 1)
        reports.append(((step.position, int(part), first), {
            "position": step.position, "label": step.label, "stage": step.stage_name,
            "part": int(part), "source": str(sources[np.flatnonzero(rows)[0]]),
            "rows_in": int(rows.sum()), "rows_out": int(kept.sum()),
            "bytes_in": int(bytes_in[rows].sum()), "bytes_out": int(kept_bytes.sum()),
            "out_bytes_min": int(kept_bytes.min()) if kept_bytes.size else None,
            "out_bytes_max": int(kept_bytes.max()) if kept_bytes.size else None,
            "seconds": float(seconds * share), "drops": drops,
        }))
    counters = getattr(out, "counters", None)
    if counters:
        if len(reports) == 1:
            reports[0][1]["counters"] = dict(counters)
        elif all(rows == n for rows in counters.values()):  # every row: each part gets its own rows
            for _, report in reports:
                report["counters"] = {name: report["rows_in"] for name in counters}
        else:
            raise StageContractError(f"{step.label}: counters of some rows for a batch of {len(reports)} parts")

    if keep.all():
        return table_out, None, reports
    mask = pa.array(keep)
    rejected = table_out.filter(pc.invert(mask)).append_column(REJECT_REASON, reasons.filter(pc.invert(mask)))
    return table_out.filter(mask), rejected, reports


def _drops_by_part(parts: np.ndarray, keep: np.ndarray, reasons: pa.Array | None,
                   bytes_in: np.ndarray) -> dict[int, dict[str, list[int]]]:
    """{part: {reason: [rows, bytes]}} for the rejected rows, grouped in Arrow rather than row by row."""
    if reasons is None or keep.all():
        return {}
    drop = ~keep
    grouped = pa.table({
        "part": pa.array(parts[drop], pa.uint64()),
        "reason": reasons.filter(pa.array(drop)),
        "bytes": pa.array(bytes_in[drop], pa.int64()),
    }).group_by(["part", "reason"]).aggregate([("bytes", "sum"), ("bytes", "count")])
    out: dict[int, dict[str, list[int]]] = {}
    for row in grouped.to_pylist():
        out.setdefault(row["part"], {})[row["reason"]] = [row["bytes_count"], row["bytes_sum"]]
    return out


def _sources(table: pa.Table) -> np.ndarray:
    if "source" in table.column_names:
        return table["source"].to_numpy(zero_copy_only=False)
    return np.array(["?"] * table.num_rows, dtype=object)


def write_rejects(rejects_root: Path, step: Step, rejected: pa.Table) -> None:
    """RUN_DIR/rejects/NN-stage/part-PART-FIRSTDOC.parquet: one file per piece, so a retry overwrites itself."""
    parts = rejected[PART_COLUMN].to_numpy()
    for part in np.unique(parts):
        piece = rejected.filter(pa.array(parts == part)).drop_columns([PART_COLUMN])
        first = int(piece["doc_id"][0].as_py()) if "doc_id" in piece.column_names else 0
        write_parquet_atomic(rejects_root / step.slug / f"part-{int(part):016x}-{first:016x}.parquet", piece)


# --- running a stage on a batch ---------------------------------------------------------------------------

# Set-up stages of this process, so a stateful stage run as Ray tasks (which reuse worker processes) loads its
# model once per worker, not once per batch. Keyed by everything that decides the stage's state.
_SET_UP: dict[tuple, Stage] = {}


def _worker_cpus() -> int | None:
    """CPUs Ray assigned to this task or actor; None outside a Ray worker (no limit in-process)."""
    if "ray" not in sys.modules:
        return None
    import ray

    if not ray.is_initialized() or ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return None
    return max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1) or 1))


def set_up_stage(step: Step, run_dir: str) -> Stage:
    """The step's stage, given the run's layout and this worker's CPU budget, with ``setup()`` done."""
    stage = step.instantiate()
    stage.layout = RunLayout(run_dir)
    stage.worker_cpus = _worker_cpus()
    stage.setup()
    return stage


def cached_stage(step: Step, run_dir: str) -> Stage:
    import json

    key = (step.stage_name, json.dumps(step.params, sort_keys=True, default=str), run_dir)
    stage = _SET_UP.get(key)
    if stage is None:
        stage = _SET_UP[key] = set_up_stage(step, run_dir)
    return stage


class StepRunner:
    """Runs one step on batches: calls the stage, accounts, keeps rejects, reports stats. Used as a plain
    function by the local executor and inside Ray tasks/actors by the Ray executor."""

    def __init__(self, step: Step, run_dir: str, rejects: bool, reporter: Reporter, state: Any = None):
        self.step = step
        self.run_dir = run_dir
        self.rejects = rejects
        self.reporter = reporter
        self.state = state
        self._stage: Stage | None = None
        # Ray tasks running a stateful stage: reuse the stage set up earlier in this worker process.
        self.cache_setup = False

    @property
    def stage(self) -> Stage:
        if self._stage is None:
            if self.cache_setup:
                self._stage = cached_stage(self.step, self.run_dir)
            else:
                self._stage = set_up_stage(self.step, self.run_dir)
        return self._stage

    def process(self, table: pa.Table) -> StageOutput:
        stage = self.stage
        if isinstance(stage, GlobalStage):
            return stage.apply(table, self.state)
        return stage.process(table)  # type: ignore[attr-defined]

    def __call__(self, table: pa.Table) -> pa.Table:
        start = time.perf_counter()
        out = self.process(table)
        return self.finish(table, out, time.perf_counter() - start)

    def finish(self, table_in: pa.Table, out: StageOutput, seconds: float) -> pa.Table:
        kept, rejected, reports = account(self.step, _sources, table_in, out, seconds)
        if rejected is not None and self.rejects:
            write_rejects(storage.resolve(self.run_dir) / "rejects", self.step, rejected)
        for key, report in reports:
            self.reporter(key, report)
        return kept


def write_parts(segment_dir: Path, table: pa.Table) -> list[dict]:
    """Write each part in the batch as ``part-PART.parquet``, rows sorted by doc_id, without ``_part``; returns
    each part's name, rows, size and hash for the segment's ``_SUCCESS``."""
    if table.num_rows == 0:
        return []
    parts = table[PART_COLUMN].to_numpy()
    written = []
    for part in np.unique(parts):
        piece = table.filter(pa.array(parts == part)).drop_columns([PART_COLUMN])
        piece = piece.sort_by("doc_id")
        path = segment_dir / part_file_name(int(part))
        written.append({"part": int(part), "rows": piece.num_rows, "path": path.name, **write_part(path, piece)})
    return written


# --- the head of a segment --------------------------------------------------------------------------------

class SegmentHead:
    """What a segment starts from: its work items (an executor deals them out) and the tables its first step
    makes of them, accounted by that step's runner. Segment 00's head is ingest (``IngestHead``); every other
    segment's is its global step's ``apply`` over the previous segment's committed parts (``PartsHead``)."""

    # Progress counts ingest units (a part key's high bits) or parts.
    by_unit: bool = False

    def items(self) -> list:  # pragma: no cover - interface
        raise NotImplementedError

    def tables(self, runner: StepRunner, items: Iterable) -> Iterator[pa.Table]:  # pragma: no cover - interface
        raise NotImplementedError


class IngestHead(SegmentHead):
    """The plan's ingest units, each read by its input's reader; the ingest step's runner accounts each batch
    (reading, decoding and extracting are its time)."""

    by_unit = True

    def __init__(self, plan: Plan):
        self.plan = plan

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


class PartsHead(SegmentHead):
    """The previous segment's committed parts, each through the global step's ``apply`` (its runner)."""

    def __init__(self, input_parts: list[str]):
        self.input_parts = list(input_parts)

    def items(self) -> list[str]:
        return list(self.input_parts)

    def tables(self, runner: StepRunner, items: Iterable[str]) -> Iterator[pa.Table]:
        for path in items:
            yield runner(read_part(path))


def segment_head(plan: Plan, segment: Segment, input_parts: list[str]) -> SegmentHead:
    return IngestHead(plan) if segment.reads_inputs else PartsHead(input_parts)
