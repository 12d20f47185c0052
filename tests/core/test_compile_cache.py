"""Compiled kernels are cached in a stated folder (gristmill/core/compile_cache.py), so a later process loads them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


# --- kernels compiled ahead of time ----------------------------------------------------------------------------------

TINY_KERNELS = '''
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def add_into(values, amount, out):
    for i in range(values.shape[0]):
        out[i] = values[i] + amount
    return values.shape[0]
'''
# Loads the tiny kernel module through ``load_kernels``, calls it, and reports which build ran and whether numba
# was imported.
LOAD_TINY = """
import sys
import numpy as np
from gristmill.core.compile_cache import load_kernels
kernels = load_kernels("tiny_kernels", {"add_into": "i8[] i8 i8[] -> i8"}, ("tiny_kernels",))
out = np.zeros(3, np.int64)
n = kernels.add_into(np.arange(3, dtype=np.int64), 10, out)
print(kernels.source, n, out.tolist(), "numba" in sys.modules, sep="|")
"""


def _load_tiny(tmp_path, **env) -> list[str]:
    """(build, kernel result, output, whether numba was imported) of a fresh process."""
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "tiny_kernels.py").write_text(TINY_KERNELS)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path / 'src'}",
           "NUMBA_CACHE_DIR": str(tmp_path / "cache"), **env}
    done = subprocess.run([sys.executable, "-c", LOAD_TINY], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().split("|")


def test_a_later_process_loads_the_ahead_of_time_build_without_numba(tmp_path):
    first = _load_tiny(tmp_path)
    assert first == ["aot", "3", "[10, 11, 12]", "True"]  # built by this process, which imported numba
    assert len(list((tmp_path / "cache" / "aot").glob("tiny_kernels_*.so"))) == 1
    assert _load_tiny(tmp_path) == ["aot", "3", "[10, 11, 12]", "False"]


def test_a_failed_build_leaves_the_jit_kernels_in_use_and_is_not_retried(tmp_path):
    assert _load_tiny(tmp_path, CC="false")[0] == "jit"  # no working C compiler: linking fails
    failed = list((tmp_path / "cache" / "aot").glob("tiny_kernels_*.failed"))
    assert len(failed) == 1
    assert _load_tiny(tmp_path)[0] == "jit"  # a compiler now, but the failure is remembered for this source
    assert not list((tmp_path / "cache" / "aot").glob("tiny_kernels_*.so"))


def test_aot_disabled_by_the_environment(tmp_path):
    assert _load_tiny(tmp_path, GRISTMILL_AOT="0")[0] == "jit"
    assert not (tmp_path / "cache" / "aot").exists()


def test_a_kernel_refuses_arguments_of_another_type_than_its_signature():
    from gristmill.core.compile_cache import KernelSignature

    signature = KernelSignature.parse("u4[] i8[] u4[,] b1 -> (i8,i8)")
    assert signature.numba() == "Tuple((int64, int64,))(uint32[::1], int64[::1], uint32[:, ::1], boolean)"
    ok = (np.zeros(2, np.uint32), np.zeros(3, np.int64), np.zeros((2, 2), np.uint32), True)
    signature.check("k", ok)
    with pytest.raises(TypeError, match=r"kernel k: argument 0 must be u4\[\], got int64"):
        signature.check("k", (np.zeros(2, np.int64), *ok[1:]))
    with pytest.raises(TypeError, match="argument 1 must be i8.*strided"):
        signature.check("k", (ok[0], np.zeros(6, np.int64)[::2], *ok[2:]))
    with pytest.raises(TypeError, match="argument 3 must be b1"):
        signature.check("k", (*ok[:3], 1))
    with pytest.raises(TypeError, match="takes 4 arguments, got 3"):
        signature.check("k", ok[:3])
