"""``import gristmill`` (gristmill/__init__.py): cheap, with the Python API loading on first use; torch is
imported only for ShardDataset, and its absence is an ImportError with the install hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


HEAVY = "sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'pyarrow', 'numpy'})"


def test_import_is_cheap_and_names_load_on_use():
    done = python(f"""
import sys, gristmill
print({HEAVY}, 'gristmill.pipeline' in sys.modules)
reader = gristmill.ShardReader
print({HEAVY}, reader.__module__)
dataset = gristmill.ShardDataset
print({HEAVY}, dataset.__module__, gristmill.run.__module__)
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[] False",
        "['numpy', 'pyarrow'] gristmill.mixtures.shards",
        "['numpy', 'pyarrow', 'torch'] gristmill.mixtures.dataset gristmill.pipeline.api",
    ]


def test_without_torch_the_dataset_names_the_extra():
    done = python("""
import sys, gristmill
sys.modules['torch'] = None  # as if torch were not installed
try:
    gristmill.ShardDataset
except ImportError as exc:
    print(type(exc).__name__, exc)
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "MissingDependency 'torch' is required here: pip install 'gristmill[torch]'"


def test_an_unknown_name_is_an_attribute_error():
    import gristmill

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        gristmill.nope
    assert {"run", "ShardReader", "ShardDataset"} <= set(dir(gristmill))
