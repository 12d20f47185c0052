"""Helpers for the clean-stage tests: real text from tests/data/clean and document tables built from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from gristmill.stages.base import PART_COLUMN, StageOutput

CLEAN_DATA = Path(__file__).parents[2] / "data" / "clean"


def lines_of(name: str) -> list[str]:
    return (CLEAN_DATA / name).read_text(encoding="utf-8").splitlines()


def doc_table(texts: list[str | None], sources: list[str] | str = "common_crawl") -> pa.Table:
    """A document table (every column of DESIGN.md plus ``_part`` and an extra column) holding ``texts``."""
    n = len(texts)
    if isinstance(sources, str):
        sources = [sources] * n
    return pa.table(
        {
            "doc_id": pa.array(np.arange(1000, 1000 + n, dtype=np.uint64)),
            "source": pa.array(sources, pa.string()),
            "text": pa.array(texts, pa.large_string()),
            "url": pa.array([f"https://example.org/{i}" if i % 2 else None for i in range(n)], pa.string()),
            "origin": pa.array([f"test:{i}" for i in range(n)], pa.string()),
            "extra": pa.array(np.arange(n, dtype=np.int64) * 7),
            PART_COLUMN: pa.array(np.full(n, 3, dtype=np.uint64)),
        }
    )


def run(stage, texts: list[str | None], sources: list[str] | str = "common_crawl") -> tuple[list, list]:
    """(output texts, reject reasons) of ``stage`` on a table of ``texts``; reasons are None for kept rows."""
    stage.setup()
    out: StageOutput = stage.process(doc_table(texts, sources))
    assert out.table.num_rows == len(texts)
    reasons = [None] * len(texts) if out.reject_reason is None else out.reject_reason.to_pylist()
    return out.table.column("text").to_pylist(), reasons


@pytest.fixture(scope="session")
def real_texts() -> dict[str, list[str]]:
    """Real sentences (one per line) by language."""
    return {
        "en": lines_of("en.txt"),
        "zh": lines_of("zh.txt"),
        "ja": lines_of("ja.txt"),
        "hi": lines_of("hi.txt"),
    }
