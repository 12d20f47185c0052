"""The machinery both executors share, so local and Ray runs execute exactly the same code per batch: a segment's
head (the pipeline's inputs, pipeline/_internal/inputs.py, or the previous segment's parts), running a stage on a
batch with its accounting, and writing committed parts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gristmill.core import storage
from gristmill.core.layout import RunLayout, part_of_file_name
from gristmill.core.parts import SegmentPart, fetch_ahead
from gristmill.pipeline.plan import Step
from gristmill.pipeline.rundir import part_file_name, write_part
from gristmill.stages.base import PART_COLUMN, REJECT_REASON, GlobalStage, Stage, StageOutput

Reporter = Callable[[tuple, dict], None]


class StageContractError(RuntimeError):
    """A stage broke the contract (changed the row count, lost a column); a bug in the stage, not the data."""


# --- reading committed parts ----------------------------------------------------------------------------

def read_part(path: str | SegmentPart) -> pa.Table:
    """A committed part back as a batch (every column, each from the segment holding it), with its ``_part``
    column restored from the part key."""
    part = path if isinstance(path, SegmentPart) else storage.resolve(path)
    table = part.read_parquet()
    key = part.part if isinstance(part, SegmentPart) else part_of_file_name(part.name)
    return table.append_column(PART_COLUMN, pa.array(np.full(table.num_rows, key, dtype=np.uint64), pa.uint64()))


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


def write_rejects(rejects_root: Path, step: Step, rejected: pa.Table,
                  writes: storage.BackgroundWrites | None = None) -> list[dict]:
    """RUN_DIR/rejects/NN-stage/part-PART-FIRSTDOC.parquet: one file per piece, so a retry overwrites itself.
    Returns each file's path under rejects/, size and hash, which the segment's ``_SUCCESS`` lists (a report
    reads them from the bytes this process holds)."""
    parts = rejected[PART_COLUMN].to_numpy()
    written = []
    for part in np.unique(parts):
        piece = rejected.filter(pa.array(parts == part)).drop_columns([PART_COLUMN])
        first = int(piece["doc_id"][0].as_py()) if "doc_id" in piece.column_names else 0
        name = f"{step.slug}/part-{int(part):016x}-{first:016x}.parquet"
        written.append({"path": name, **write_part(rejects_root / name, piece, writes=writes)})
    return written


# --- running a stage on a batch ---------------------------------------------------------------------------

# Set-up stages of this process, so a stateful stage run as Ray tasks (which reuse worker processes) loads its
# model once per worker, not once per batch. Keyed by everything that decides the stage's state.
_SET_UP: dict[tuple, Stage] = {}


def set_up_stage(step: Step, run_dir: str, worker_cpus: int | None = None) -> Stage:
    """The step's stage, given the run's layout and this worker's CPU budget, with ``setup()`` done.
    ``worker_cpus``: what the executor reserved for the worker (a Ray task's CPUs); None in-process: no limit."""
    stage = step.instantiate()
    stage.layout = RunLayout(run_dir)
    stage.worker_cpus = worker_cpus
    stage.setup()
    return stage


def cached_stage(step: Step, run_dir: str, worker_cpus: int | None = None) -> Stage:
    """``set_up_stage``, once per process and stage (the first set-up's CPU budget stays)."""
    import json

    key = (step.stage_name, json.dumps(step.params, sort_keys=True, default=str), run_dir)
    stage = _SET_UP.get(key)
    if stage is None:
        stage = _SET_UP[key] = set_up_stage(step, run_dir, worker_cpus)
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
        # The CPUs the worker running this runner may use (set by the Ray executor in its tasks); None: no limit.
        self.worker_cpus: int | None = None
        # Where its rejects are uploaded in the background (set by the executor, joined before the commit).
        self.writes: storage.BackgroundWrites | None = None
        self.rejects_written: list[dict] = []  # the rejects files it wrote (write_rejects), for the marker

    @property
    def stage(self) -> Stage:
        if self._stage is None:
            if self.cache_setup:
                self._stage = cached_stage(self.step, self.run_dir, self.worker_cpus)
            else:
                self._stage = set_up_stage(self.step, self.run_dir, self.worker_cpus)
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
            self.rejects_written += write_rejects(storage.resolve(self.run_dir) / "rejects", self.step, rejected,
                                                  self.writes)
        for key, report in reports:
            self.reporter(key, report)
        return kept


def write_parts(segment_dir: Path, table: pa.Table, writes: storage.BackgroundWrites | None = None) -> list[dict]:
    """Write each part in the batch whole as ``part-PART.parquet``, rows sorted by doc_id, without ``_part``;
    returns each part's name, rows, size, hash and columns for the segment's ``_SUCCESS``. With ``writes`` the
    uploads run in the background: the caller joins them before the segment commits."""
    written = []
    for part, piece in _pieces(table):
        written.append(_write_piece(segment_dir, part, piece, piece.column_names, piece.column_names, writes))
    return written


def write_changed_columns(segment_dir: Path, table: pa.Table, table_in: pa.Table,
                          writes: storage.BackgroundWrites | None = None) -> list[dict]:
    """Write what the segment changed of one input part (``table_in``, read with every column): ``doc_id`` and
    the columns that are new or differ from the input's, for the kept rows. A part whose rows and columns are
    all as they were gets no file; its listing says so (``columns`` empty) and readers read the earlier one."""
    written = []
    for part, piece in _pieces(table):
        of_part = pc.equal(table_in[PART_COLUMN], pa.scalar(part, pa.uint64()))
        before = table_in if pc.all(of_part).as_py() else table_in.filter(of_part)  # a head's table is one part
        changed = changed_columns(piece, before.drop_columns([PART_COLUMN]))
        if not changed and piece.num_rows == before.num_rows:
            written.append({"part": part, "rows": piece.num_rows, "path": part_file_name(part), "columns": [],
                            "order": piece.column_names})
            continue
        own = ["doc_id"] + [c for c in piece.column_names if c in changed and c != "doc_id"]
        written.append(_write_piece(segment_dir, part, piece.select(own), own, piece.column_names, writes))
    return written


def changed_columns(after: pa.Table, before: pa.Table) -> set[str]:
    """Columns of ``after`` (rows a subset of ``before``'s, both in doc_id order) that ``before`` lacks or whose
    values or type differ on those rows."""
    ids_after, ids_before = after["doc_id"].combine_chunks(), before["doc_id"].combine_chunks()
    if not ids_after.equals(ids_before):
        positions = pc.index_in(ids_after, value_set=ids_before)
        if positions.null_count:  # rows the input did not have: nothing can be taken from it
            return set(after.column_names)
    else:
        positions = None
    return {c for c in after.column_names if c not in before.column_names or not after[c].equals(
        before[c] if positions is None else before[c].take(positions))}


def _pieces(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """(part, its rows sorted by doc_id, without ``_part``) for each part in the batch."""
    if table.num_rows == 0:
        return
    parts = table[PART_COLUMN].to_numpy()
    for part in np.unique(parts):
        piece = table.filter(pa.array(parts == part)).drop_columns([PART_COLUMN])
        yield int(part), piece.sort_by("doc_id")


def _write_piece(segment_dir: Path, part: int, piece: pa.Table, columns: list[str], order: list[str],
                 writes: storage.BackgroundWrites | None) -> dict:
    path = segment_dir / part_file_name(part)
    return {"part": part, "rows": piece.num_rows, "path": path.name, **write_part(path, piece, writes=writes),
            "columns": list(columns), "order": list(order)}


# --- the head of a segment --------------------------------------------------------------------------------

class SegmentHead:
    """What a segment starts from: its work items (an executor deals them out) and the tables its first step
    makes of them, accounted by that step's runner. Segment 00's head reads the pipeline's inputs (``InputsHead``,
    pipeline/_internal/inputs.py); every other segment's is its global step's ``apply`` over the previous segment's
    committed parts (``PartsHead``)."""

    # Progress counts ingest units (a part key's high bits) or parts.
    by_unit: bool = False

    def prepare(self, log) -> None:
        """Work the driver does once before the segment's items are dealt out (none by default)."""

    def items(self) -> list:  # pragma: no cover - interface
        raise NotImplementedError

    def tables(self, runner: StepRunner, items: Iterable) -> Iterator[pa.Table]:  # pragma: no cover - interface
        raise NotImplementedError

    def write_parts(self, segment_dir: Path, table: pa.Table,
                    writes: storage.BackgroundWrites | None = None) -> list[dict]:
        """Write the segment's output for the table ``tables`` last yielded (after the segment's steps)."""
        return write_parts(segment_dir, table, writes)


class PartsHead(SegmentHead):
    """The previous segment's committed parts, each through the global step's ``apply`` (its runner). What the
    segment writes of a part is what it changed of it (``write_changed_columns``)."""

    def __init__(self, input_parts: list[str | SegmentPart]):
        self.input_parts = list(input_parts)
        self._table_in: pa.Table | None = None

    def items(self) -> list[str | SegmentPart]:
        return list(self.input_parts)

    def tables(self, runner: StepRunner, items: Iterable[str | SegmentPart]) -> Iterator[pa.Table]:
        items = list(items)
        for i, path in enumerate(items):
            if i + 1 < len(items):
                fetch_ahead(items[i + 1])  # its round trips overlap this part's steps
            self._table_in = read_part(path)
            yield runner(self._table_in)
        self._table_in = None

    def write_parts(self, segment_dir: Path, table: pa.Table,
                    writes: storage.BackgroundWrites | None = None) -> list[dict]:
        if self._table_in is None:
            raise RuntimeError("PartsHead.write_parts: no part read (write each table before the next is read)")
        return write_changed_columns(segment_dir, table, self._table_in, writes)

