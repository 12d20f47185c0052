"""LSH banding: (bands, rows) from a Jaccard threshold, and one 64-bit key per band of each signature."""

from __future__ import annotations

import functools

import numpy as np

from gristmill.dedup.hash_constants import GOLDEN64
from gristmill.dedup.hashing import fmix64

BAND_MULT = np.uint64(0xA0761D6478BD642F)


def _gauss_legendre(lo: float, hi: float, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights on [lo, hi] that integrate every polynomial up to ``degree`` exactly."""
    x, w = np.polynomial.legendre.leggauss(degree // 2 + 1)
    half = (hi - lo) / 2
    return lo + half * (x + 1), w * half


def _banding_errors(threshold: float, bands: np.ndarray, rows: np.ndarray, num_perm: int):
    """(false positive, false negative) probability of each (bands, rows), datasketch's definitions: the mass of
    pairs below the threshold that share a band, and of pairs above it that share none. Each integrand is a
    polynomial of degree bands * rows <= num_perm, so Gauss-Legendre quadrature is exact, without scipy (whose
    import and adaptive ``quad`` took ~0.5 CPU s per run) and with datasketch's choices (tests/dedup/test_lsh.py)."""
    b, r = bands[:, None].astype(np.float64), rows[:, None].astype(np.float64)
    s, w = _gauss_legendre(0.0, threshold, num_perm)
    false_positive = ((1 - (1 - s**r) ** b) * w).sum(axis=1)
    s, w = _gauss_legendre(threshold, 1.0, num_perm)
    false_negative = ((1 - s**r) ** b * w).sum(axis=1)
    return false_positive, false_negative


@functools.lru_cache(maxsize=256)
def optimal_param(
    threshold: float, num_perm: int, false_positive_weight: float = 0.5, false_negative_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false positive + false negative probability: the rule of
    ``datasketch.lsh._optimal_param`` (the first minimum in (bands, rows) order), which gives the same answer."""
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])
    fp, fn = _banding_errors(threshold, pairs[:, 0], pairs[:, 1], num_perm)
    best = int(np.argmin(fp * false_positive_weight + fn * false_negative_weight))
    return int(pairs[best, 0]), int(pairs[best, 1])


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
