from __future__ import annotations

import numpy as np
import pytest
from datasketch.lsh import _optimal_param

from gristmill.dedup.lsh import band_keys, optimal_param


@pytest.mark.parametrize("threshold,num_perm,fp_w,fn_w", [(0.8, 64, 0.5, 0.5), (0.5, 32, 0.5, 0.5), (0.9, 48, 0.2, 0.8)])
def test_optimal_param_matches_datasketch(threshold, num_perm, fp_w, fn_w):
    assert optimal_param(threshold, num_perm, fp_w, fn_w) == _optimal_param(threshold, num_perm, fp_w, fn_w)


@pytest.mark.parametrize("num_perm", [16, 126, 250])
@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.1, 0.9)])
def test_optimal_param_matches_datasketch_across_thresholds(num_perm, weights):
    """Exact quadrature of the banding error polynomials picks what datasketch's scipy ``quad`` picks."""
    for threshold in (0.1, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        assert optimal_param(threshold, num_perm, *weights) == _optimal_param(threshold, num_perm, *weights), threshold


def test_band_keys_equal_exactly_when_band_values_equal():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**32, size=(3, 12), dtype=np.uint64).astype(np.uint32)
    sig[1, :4] = sig[0, :4]  # band 0 shared by docs 0 and 1
    sig[2, 4:8] = sig[0, :4]  # doc 2's band 1 holds doc 0's band-0 values: a different band, no match
    keys = band_keys(sig, bands=3, rows=4)
    assert keys.shape == (3, 3) and keys.dtype == np.uint64
    assert keys[0, 0] == keys[1, 0]
    assert keys[0, 1] != keys[1, 1] and keys[0, 2] != keys[1, 2]
    assert keys[2, 1] != keys[0, 0]
    with pytest.raises(ValueError, match="exceeds"):
        band_keys(sig, bands=4, rows=4)
