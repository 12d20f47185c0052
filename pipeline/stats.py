"""The run's statistics as typed, mergeable objects, stored as Parquet (DuckDB-queryable) and ``stats.json``.

Per-row: workers report one piece per (step, part, piece): a piece is the rows of one part that one batch
carried. Reports are keyed, not added, so a batch that Ray retries overwrites its own report instead of being
counted twice; the driver merges pieces into ``StageStats`` per step and source.

Global: a global step's ``build`` records ``StepStats`` (``gristmill.core.stats``) in its context; the driver keeps
them as ``GlobalStepStats`` with the step they belong to. Per segment both go to ``stats/segments/NAME.json``
(``SegmentStats``); over the run to ``stats/stages.parquet``, ``drops.parquet``, ``counters.parquet``,
``global.parquet`` and ``stats.json`` (``RunSummary`` and the same rows), which the report, ``inspect`` and ``sql``
read. No stage writes statistics files of its own.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.core.stats import StepStats
from gristmill.pipeline.rundir import (atomic_write_bytes, atomic_write_json, json_bytes, parquet_bytes,
                                      write_parquet_atomic)


@dataclasses.dataclass
class Summary:
    """count / sum / min / max of a quantity; merges associatively."""

    count: int = 0
    total: float = 0
    min: float | None = None
    max: float | None = None

    def merge(self, other: "Summary") -> "Summary":
        mins = [v for v in (self.min, other.min) if v is not None]
        maxs = [v for v in (self.max, other.max) if v is not None]
        return Summary(self.count + other.count, self.total + other.total,
                       min(mins) if mins else None, max(maxs) if maxs else None)

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclasses.dataclass
class StageStats:
    position: int
    label: str
    stage: str
    source: str
    rows_in: int = 0
    rows_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    doc_bytes_out: Summary = dataclasses.field(default_factory=Summary)
    drops: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # reason -> [rows, bytes]
    # Rows a reader noted without dropping them (bytes replaced while decoding, a cut payload ...): name -> rows.
    counters: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def rows_dropped(self) -> int:
        return sum(r for r, _ in self.drops.values())

    def merge(self, other: "StageStats") -> "StageStats":
        drops = {k: list(v) for k, v in self.drops.items()}
        for reason, (rows, nbytes) in other.drops.items():
            cur = drops.setdefault(reason, [0, 0])
            cur[0] += rows
            cur[1] += nbytes
        counters = dict(self.counters)
        for name, rows in other.counters.items():
            counters[name] = counters.get(name, 0) + rows
        return StageStats(
            self.position, self.label, self.stage, self.source,
            self.rows_in + other.rows_in, self.rows_out + other.rows_out,
            self.bytes_in + other.bytes_in, self.bytes_out + other.bytes_out,
            self.seconds + other.seconds, self.doc_bytes_out.merge(other.doc_bytes_out), drops, counters,
        )

    def accounting_holds(self) -> bool:
        return self.rows_in == self.rows_out + self.rows_dropped

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["rows_dropped"] = self.rows_dropped
        out["doc_bytes_out"]["mean"] = self.doc_bytes_out.mean
        return out


def piece_to_stage_stats(piece: dict[str, Any]) -> StageStats:
    return StageStats(
        piece["position"], piece["label"], piece["stage"], piece["source"],
        piece["rows_in"], piece["rows_out"], piece["bytes_in"], piece["bytes_out"], piece["seconds"],
        Summary(piece["rows_out"], piece["bytes_out"], piece["out_bytes_min"], piece["out_bytes_max"]),
        {k: list(v) for k, v in piece["drops"].items()}, dict(piece.get("counters", {})),
    )


def aggregate(pieces: Iterable[dict[str, Any]]) -> list[StageStats]:
    """Merge piece reports into one StageStats per (step position, source), sorted."""
    merged: dict[tuple[int, str], StageStats] = {}
    for piece in pieces:
        key = (piece["position"], piece["source"])
        stats = piece_to_stage_stats(piece)
        merged[key] = merged[key].merge(stats) if key in merged else stats
    return [merged[k] for k in sorted(merged)]


STAGES_SCHEMA = pa.schema([
    ("position", pa.int32()), ("step", pa.string()), ("stage", pa.string()), ("segment", pa.string()),
    ("source", pa.string()), ("rows_in", pa.int64()), ("rows_out", pa.int64()), ("rows_dropped", pa.int64()),
    ("bytes_in", pa.int64()), ("bytes_out", pa.int64()), ("seconds", pa.float64()),
    ("doc_bytes_min", pa.int64()), ("doc_bytes_max", pa.int64()), ("doc_bytes_mean", pa.float64()),
])
DROPS_SCHEMA = pa.schema([
    ("position", pa.int32()), ("step", pa.string()), ("stage", pa.string()), ("source", pa.string()),
    ("reason", pa.string()), ("rows", pa.int64()), ("bytes", pa.int64()),
])
COUNTERS_SCHEMA = pa.schema([
    ("position", pa.int32()), ("step", pa.string()), ("stage", pa.string()), ("source", pa.string()),
    ("counter", pa.string()), ("rows", pa.int64()),
])


# ``source``: null for the step's own figures, the source's name for those it recorded per source.
GLOBAL_SCHEMA = pa.schema([
    ("position", pa.int32()), ("step", pa.string()), ("stage", pa.string()), ("segment", pa.string()),
    ("kind", pa.string()), ("name", pa.string()), ("bucket", pa.int64()), ("value", pa.float64()),
    ("source", pa.string()),
])


@dataclasses.dataclass
class GlobalStepStats:
    """What a global step's ``build`` recorded, with the step it belongs to."""

    position: int
    label: str
    stage: str
    stats: StepStats

    def rows(self, segment: str) -> Iterator[dict[str, Any]]:
        """Its ``global.parquet`` rows: one per count and figure, one per histogram bucket; the step's own,
        then each source's."""
        base = {"position": self.position, "step": self.label, "stage": self.stage, "segment": segment}
        yield from _stats_rows(self.stats, {**base, "source": None})
        for source, stats in sorted(self.stats.sources.items()):
            yield from _stats_rows(stats, {**base, "source": source})

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "label": self.label, "stage": self.stage, **self.stats.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "GlobalStepStats":
        return cls(data["position"], data["label"], data["stage"], StepStats.from_json(data))


