"""Mixture presets and the ratio solver: from tokens available per source to rows packed per source.

Shares are of tokens, counted the way the packer lays them out: each document's tokens plus the one
``<|endoftext|>`` separator that follows it. The solver decides, per source, how many ``seq_len`` rows it
contributes; those counts depend only on the token counts and the parameters, never on the seed, so a
different seed changes which documents are drawn and in what order but not how many tokens each source gets.

A source's sampling rate is ``target / available``: below 1 it is down-sampled, above 1 repeated in whole
epochs plus a fraction, never beyond its ``max_epochs``. A mixture that cannot be met (a source missing, a
cap too low for the budget) raises ``InfeasibleMixture`` saying what is short by how many tokens and what
would fix it, before anything is written.
"""

from __future__ import annotations

import dataclasses
import math
import os
from importlib import resources
from typing import Mapping

import yaml

PRESET_SUFFIX = ".yaml"


class InfeasibleMixture(ValueError):
    """The requested mixture cannot be built from the tokens available."""


class MixtureSpecError(ValueError):
    """A preset or ratio table is malformed (unknown preset, negative share, ...)."""


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
    """Target shares of tokens per source (normalized to sum to 1) and suggested repetition caps."""

    name: str | None
    ratios: dict[str, float]
    max_epochs: dict[str, float]


def preset_names() -> list[str]:
    return sorted(
        p.name[: -len(PRESET_SUFFIX)]
        for p in resources.files(__package__).iterdir()
        if p.name.endswith(PRESET_SUFFIX)
    )


