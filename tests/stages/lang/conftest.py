"""Helpers for the language-ID tests: real sentences from tests/data/langid and document tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from stages.base import PART_COLUMN

LANGID_DATA = Path(__file__).parents[2] / "data" / "langid"


def doc_table(texts: list[str | None]) -> pa.Table:
    """A document table (every column of DESIGN.md plus ``_part`` and an extra column) holding ``texts``."""
    n = len(texts)
    return pa.table({
        "doc_id": pa.array(np.arange(n, dtype=np.uint64)),
        "source": pa.array(["common_crawl"] * n, pa.string()),
        "text": pa.array(texts, pa.large_string()),
        "url": pa.array([None] * n, pa.string()),
        "origin": pa.array([f"test:{i}" for i in range(n)], pa.string()),
        "extra": pa.array(np.arange(n, dtype=np.int64)),
        PART_COLUMN: pa.array(np.full(n, 5, dtype=np.uint64)),
    })


@pytest.fixture(scope="session")
def sentences() -> dict[str, list[str]]:
    """25 real sentences per language (gold label = file name), 12 languages."""
    return {p.stem: p.read_text(encoding="utf-8").splitlines() for p in sorted(LANGID_DATA.glob("*.txt"))}
