from __future__ import annotations

import os
import re

import pytest

import gristmill.stages.ingest.readers as readers
from gristmill.pipeline.registry import get_stage, head_stage
from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import InputFileError, Limits


def test_every_reader_is_a_registered_head_stage_named_by_its_format():
    for fmt in ("warc", "wet", "jsonl", "parquet", "text", "hf"):
        cls = head_stage(fmt)
        assert cls.format == fmt and cls.kind == "head"
        assert cls.name == f"ingest.{fmt}_v1" and get_stage(cls.name) is cls and head_stage(cls.name) is cls
    assert {cls.format for cls in readers.READERS} == {"warc", "wet", "jsonl", "parquet", "text", "hf"}


@pytest.mark.parametrize("reader", readers.READERS, ids=lambda c: c.format)
def test_options_refuse_unknown_keys_and_defaults_work(reader):
    reader(reader.Params(), Limits())  # every reader works with its default options
    with pytest.raises(ValueError):
        reader.Params(not_an_option=True)


def _rows(reader_cls, path, on_error: str) -> list[dict]:
    reader = reader_cls(reader_cls.Params(), Limits(), skip_unreadable_files=on_error == "skip")
    return [row for unit in reader.units([str(path)], 0) for table in reader.read(unit) for row in table.to_pylist()]


@pytest.mark.parametrize("reader", readers.READERS, ids=lambda c: c.format)
def test_a_directory_where_a_file_is_expected_is_an_error_naming_it_or_a_counted_reject(reader, tmp_path):
    directory = tmp_path / "crawl.d"
    directory.mkdir()
    with pytest.raises(InputFileError, match=re.escape(str(directory))):
        _rows(reader, directory, "fail")
    (row,) = _rows(reader, directory, "skip")
    assert row["reject_reason"] == f"{reasons.READ_ERROR}: Is a directory"
    assert row["origin"].endswith("crawl.d")


@pytest.mark.parametrize("reader", readers.READERS, ids=lambda c: c.format)
def test_a_file_that_vanished_after_planning_is_an_error_naming_it_or_a_counted_reject(reader, tmp_path):
    gone = tmp_path / "gone.input"
    with pytest.raises(InputFileError, match=re.escape(str(gone))):
        _rows(reader, gone, "fail")
    (row,) = _rows(reader, gone, "skip")
    assert row["reject_reason"].startswith(reasons.READ_ERROR + ": ")
    assert row["origin"].endswith("gone.input")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
@pytest.mark.parametrize("reader", readers.READERS, ids=lambda c: c.format)
def test_a_file_without_read_permission_is_an_error_naming_it(reader, tmp_path):
    locked = tmp_path / "locked.input"
    locked.write_bytes(b"{}\n")
    locked.chmod(0)
    with pytest.raises(InputFileError, match=re.escape(str(locked))):
        _rows(reader, locked, "fail")
    (row,) = _rows(reader, locked, "skip")
    assert row["reject_reason"] == f"{reasons.READ_ERROR}: Permission denied"
