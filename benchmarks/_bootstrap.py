"""Imported first by every benchmark script. Python puts the script's folder (benchmarks/) first on sys.path, where
benchmarks/pipeline.py would shadow the ``pipeline`` package: put the repository first and benchmarks/ last, so
``import pipeline`` is the package and ``import real_text`` still finds the shared loaders here."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _is(entry: str, path: Path) -> bool:
    try:
        return Path(entry or ".").resolve() == path
    except OSError:
        return False


sys.path[:] = [str(ROOT)] + [p for p in sys.path if not (_is(p, HERE) or _is(p, ROOT))] + [str(HERE)]
