"""LSH banding: (bands, rows) from a Jaccard threshold, and one 64-bit key per band of each signature."""

from __future__ import annotations

import functools

import numpy as np

from gristmill.dedup.hash_constants import GOLDEN64
from gristmill.dedup.hashing import fmix64
from gristmill.stages.base import require

BAND_MULT = np.uint64(0xA0761D6478BD642F)


def _integrate(f, lo: float, hi: float) -> float:
    quad = require("scipy.integrate", "dedup").quad  # the integrator datasketch uses: same (b, r) choices
    return quad(f, lo, hi)[0]


def false_positive_probability(threshold: float, bands: int, rows: int) -> float:
    """Probability mass of pairs below the threshold that share a band (datasketch's definition)."""
    return _integrate(lambda s: 1 - (1 - s ** float(rows)) ** float(bands), 0.0, threshold)


def false_negative_probability(threshold: float, bands: int, rows: int) -> float:
    return _integrate(lambda s: 1 - (1 - (1 - s ** float(rows)) ** float(bands)), threshold, 1.0)


@functools.lru_cache(maxsize=256)
def optimal_param(
    threshold: float, num_perm: int, false_positive_weight: float = 0.5, false_negative_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false positive + false negative probability: the rule of
    ``datasketch.lsh._optimal_param``, which gives the same answer."""
    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = (
                false_positive_probability(threshold, b, r) * false_positive_weight
                + false_negative_probability(threshold, b, r) * false_negative_weight
            )
            if err < best:
                best, opt = err, (b, r)
    return opt


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n_docs, bands) uint64: a hash of each band's ``rows`` signature values, salted with the band index so
    equal values in different bands never meet. Uses the first bands*rows values, like datasketch."""
    if bands * rows > sig.shape[1]:
        raise ValueError(f"bands*rows = {bands}*{rows} exceeds the signature length {sig.shape[1]}")
    view = sig[:, : bands * rows].reshape(len(sig), bands, rows).astype(np.uint64)
    acc = np.broadcast_to(fmix64(np.arange(1, bands + 1, dtype=np.uint64) * np.uint64(GOLDEN64)), (len(sig), bands))
    acc = acc.copy()
    for j in range(rows):
        acc *= BAND_MULT
        acc += view[:, :, j]
        acc = fmix64(acc)
    return acc
