"""Helpers for the ingest reader tests: run a reader over files and collect every row it yields."""

from __future__ import annotations

from pathlib import Path

import pytest

from gristmill.stages.ingest.base import RECORD_SCHEMA, Limits, Reader, Unit

WARC_DIR = Path(__file__).parents[2] / "data" / "warc"
CC_SAMPLE = WARC_DIR / "cc-main-2020-34-sample.warc.gz"
TRUNCATED = WARC_DIR / "truncated-record.warc.gz"
WHIRLWIND_WARC = WARC_DIR / "cc-main-2024-22-whirlwind.warc.gz"
WHIRLWIND_WET = WARC_DIR / "cc-main-2024-22-whirlwind.warc.wet.gz"


def read_rows(reader_cls: type[Reader], paths, limits: Limits | None = None, on_error: str = "fail",
              **options) -> list[dict]:
    """All rows a reader yields for ``paths`` (one unit per file, as the framework plans them by default)."""
    reader = reader_cls(reader_cls.Params(**options), limits or Limits(),
                        skip_unreadable_files=on_error == "skip")
    rows: list[dict] = []
    for unit in reader.units([str(p) for p in paths], 0):
        for table in reader.read(unit):
            assert table.schema.equals(RECORD_SCHEMA)
            assert table.num_rows > 0
            rows.extend(table.to_pylist())
    return rows


def documents(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["reject_reason"] is None]


def reasons_of(rows: list[dict]) -> list[str | None]:
    return [r["reject_reason"] for r in rows]


@pytest.fixture
def small_batches() -> Limits:
    """Tiny batches so tests also cover a file spread over several yielded tables."""
    return Limits(batch_rows=3)


