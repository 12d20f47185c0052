from __future__ import annotations

import pytest

import gristmill.stages.ingest.readers as readers
from gristmill.pipeline.registry import get_reader
from gristmill.stages.ingest.base import Limits


def test_importing_readers_registers_every_format():
    for fmt in ("warc", "wet", "jsonl", "parquet", "text"):
        assert get_reader(fmt).format == fmt
    assert {cls.format for cls in readers.READERS} == {"warc", "wet", "jsonl", "parquet", "text"}


@pytest.mark.parametrize("reader", readers.READERS, ids=lambda c: c.format)
def test_options_refuse_unknown_keys_and_defaults_work(reader):
    reader(reader.Options(), Limits())  # every reader works with its default options
    with pytest.raises(ValueError):
        reader.Options(not_an_option=True)
