"""Drawing the tokenizer's training sample from Parquet parts, in mixture proportions, deterministically.

Two passes over the parts, each a task per part: ``count_part`` sums text bytes and documents per source,
``plan_sample`` turns those totals, the target shares and the sample size into a keep-fraction per source, and
``sample_part`` keeps a document when a hash of (seed, doc_id) falls under its source's fraction. The hash
makes the sample independent of how parts are split across workers or in which order they finish.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from gristmill.core.storage import Location, resolve

SAMPLE_SCHEMA = pa.schema([("text", pa.large_string()), ("source", pa.string()), ("repeat", pa.int32())])

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class EmptyTrainingSample(ValueError):
    """The input of tokenizer training holds no text at all."""


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijective, well-mixed 64-bit hash."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def unit_hash(doc_ids: np.ndarray, seed: int) -> np.ndarray:
    """A uniform float in [0, 1) per document, fixed by (seed, doc_id)."""
    key = _mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) + _GOLDEN)[0]
    with np.errstate(over="ignore"):
        z = _mix64((doc_ids.astype(np.uint64) ^ key) + _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _read(path: str | Location, columns: list[str]) -> pa.Table:
    try:
        table = resolve(path).read_parquet(columns=columns)
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        raise ValueError(f"{path}: cannot read columns {columns} for tokenizer training: {exc}") from exc
    # Nulls would only mean "no text"; count them as empty documents rather than fail the run.
    return table.set_column(table.schema.get_field_index("text"), "text", pc.fill_null(table["text"], ""))


def count_table(table: pa.Table) -> dict[str, dict[str, int]]:
    """Text bytes and documents per source of a table with ``source`` and ``text`` columns."""
    sizes = pa.table({"source": table["source"], "bytes": pc.binary_length(table["text"]).cast(pa.int64())})
    grouped = sizes.group_by("source").aggregate([("bytes", "sum"), ("bytes", "count")])
    return {r["source"]: {"bytes": r["bytes_sum"] or 0, "documents": r["bytes_count"]} for r in grouped.to_pylist()}


def count_part(path: str | Location) -> dict[str, dict[str, int]]:
    return count_table(_read(path, ["source", "text"]))


def merge_counts(counts: list[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for part in counts:
        for source, c in part.items():
            entry = total.setdefault(source, {"bytes": 0, "documents": 0})
            entry["bytes"] += c["bytes"]
            entry["documents"] += c["documents"]
    return dict(sorted(total.items()))


def default_weights(
    present_sources: list[str], default_mixture: str | None
) -> tuple[dict[str, float] | None, str]:
    """The shares used when a run gives none: ``default_mixture``'s ratios when every source present is one
    of its sources (a LLaMA-style run gets the LLaMA shares), else None (the bytes present); and why."""
    if default_mixture is None:
        return None, "bytes present (no default mixture)"
    from gristmill.mixtures.solver import load_mixture

    ratios = dict(load_mixture(default_mixture).ratios)
    outside = sorted(set(present_sources) - set(ratios))
    if outside:
        return None, f"bytes present (sources {outside} are not in mixture {default_mixture!r})"
    return ratios, f"mixture {default_mixture!r} (default: every source present is one of its sources)"


def _scale_within_share_ratio(target_share: Mapping[str, float], capacity: Mapping[str, float],
                              sample_bytes: float, max_share_ratio: float | None) -> float:
    """The largest scale T <= ``sample_bytes`` at which no source exceeds ``max_share_ratio`` x its share.

    Source s takes min(share_s * T, capacity_s). Once short sources are used up, the others fill the sample
    and their realized share is share_s * T / R(T), R(T) the total taken; T / R(T) only grows with T, so
    walking the points where sources run out, in order, finds where it reaches the ratio.
    """
    if max_share_ratio is None:
        return float(sample_bytes)
    runs_out = sorted((capacity[s] / share, s) for s, share in target_share.items() if share > 0)
    unsaturated = sum(share for share in target_share.values() if share > 0)
    saturated_bytes = 0.0
    for point, source in [*runs_out, (float("inf"), None)]:
        # On this stretch R(T) = unsaturated * T + saturated_bytes; T / R(T) <= ratio solved for T.
        room = 1.0 - max_share_ratio * unsaturated
        limit = float("inf") if room <= 0 else max_share_ratio * saturated_bytes / room
        if limit < point or point >= sample_bytes:
            break
        unsaturated -= target_share[source]
        saturated_bytes += capacity[source]
    return min(float(sample_bytes), limit)


def plan_sample(
    available: Mapping[str, Mapping[str, int]],
    source_weights: Mapping[str, float] | None,
    sample_bytes: int,
    max_epochs: float,
    max_share_ratio: float | None = None,
    weighting: str | None = None,
) -> dict[str, Any]:
    """Keep-fraction per source so the sample holds ``sample_bytes`` split by the target shares.

    A fraction above 1 repeats a source (whole copies plus a hashed part), up to ``max_epochs``; a source
    capped there ends up below its share and the others above theirs. ``max_share_ratio`` bounds that: the
    sample is made smaller rather than let any source exceed that multiple of its target share (so plentiful
    code cannot crowd out scarce web text). Target shares are renormalized over the sources present.
    """
    present = {s: c for s, c in available.items() if c["bytes"] > 0}
    if not present:
        raise EmptyTrainingSample("no text to train the tokenizer on: every input part is empty")
    if source_weights is None:
        weights = {s: float(c["bytes"]) for s, c in present.items()}
    else:
        weights = {s: float(source_weights.get(s, 0.0)) for s in present}
        if not any(w > 0 for w in weights.values()):
            raise ValueError(
                f"source_weights {dict(source_weights)} give no weight to any source present "
                f"in the input ({sorted(present)})"
            )
    total_weight = sum(weights.values())
    target_share = {s: w / total_weight for s, w in sorted(weights.items())}
    capacity = {s: max_epochs * present[s]["bytes"] for s in target_share}
    scale = _scale_within_share_ratio(target_share, capacity, sample_bytes, max_share_ratio)
    # Never ask for more than the corpus holds at the target mixture with max_epochs repeats.
    fractions = {s: min(max_epochs, scale * share / present[s]["bytes"]) for s, share in target_share.items()}
    missing = sorted(set(source_weights or {}) - set(present))
    return {
        "available": dict(sorted(available.items())),
        "weighting": weighting or ("bytes present" if source_weights is None else "source weights"),
        "target_share": {s: round(v, 6) for s, v in target_share.items()},
        "max_share_ratio": max_share_ratio,
        "planned_bytes": int(sum(fractions[s] * present[s]["bytes"] for s in fractions)),
        "fractions": fractions,
        "weighted_sources_absent": missing,
    }


def sample_table(table: pa.Table, fractions: Mapping[str, float], seed: int) -> pa.Table:
    """The rows of ``table`` (doc_id, source, text) in the sample, with their repeat counts."""
    if table.num_rows == 0:
        return SAMPLE_SCHEMA.empty_table()
    sources = sorted(fractions)
    index = pc.index_in(table["source"], value_set=pa.array(sources, pa.string()))
    per_source = np.array([fractions[s] for s in sources] + [0.0])
    fraction = per_source[index.fill_null(len(sources)).to_numpy(zero_copy_only=False)]
    whole = np.floor(fraction)
    u = unit_hash(table["doc_id"].to_numpy(zero_copy_only=False), seed)
    repeat = (whole + (u < fraction - whole)).astype(np.int32)
    keep = np.flatnonzero(repeat > 0)
    return pa.table(
        {
            "text": table["text"].take(keep).cast(pa.large_string()),
            "source": table["source"].take(keep).cast(pa.string()),
            "repeat": pa.array(repeat[keep], pa.int32()),
        },
        schema=SAMPLE_SCHEMA,
    )


def sample_part(item: tuple[str | Location, Mapping[str, float], int]) -> pa.Table:
    """``sample_table`` of one part file; one tuple argument so it maps over a list of items."""
    path, fractions, seed = item
    return sample_table(_read(path, ["doc_id", "source", "text"]), fractions, seed)
