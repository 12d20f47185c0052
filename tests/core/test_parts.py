"""SegmentPart: a part put back together from the files holding its columns, aligned on doc_id."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.core.parts import MisalignedPartError, SegmentPart
from gristmill.core.storage import resolve


@pytest.fixture
def stored(tmp_path):
    """A part as three segments stored it: ingest wrote every column for 5 rows; a dedup step kept 3 (doc_id
    only); a tokenizer added ``tokens`` for those 3."""
    ingest = tmp_path / "00" / "part-0.parquet"
    dedup = tmp_path / "01" / "part-0.parquet"
    tokens = tmp_path / "02" / "part-0.parquet"
    for path in (ingest, dedup, tokens):
        path.parent.mkdir()
    pq.write_table(pa.table({"doc_id": pa.array([10, 11, 12, 13, 14], pa.uint64()),
                             "source": ["a", "b", "a", "b", "a"], "text": ["t0", "t1", "t2", "t3", "t4"]}), ingest)
    pq.write_table(pa.table({"doc_id": pa.array([11, 13, 14], pa.uint64())}), dedup)
    pq.write_table(pa.table({"doc_id": pa.array([11, 13, 14], pa.uint64()), "tokens": [[1], [2, 3], [4]]}), tokens)
    files = [("doc_id", resolve(tokens)), ("source", resolve(ingest)), ("text", resolve(ingest)),
             ("tokens", resolve(tokens))]
    return SegmentPart(resolve(tmp_path / "03" / "part-0.parquet"), 0, 3, files), ingest, dedup


def test_columns_come_from_the_segment_that_wrote_them_for_the_rows_kept(stored):
    part, _, _ = stored
    table = part.read_parquet()
    assert table.column_names == ["doc_id", "source", "text", "tokens"]
    assert table.to_pydict() == {"doc_id": [11, 13, 14], "source": ["b", "b", "a"], "text": ["t1", "t3", "t4"],
                                 "tokens": [[1], [2, 3], [4]]}
    assert part.read_parquet(["text"]).to_pydict() == {"text": ["t1", "t3", "t4"]}
    assert part.read_parquet_schema().names == ["doc_id", "source", "text", "tokens"]
    batches = list(part.parquet_file().iter_batches(batch_size=2, columns=["doc_id", "text"]))
    assert [b.num_rows for b in batches] == [2, 1] and part.parquet_file().metadata.num_rows == 3


def test_a_part_pickles_with_where_its_columns_are(stored):
    part, _, _ = stored
    copy = pickle.loads(pickle.dumps(part))
    assert copy.read_parquet().equals(part.read_parquet()) and str(copy) == str(part) and copy.part == 0


def test_a_column_it_does_not_have_is_named(stored):
    with pytest.raises(KeyError, match="no column"):
        stored[0].read_parquet(["lang"])


def test_an_earlier_file_missing_kept_rows_is_an_error_not_a_misaligned_table(stored):
    part, ingest, _ = stored
    pq.write_table(pa.table({"doc_id": pa.array([10, 11, 12], pa.uint64()), "source": ["a", "b", "a"],
                             "text": ["t0", "t1", "t2"]}), ingest)
    with pytest.raises(MisalignedPartError, match="lacks doc_id 13"):
        part.read_parquet(["text"])
