"""Helpers for the language-ID tests: real sentences from tests/data/langid and document tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from doc_tables import doc_table  # noqa: F401  (re-exported for the tests here)

LANGID_DATA = Path(__file__).parents[2] / "data" / "langid"


@pytest.fixture(scope="session")
def sentences() -> dict[str, list[str]]:
    """25 real sentences per language (gold label = file name), 12 languages."""
    return {p.stem: p.read_text(encoding="utf-8").splitlines() for p in sorted(LANGID_DATA.glob("*.txt"))}