def _stats_rows(stats: StepStats, base: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name, n in sorted(stats.counts.items()):
        yield {**base, "kind": "count", "name": name, "bucket": None, "value": float(n)}
    for name, value in sorted(stats.figures.items()):
        yield {**base, "kind": "figure", "name": name, "bucket": None, "value": value}
    for name, hist in sorted(stats.histograms.items()):
        for bucket, n in sorted(hist.items()):
            yield {**base, "kind": "histogram", "name": name, "bucket": bucket, "value": float(n)}


def write_global_stats(stats_dir: Path, steps: list[tuple[str, GlobalStepStats]]) -> None:
    """stats/global.parquet alone, for (segment, step statistics) pairs: a global step run outside a run
    (``gristmill pack``) stores its statistics where a run's are."""
    rows = [row for segment, step in steps for row in step.rows(segment)]
    write_parquet_atomic(stats_dir / "global.parquet", pa.Table.from_pylist(rows, schema=GLOBAL_SCHEMA))


@dataclasses.dataclass
class SegmentStats:
    """One segment's statistics: per step and source (``stages``), and its global step's (None for ingest)."""

    segment: str
    stages: list[StageStats]
    global_step: GlobalStepStats | None = None


@dataclasses.dataclass
class RunSummary:
    """What ``stats.json`` says about the run besides its statistics rows."""

    plan_hash: str
    executor: str
    wall_seconds: float
    segments_skipped: list[str]
    segments_computed: list[str]
    workers: int | None
    build_seconds: dict[str, float]
    warnings: list[str]
    # Where the wall time went, in order, summing to ``wall_seconds`` (pipeline/timeline.py's rows).
    timeline: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunSummary":
        summary = cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls)})
        summary.timeline = summary.timeline or []
        return summary


def write_segment_stats(path: Path, segment: SegmentStats) -> None:
    atomic_write_json(path, {"segment": segment.segment, "stages": [s.to_json() for s in segment.stages],
                             "global": segment.global_step.to_json() if segment.global_step else None})


