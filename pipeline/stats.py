"""Per-stage counters as mergeable objects, stored as Parquet (DuckDB-queryable) and ``stats.json``.

Workers report one ``PieceStats`` per (step, part, piece): a piece is the rows of one part that one batch
carried. Reports are keyed, not added, so a batch that Ray retries overwrites its own report instead of being
counted twice; the driver merges pieces into ``StageStats`` per step and source.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.pipeline.rundir import atomic_write_json, write_parquet_atomic


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


def write_segment_stats(path: Path, segment: str, stats: list[StageStats]) -> None:
    atomic_write_json(path, {"segment": segment, "stages": [s.to_json() for s in stats]})


def load_segment_stats(path: Path) -> tuple[str, list[StageStats]]:
    data = json.loads(path.read_text())
    out = []
    for s in data["stages"]:
        s = dict(s)
        s.pop("rows_dropped")
        summary = s.pop("doc_bytes_out")
        summary.pop("mean")
        out.append(StageStats(**s, doc_bytes_out=Summary(**summary)))
    return data["segment"], out


def write_run_stats(stats_dir: Path, per_segment: list[tuple[str, list[StageStats]]], extra: dict) -> None:
    """stats/stages.parquet, stats/drops.parquet, stats/counters.parquet and stats/stats.json over all segments
    of the run."""
    stage_rows, drop_rows, counter_rows = [], [], []
    for segment, stats in per_segment:
        for s in stats:
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
    write_parquet_atomic(stats_dir / "stages.parquet", pa.Table.from_pylist(stage_rows, schema=STAGES_SCHEMA))
    write_parquet_atomic(stats_dir / "drops.parquet", pa.Table.from_pylist(drop_rows, schema=DROPS_SCHEMA))
    write_parquet_atomic(stats_dir / "counters.parquet",
                         pa.Table.from_pylist(counter_rows, schema=COUNTERS_SCHEMA))
    atomic_write_json(stats_dir / "stats.json", {
        **extra,
        "stages": stage_rows,
        "drops": drop_rows,
        "counters": counter_rows,
    })


def update_run_stats(stats_dir: Path, fields: dict) -> None:
    """Set ``fields`` in stats/stats.json, keeping everything else (the run's final wall time and timeline are
    known only after the report is written)."""
    path = stats_dir / "stats.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    atomic_write_json(path, {**data, **fields})


def read_stage_table(stats_dir: Path) -> pa.Table:
    return pq.read_table(stats_dir / "stages.parquet")