def load_mixture(name_or_path: str) -> MixtureSpec:
    """A preset shipped in ``mixtures/`` by name (``llama``), or a YAML file of the same shape by path."""
    if name_or_path.endswith(PRESET_SUFFIX) or os.sep in name_or_path:
        where = name_or_path
        with open(name_or_path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    else:
        resource = resources.files(__package__) / f"{name_or_path}{PRESET_SUFFIX}"
        if not resource.is_file():
            raise MixtureSpecError(
                f"unknown mixture preset {name_or_path!r}; presets: {', '.join(preset_names())} "
                "(or give a path to a YAML file, or `ratios: {source: share}`)"
            )
        where = f"mixtures/{name_or_path}{PRESET_SUFFIX}"
        raw = yaml.safe_load(resource.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("ratios"), dict):
        raise MixtureSpecError(f"{where}: expected a mapping with a `ratios: {{source: share}}` table")
    return MixtureSpec(
        name=raw.get("name", name_or_path),
        ratios=normalize_ratios(raw["ratios"], where=where),
        max_epochs={str(k): float(v) for k, v in (raw.get("max_epochs") or {}).items()},
    )


def normalize_ratios(ratios: Mapping[str, float], where: str = "ratios") -> dict[str, float]:
    """Shares as given (fractions or percentages alike), scaled to sum to 1; zero shares are dropped."""
    bad = {k: v for k, v in ratios.items() if not isinstance(v, (int, float)) or v < 0 or math.isnan(v)}
    if bad:
        raise MixtureSpecError(f"{where}: shares must be non-negative numbers; got {bad}")
    total = float(sum(ratios.values()))
    if total <= 0:
        raise MixtureSpecError(f"{where}: at least one source needs a positive share; got {dict(ratios)}")
    return {str(k): float(v) / total for k, v in sorted(ratios.items()) if v > 0}


@dataclasses.dataclass(frozen=True)
class SourcePlan:
    source: str
    share: float  # target share of tokens
    available_tokens: int  # tokens + one separator per document
    available_docs: int
    max_epochs: float
    target_tokens: int
    rows: int
    tokens: int  # rows * seq_len, including padding
    stream_tokens: int  # tokens drawn from documents (tokens minus padding)

    @property
    def padding_tokens(self) -> int:
        return self.tokens - self.stream_tokens

    @property
    def rate(self) -> float:
        """Sampling rate: < 1 down-sampled, > 1 repeated (epochs)."""
        return self.stream_tokens / self.available_tokens if self.available_tokens else 0.0


@dataclasses.dataclass(frozen=True)
class MixturePlan:
    seq_len: int
    requested_total: int | None
    solved_total: int
    sources: dict[str, SourcePlan]
    unused_sources: dict[str, int]  # in the input, not in the mixture: tokens left out

    @property
    def total_rows(self) -> int:
        return sum(p.rows for p in self.sources.values())

    @property
    def total_tokens(self) -> int:
        return self.total_rows * self.seq_len

    def realized_shares(self) -> dict[str, float]:
        total = self.total_tokens
        return {s: (p.tokens / total if total else 0.0) for s, p in self.sources.items()}

    def max_share_error(self) -> float:
        """Largest |realized - target| share over the sources: the exact bound the packed shards meet."""
        realized = self.realized_shares()
        return max((abs(realized[s] - p.share) for s, p in self.sources.items()), default=0.0)


class MixtureSolver:
    """Turns target shares, repetition caps and a token budget into per-source row counts."""

    def __init__(
        self,
        ratios: Mapping[str, float],
        max_epochs: Mapping[str, float] | None = None,
        default_max_epochs: float = 1.0,
        name: str | None = None,
    ):
        self.ratios = normalize_ratios(ratios)
        self.max_epochs = {s: float((max_epochs or {}).get(s, default_max_epochs)) for s in self.ratios}
        bad = {s: e for s, e in self.max_epochs.items() if not e > 0}
        if bad:
            raise MixtureSpecError(f"max_epochs must be > 0; got {bad}")
        self.name = name

    def solve(
        self,
        available_tokens: Mapping[str, int],
        available_docs: Mapping[str, int],
        seq_len: int,
        total_tokens: int | None = None,
        pad_last: bool = False,
    ) -> MixturePlan:
        """``available_tokens[s]`` counts each document's tokens plus its separator. ``total_tokens`` None
        means the largest budget no source's ``max_epochs`` forbids."""
        if seq_len <= 0:
            raise MixtureSpecError(f"seq_len must be positive; got {seq_len}")
        self._check_present(available_tokens)
        capacity = {s: math.floor(available_tokens[s] * self.max_epochs[s]) for s in self.ratios}
        if total_tokens is None:
            solved_total = min(math.floor(capacity[s] / r) for s, r in self.ratios.items())
        else:
            if total_tokens <= 0:
                raise MixtureSpecError(f"total_tokens must be positive or null; got {total_tokens}")
            solved_total = int(total_tokens)
            self._check_caps(available_tokens, capacity, solved_total)

        targets = {s: min(math.floor(share * solved_total), capacity[s]) for s, share in self.ratios.items()}
        rows_of = self._allocate_rows(targets, capacity, solved_total, seq_len, pad_last)
        plans = {}
        for s, share in self.ratios.items():
            target = targets[s]
            rows = rows_of[s]
            tokens = rows * seq_len
            plans[s] = SourcePlan(
                source=s,
                share=share,
                available_tokens=int(available_tokens[s]),
                available_docs=int(available_docs.get(s, 0)),
                max_epochs=self.max_epochs[s],
                target_tokens=target,
                rows=rows,
                tokens=tokens,
                stream_tokens=min(tokens, capacity[s]),
            )
        self._check_rows(plans, seq_len, solved_total)
        unused = {s: int(n) for s, n in sorted(available_tokens.items()) if s not in self.ratios and n > 0}
        return MixturePlan(seq_len, total_tokens, solved_total, plans, unused)

    @staticmethod
    def _allocate_rows(
        targets: Mapping[str, int], capacity: Mapping[str, int], total: int, seq_len: int, pad_last: bool
    ) -> dict[str, int]:
        """Whole rows per source. With ``pad_last`` each source rounds up (its last row may be padded);
        otherwise each gets floor(target / seq_len) and the rows the budget still holds go, one each, to the
        sources with the largest remainders that have the tokens for one more row (largest-remainder
        rounding keeps every share within one row of its target)."""
        if pad_last:
            return {s: math.ceil(t / seq_len) for s, t in targets.items()}
        rows = {s: t // seq_len for s, t in targets.items()}
        spare = total // seq_len - sum(rows.values())
        by_remainder = sorted(targets, key=lambda s: (-(targets[s] % seq_len), s))
        for s in by_remainder:
            if spare <= 0:
                break
            if (rows[s] + 1) * seq_len <= capacity[s]:
                rows[s] += 1
                spare -= 1
        return rows

    # --- feasibility: each check says what is short, by how much, and what would fix it ------------------

    def _label(self) -> str:
        return f"mixture {self.name!r}" if self.name else "mixture"

    def _check_present(self, available: Mapping[str, int]) -> None:
        missing = [s for s in self.ratios if available.get(s, 0) <= 0]
        if not missing:
            return
        present = sorted(s for s, n in available.items() if n > 0)
        lines = [
            f"{self._label()} is infeasible: {len(missing)} source(s) with a positive share have no tokens "
            f"in the input (sources present: {', '.join(present) or 'none'}):"
        ]
        for s in missing:
            lines.append(f"  - {s}: share {self.ratios[s]:.2%}, 0 tokens available")
        kept = {s: round(r, 6) for s, r in self.ratios.items() if s not in missing}
        lines.append(
            f"Fix: add documents with source {', '.join(missing)} to the input, or give ratios without them "
            f"(e.g. ratios: {kept})."
        )
        raise InfeasibleMixture("\n".join(lines))

    def _check_caps(self, available: Mapping[str, int], capacity: Mapping[str, int], total: int) -> None:
        short = {s: math.floor(r * total) - capacity[s] for s, r in self.ratios.items()}
        short = {s: n for s, n in short.items() if n > 0}
        if not short:
            return
        max_total = min(math.floor(capacity[s] / r) for s, r in self.ratios.items())
        lines = [f"{self._label()} is infeasible for total_tokens={total:,}:"]
        for s, n in short.items():
            target = math.floor(self.ratios[s] * total)
            need_epochs = target / available[s]
            lines.append(
                f"  - {s} is short by {n:,} tokens: its target is {self.ratios[s]:.2%} of {total:,} = "
                f"{target:,} tokens, but it has {available[s]:,} tokens x max_epochs {self.max_epochs[s]:g} "
                f"= {capacity[s]:,}. Fix: raise max_epochs.{s} to >= {math.ceil(need_epochs * 100) / 100:g}, "
                f"or add >= {math.ceil(n / self.max_epochs[s]):,} tokens of {s} documents."
            )
        lines.append(
            f"Or lower total_tokens to <= {max_total:,} (or set it to null: the largest budget the caps allow)."
        )
        raise InfeasibleMixture("\n".join(lines))

    def _check_rows(self, plans: Mapping[str, SourcePlan], seq_len: int, total: int) -> None:
        empty = [s for s, p in plans.items() if p.rows == 0]
        if not empty:
            return
        need = max(math.ceil(seq_len / self.ratios[s]) for s in empty)
        raise InfeasibleMixture(
            f"{self._label()} is infeasible: with {total:,} tokens in all, source(s) {', '.join(empty)} get less "
            f"than one row of seq_len={seq_len} (short by up to {seq_len:,} tokens each), so their share would "
            f"be 0. Fix: raise total_tokens to >= {need:,}, add data or raise max_epochs for them, or lower "
            "seq_len."
        )