def load_segment_stats(path: Path) -> SegmentStats:
    data = json.loads(path.read_text())
    out = []
    for s in data["stages"]:
        s = dict(s)
        s.pop("rows_dropped")
        summary = s.pop("doc_bytes_out")
        summary.pop("mean")
        out.append(StageStats(**s, doc_bytes_out=Summary(**summary)))
    global_step = data.get("global")
    return SegmentStats(data["segment"], out, GlobalStepStats.from_json(global_step) if global_step else None)


def write_run_stats(stats_dir: Path, per_segment: list[SegmentStats], summary: RunSummary) -> dict[str, bytes]:
    """stats/stages.parquet, stats/drops.parquet, stats/counters.parquet, stats/global.parquet and stats/stats.json
    over all segments of the run; returns {file name: the bytes written}, for the run's report to read them
    without fetching them back."""
    stage_rows, drop_rows, counter_rows, global_rows = [], [], [], []
    for seg in per_segment:
        segment = seg.segment
        if seg.global_step is not None:
            global_rows += seg.global_step.rows(segment)
        for s in seg.stages:
            stage_rows.append({
                "position": s.position, "step": s.label, "stage": s.stage, "segment": segment, "source": s.source,
                "rows_in": s.rows_in, "rows_out": s.rows_out, "rows_dropped": s.rows_dropped,
                "bytes_in": s.bytes_in, "bytes_out": s.bytes_out, "seconds": s.seconds,
                "doc_bytes_min": s.doc_bytes_out.min, "doc_bytes_max": s.doc_bytes_out.max,
                "doc_bytes_mean": s.doc_bytes_out.mean,
            })
            for reason, (rows, nbytes) in sorted(s.drops.items()):
                drop_rows.append({"position": s.position, "step": s.label, "stage": s.stage, "source": s.source,
                                  "reason": reason, "rows": rows, "bytes": nbytes})
            for name, rows in sorted(s.counters.items()):
                counter_rows.append({"position": s.position, "step": s.label, "stage": s.stage, "source": s.source,
                                     "counter": name, "rows": rows})
    written = {
        "stages.parquet": parquet_bytes(pa.Table.from_pylist(stage_rows, schema=STAGES_SCHEMA)),
        "drops.parquet": parquet_bytes(pa.Table.from_pylist(drop_rows, schema=DROPS_SCHEMA)),
        "counters.parquet": parquet_bytes(pa.Table.from_pylist(counter_rows, schema=COUNTERS_SCHEMA)),
        "global.parquet": parquet_bytes(pa.Table.from_pylist(global_rows, schema=GLOBAL_SCHEMA)),
        "stats.json": json_bytes({**dataclasses.asdict(summary), "stages": stage_rows, "drops": drop_rows,
                                  "counters": counter_rows, "global": global_rows}),
    }
    for name, data in written.items():
        atomic_write_bytes(stats_dir / name, data)
    return written


def read_run_summary(stats_dir: Path) -> RunSummary | None:
    """The run's summary from ``stats.json``, or None when it is missing or unreadable (a run still going)."""
    try:
        return run_summary_of(json.loads((stats_dir / "stats.json").read_text()))
    except (OSError, ValueError):
        return None


def run_summary_of(data: Any) -> RunSummary | None:
    """The run's summary from the contents of ``stats.json`` (None: not one)."""
    try:
        return RunSummary.from_json(data)
    except (AttributeError, TypeError):
        return None


def update_run_stats(stats_dir: Path, fields: dict, current: bytes | None = None) -> bytes:
    """Set ``fields`` in stats/stats.json, keeping everything else (the run's final wall time and timeline are
    known only after the report is written); ``current``: its bytes, if known (else they are read). Returns the
    bytes written."""
    path = stats_dir / "stats.json"
    if current is None:
        try:
            current = path.read_bytes()  # read, not asked for first: one request fewer on an object store
        except FileNotFoundError:
            current = b"{}"
    data = json_bytes({**json.loads(current), **fields})
    atomic_write_bytes(path, data)
    return data


def read_stage_table(stats_dir: Path) -> pa.Table:
    return pq.read_table(stats_dir / "stages.parquet")
