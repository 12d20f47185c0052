"""Every built-in reader: head stages, registered by name like every stage (``BUILTIN_STAGES`` in
``gristmill.pipeline.registry``), each also known by its short ``format``.

| format    | stage               | reads                                                        | module  |
|-----------|---------------------|--------------------------------------------------------------|---------|
| `warc`    | `ingest.warc_v1`    | WARC (gzip or plain): HTML responses -> extracted text        | warc    |
| `wet`     | `ingest.wet_v1`     | WET: text conversion records as they are                      | warc    |
| `jsonl`   | `ingest.jsonl_v1`   | `.jsonl`, `.jsonl.gz`, `.jsonl.zst`, one object per line      | jsonl   |
| `parquet` | `ingest.parquet_v1` | Parquet, one row per record                                   | parquet |
| `text`    | `ingest.text_v1`    | plain-text files, one document per file, grouped into units   | text    |
| `hf`      | `ingest.hf_v1`      | a `save_to_disk` folder or a hub-style Parquet / JSONL folder | hf      |
"""

from __future__ import annotations

from gristmill.stages.ingest.hf import HfReader
from gristmill.stages.ingest.jsonl import JsonlReader
from gristmill.stages.ingest.parquet import ParquetReader
from gristmill.stages.ingest.text import TextReader
from gristmill.stages.ingest.warc import WarcReader, WetReader

READERS = (WarcReader, WetReader, JsonlReader, ParquetReader, TextReader, HfReader)

__all__ = ["READERS", "HfReader", "JsonlReader", "ParquetReader", "TextReader", "WarcReader", "WetReader"]
