"""gristmill/core/stats.py: a global step's statistics merge associatively and survive their JSON form."""

from __future__ import annotations

import json

from gristmill.core.stats import StepStats


def _part(docs: int, pairs: int, rate: float, sizes: dict[int, int]) -> StepStats:
    stats = StepStats()
    stats.count("docs_in", docs)
    stats.count("verified_pairs", pairs)
    stats.figure("estimated_fp_rate", rate)
    stats.histogram("cluster_size", sizes)
    return stats


def test_counts_and_histograms_add_figures_keep_the_larger_in_any_grouping():
    a, b, c = _part(10, 2, 0.01, {2: 1}), _part(5, 0, 0.03, {2: 2, 3: 1}), _part(7, 1, 0.02, {0: 0, 4: 1})
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    assert left == right
    assert left.counts == {"docs_in": 22, "verified_pairs": 3}
    assert left.figures == {"estimated_fp_rate": 0.03}
    assert left.histograms == {"cluster_size": {2: 3, 3: 1, 4: 1}}  # a zero count is no bucket
    assert a.counts == {"docs_in": 10, "verified_pairs": 2}  # merging leaves its operands alone


def test_json_round_trip_keeps_types():
    stats = _part(3, 1, 0.5, {2: 4})
    back = StepStats.from_json(json.loads(json.dumps(stats.to_json())))
    assert back == stats and isinstance(back.counts["docs_in"], int)
    assert list(back.histograms["cluster_size"]) == [2]


def test_per_source_statistics_merge_by_source_and_survive_their_json_form():
    a, b = StepStats(), StepStats()
    a.count("tokens", 100)
    a.source("c4").count("tokens_out", 60)
    a.source("github").figure("epochs", 1.5)
    b.source("c4").count("tokens_out", 40)
    b.source("c4").figure("realized_share", 0.5)
    merged = a.merge(b)
    assert merged.counts == {"tokens": 100}
    assert merged.source("c4") == StepStats({"tokens_out": 100}, {"realized_share": 0.5})
    assert merged.source("github").figures == {"epochs": 1.5}
    assert a.source("c4").counts == {"tokens_out": 60}  # operands untouched
    back = StepStats.from_json(json.loads(json.dumps(merged.to_json())))
    assert back == merged
    assert "sources" not in StepStats().to_json()  # a step without sources keeps its former JSON form
