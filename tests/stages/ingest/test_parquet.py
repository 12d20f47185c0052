from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import InputFileError, Limits
from gristmill.stages.ingest.parquet import ParquetReader
from gristmill.stages.ingest.warc import WarcReader

from .conftest import CC_SAMPLE, documents, read_rows


@pytest.fixture(scope="module")
def pages() -> list[dict]:
    """Real page texts (the Common Crawl sample, extracted) to store as Parquet."""
    return documents(read_rows(WarcReader, [CC_SAMPLE]))


def _write(path, pages, row_group_size=4):
    texts = [p["text"] for p in pages]
    texts[2] = None  # a null text in the middle
    table = pa.table(
        {
            "content": pa.array(texts, pa.string()),
            "page_id": pa.array(list(range(100, 100 + len(pages))), pa.int64()),
            "link": [p["url"] for p in pages],
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)


def test_rows_in_order_with_ids_urls_and_null_text(tmp_path, pages):
    path = tmp_path / "pages.parquet"
    _write(path, pages)
    options = {"text_field": "content", "id_field": "page_id", "url_field": "link"}
    rows = read_rows(ParquetReader, [path], Limits(batch_rows=5), **options)
    assert len(rows) == len(pages) == 16
    assert rows[2]["reject_reason"] == reasons.MISSING_TEXT_FIELD and rows[2]["text"] == ""
    assert [r["text"] for i, r in enumerate(rows) if i != 2] == [p["text"] for i, p in enumerate(pages) if i != 2]
    assert [r["origin"] for r in rows] == [str(100 + i) for i in range(16)]
    assert [r["url"] for r in rows] == [p["url"] for p in pages]


def test_default_origin_is_path_and_row(tmp_path, pages):
    path = tmp_path / "pages.parquet"
    _write(path, pages)
    rows = read_rows(ParquetReader, [path], Limits(batch_rows=5), text_field="content")
    assert [r["origin"] for r in rows] == [f"{path}:{i}" for i in range(16)]
    assert all(r["url"] is None for r in rows)


def test_text_over_max_record_bytes_is_rejected(tmp_path, pages):
    path = tmp_path / "pages.parquet"
    _write(path, pages)
    limit = 2_000
    rows = read_rows(ParquetReader, [path], Limits(max_record_bytes=limit), text_field="content")
    too_big = [i for i, p in enumerate(pages) if i != 2 and len(p["text"].encode()) > limit]
    assert too_big and [i for i, r in enumerate(rows) if r["reject_reason"] == reasons.RECORD_TOO_LARGE] == too_big
    assert all(rows[i]["text"] == "" for i in too_big)


def test_missing_column_is_a_clear_error(tmp_path, pages):
    path = tmp_path / "pages.parquet"
    _write(path, pages)
    with pytest.raises(ValueError, match=r"pages\.parquet: no column 'text'"):
        read_rows(ParquetReader, [path])


def test_empty_file_yields_nothing(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    assert read_rows(ParquetReader, [path]) == []


def test_a_file_that_is_not_parquet_is_an_error_naming_it_or_a_counted_reject(tmp_path):
    fake = tmp_path / "part-0001.parquet"
    fake.write_bytes(b'{"text": "a JSON line saved under the wrong name"}\n')
    with pytest.raises(InputFileError, match=re.escape(str(fake)) + ".*not a parquet file"):
        read_rows(ParquetReader, [fake])
    (row,) = read_rows(ParquetReader, [fake], on_error="skip")
    assert row["reject_reason"] == f"{reasons.READ_ERROR}: not a Parquet file"
    assert row["origin"] == str(fake)
