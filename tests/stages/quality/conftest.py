"""Helpers for the quality tests: real documents from tests/data/quality and tests/data/langid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stages.base import PART_COLUMN

DATA = Path(__file__).parents[2] / "data"
QUALITY_DATA = DATA / "quality"
ARTICLES = QUALITY_DATA / "articles-vs-boilerplate.parquet"
ZH_PAGE = QUALITY_DATA / "cc-2020-34-zh-page.txt"


def doc_table(texts: list[str | None], extra: dict | None = None) -> pa.Table:
    """A document table (every column of DESIGN.md plus ``_part`` and an extra column) holding ``texts``."""
    n = len(texts)
    columns = {
        "doc_id": pa.array(np.arange(n, dtype=np.uint64)),
        "source": pa.array(["common_crawl"] * n, pa.string()),
        "text": pa.array(texts, pa.large_string()),
        "url": pa.array([None] * n, pa.string()),
        "origin": pa.array([f"test:{i}" for i in range(n)], pa.string()),
        "extra": pa.array(np.arange(n, dtype=np.int64)),
        PART_COLUMN: pa.array(np.full(n, 2, dtype=np.uint64)),
    }
    columns.update(extra or {})
    return pa.table(columns)


@pytest.fixture(scope="session")
def articles() -> pa.Table:
    """Hand-labelled article text ('reference') and the boilerplate of the same pages ('common_crawl')."""
    return pq.read_table(ARTICLES)


@pytest.fixture(scope="session")
def zh_page() -> str:
    return ZH_PAGE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def real_documents(articles, zh_page) -> list[str]:
    """Real documents of many shapes: articles, navigation boilerplate, sentences of 12 languages, a zh page."""
    texts = articles["text"].to_pylist()[::10]
    for path in sorted((DATA / "langid").glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        texts.append(" ".join(lines[:12]))
        texts.append("\n".join(lines[12:25]))
    texts.append(zh_page)
    return texts
