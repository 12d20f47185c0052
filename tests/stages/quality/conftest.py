"""Helpers for the quality tests: real documents from tests/data/quality and tests/data/langid."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from doc_tables import doc_table  # noqa: F401  (re-exported for the tests here)

DATA = Path(__file__).parents[2] / "data"
QUALITY_DATA = DATA / "quality"
ARTICLES = QUALITY_DATA / "articles-vs-boilerplate.parquet"
ZH_PAGE = QUALITY_DATA / "cc-2020-34-zh-page.txt"


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
