"""Compiled kernels are cached in a stated folder (gristmill/core/compile_cache.py), so a later process loads them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

ROOT = Path(__file__).resolve().parents[2]
# numba imported first, as ``require("numba", ...)`` does, then a small kernel module used once.
FIRST_USE = """
import numpy as np
from gristmill.stages.base import require
require("numba", "dedup")
from gristmill.dedup import _kernels
_kernels.fmix(np.uint64(12345))
import numba
print(numba.config.CACHE_DIR)
"""


def _run(env: dict) -> str:
    done = subprocess.run([sys.executable, "-c", FIRST_USE], env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_kernels_are_cached_under_the_user_cache_dir_by_default(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "NUMBA_CACHE_DIR": ""}
    assert _run(env) == str(tmp_path / "xdg" / "gristmill" / "numba")
    cached = list((tmp_path / "xdg" / "gristmill" / "numba").rglob("*.nbi"))
    assert cached, "no numba cache index written under the stated folder"


def test_numba_cache_dir_set_by_the_user_wins(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "NUMBA_CACHE_DIR": str(tmp_path / "mine")}
    assert _run(env) == str(tmp_path / "mine")
    assert not (tmp_path / "xdg").exists()
