"""Typed statistics of a global step's ``build``: what it counted and measured over the whole dataset.

A global stage records into ``ctx.stats`` (a ``StepStats``) while it builds; the orchestrator stores them with the
run's other statistics (``RUN_DIR/stats/global.parquet``, one schema for every global step), where the report,
``inspect`` and ``sql`` read them. Stats merge, so a stage may gather them per part or per partition and add them up:

- ``counts``: integers that add up (documents in, pairs verified);
- ``figures``: measured or derived numbers that do not add up (an estimated rate, a derived setting); a merge
  keeps the larger;
- ``histograms``: a count per integer key (clusters per cluster size); merges add per key.

A figure that belongs to one mixture source (its tokens in and out, its share of a sample) goes to that source's
own ``StepStats``, ``stats.source(name)``: the same three kinds, stored with the source's name.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping


@dataclasses.dataclass
class StepStats:
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    figures: dict[str, float] = dataclasses.field(default_factory=dict)
    histograms: dict[str, dict[int, int]] = dataclasses.field(default_factory=dict)
    sources: dict[str, "StepStats"] = dataclasses.field(default_factory=dict)

    def source(self, name: str) -> "StepStats":
        """The statistics of the source ``name`` (created empty on first use)."""
        return self.sources.setdefault(name, StepStats())

    def count(self, name: str, n: int) -> None:
        """Add ``n`` to the count ``name``."""
        self.counts[name] = self.counts.get(name, 0) + int(n)

    def figure(self, name: str, value: float) -> None:
        self.figures[name] = float(value)

    def histogram(self, name: str, counts: Mapping[int, int]) -> None:
        """Add ``counts`` (key -> count) to the histogram ``name``; zero counts are left out."""
        hist = self.histograms.setdefault(name, {})
        for key, n in counts.items():
            if n:
                hist[int(key)] = hist.get(int(key), 0) + int(n)

    def merge(self, other: "StepStats") -> "StepStats":
        out = StepStats(dict(self.counts), dict(self.figures), {k: dict(v) for k, v in self.histograms.items()})
        for name, n in other.counts.items():
            out.count(name, n)
        for name, value in other.figures.items():
            out.figures[name] = max(out.figures.get(name, value), value)
        for name, hist in other.histograms.items():
            out.histogram(name, hist)
        for name in sorted(set(self.sources) | set(other.sources)):
            out.sources[name] = self.sources.get(name, StepStats()).merge(other.sources.get(name, StepStats()))
        return out

    def to_json(self) -> dict[str, Any]:
        out = {"counts": dict(self.counts), "figures": dict(self.figures),
               "histograms": {name: {str(k): v for k, v in sorted(h.items())} for name, h in self.histograms.items()}}
        if self.sources:
            out["sources"] = {name: stats.to_json() for name, stats in sorted(self.sources.items())}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "StepStats":
        return cls({k: int(v) for k, v in data.get("counts", {}).items()},
                   {k: float(v) for k, v in data.get("figures", {}).items()},
                   {name: {int(k): int(v) for k, v in h.items()} for name, h in data.get("histograms", {}).items()},
                   {name: cls.from_json(s) for name, s in data.get("sources", {}).items()})
