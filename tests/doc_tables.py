"""Document tables for stage tests: every column of DESIGN.md's document table plus ``_part`` and an extra
column a stage must leave alone."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from gristmill.stages.base import PART_COLUMN


def doc_table(texts: list[str | None], extra: dict | None = None, part: int = 2) -> pa.Table:
    """A document table holding ``texts`` (source common_crawl), with ``extra`` columns added or replaced."""
    n = len(texts)
    columns = {
        "doc_id": pa.array(np.arange(n, dtype=np.uint64)),
        "source": pa.array(["common_crawl"] * n, pa.string()),
        "text": pa.array(texts, pa.large_string()),
        "url": pa.array([None] * n, pa.string()),
        "origin": pa.array([f"test:{i}" for i in range(n)], pa.string()),
        "extra": pa.array(np.arange(n, dtype=np.int64)),
        PART_COLUMN: pa.array(np.full(n, part, dtype=np.uint64)),
    }
    columns.update(extra or {})
    return pa.table(columns)
