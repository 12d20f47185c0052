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


# A table derived in a later process is read from the folder instead of being derived again.
DERIVE_TABLE = """
import sys
from gristmill.core.compile_cache import cached_bytes

def build():
    print("built")
    return sys.argv[1].encode()

print(cached_bytes("demo", "key-" + sys.argv[2], build).decode())
"""


def _table(tmp_path, value: str, key: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", DERIVE_TABLE, value, key],
                          env={**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(tmp_path / "cache")},
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_a_cached_table_is_derived_once_per_key(tmp_path):
    assert _table(tmp_path, "first", "a") == ["built", "first"]
    assert _table(tmp_path, "second", "a") == ["first"]  # read back: not built again
    assert _table(tmp_path, "third", "b") == ["built", "third"]  # another key is another table
    assert len(list((tmp_path / "cache" / "tables").iterdir())) == 2


def test_an_unwritable_cache_folder_only_costs_the_derivation(tmp_path, monkeypatch):
    from gristmill.core.compile_cache import cached_bytes

    (tmp_path / "cache").write_text("a file where the folder should be")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    assert cached_bytes("demo", "k", lambda: b"bytes") == b"bytes"
    assert cached_bytes("demo", "k", lambda: b"again") == b"again"
