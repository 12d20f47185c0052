"""Every built-in ingest reader, registered by format: importing this module registers them all.

| format    | reads                                                             | module  |
|-----------|-------------------------------------------------------------------|---------|
| `warc`    | WARC (gzip or plain): HTML responses -> extracted text             | warc    |
| `wet`     | WET: text conversion records as they are                           | warc    |
| `jsonl`   | `.jsonl`, `.jsonl.gz`, `.jsonl.zst`, one object per line           | jsonl   |
| `parquet` | Parquet, one row per record                                        | parquet |
| `text`    | plain-text files, one document per file, grouped into units        | text    |
| `hf`      | a `save_to_disk` folder or a hub-style Parquet / JSONL folder      | hf      |
"""

from __future__ import annotations

from gristmill.stages.ingest.hf import HfReader
from gristmill.stages.ingest.jsonl import JsonlReader
from gristmill.stages.ingest.parquet import ParquetReader
from gristmill.stages.ingest.text import TextReader
from gristmill.stages.ingest.warc import WarcReader, WetReader

READERS = (WarcReader, WetReader, JsonlReader, ParquetReader, TextReader, HfReader)

__all__ = ["READERS", "HfReader", "JsonlReader", "ParquetReader", "TextReader", "WarcReader", "WetReader"]
