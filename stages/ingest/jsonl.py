"""JSON Lines reader: ``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``, streamed line by line (bounded memory).

Every non-blank line is one record: a line that is not a JSON object is ``malformed_json``, an object without
a string text field ``missing_text_field``; the lines after them are still read.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import BinaryIO, Iterator

import pyarrow as pa

from gristmill.core.storage import is_uri, open_input, resolve
from gristmill.stages.base import require
from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import Reader, ReaderOptions, RecordBatcher, Unit
from gristmill.stages.ingest.encoding import decode_utf8

_LINE_CHUNK = 1 << 20


class JsonlOptions(ReaderOptions):
    text_field: str = "text"
    id_field: str | None = None  # its value becomes ``origin``; default ``path:line``
    url_field: str | None = None


def zstd_error() -> type[Exception]:
    """zstandard's error type (not an OSError), or a placeholder when zstandard is not installed."""
    try:
        import zstandard
    except ImportError:
        return OSError
    return zstandard.ZstdError


def open_decompressed(path: str) -> BinaryIO:
    """A binary stream of the file's bytes, decompressing ``.gz`` / ``.zst`` by the suffix of the file's name
    (a URI's ``?query`` is not part of it)."""
    name = resolve(path).name
    if name.endswith(".gz"):
        if not is_uri(path):
            return gzip.open(path, "rb")
        raw = open_input(path)
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
        stream.myfileobj = raw  # GzipFile.close() closes the object it owns (as gzip.open does)
        return stream
    if name.endswith((".zst", ".zstd")):
        zstandard = require("zstandard", "zstd")
        raw = open_input(path)
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader, buffer_size=_LINE_CHUNK)
    return open_input(path)


def iter_lines(stream: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line_number, line)`` with the newline stripped; ``line`` is None for a line over ``max_bytes``.

    An over-long line is consumed in chunks and never held whole, so one runaway line cannot exhaust memory.
    """
    number = 0
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while chunk := stream.readline(_LINE_CHUNK):  # skip the rest of this line
                if chunk.endswith(b"\n"):
                    break
            yield number, None
            continue
        yield number, line.rstrip(b"\r\n")


class JsonlReader(Reader):
    """JSON Lines (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``), one object per line -> its text field."""

    name = "ingest.jsonl_v1"
    format = "jsonl"
    Params = JsonlOptions

    def read(self, unit: Unit) -> Iterator[pa.Table]:
        batcher = RecordBatcher(self.limits)
        for path in unit.paths:
            for row in self._rows(path):
                table = batcher.add(*row)
                if table is not None:
                    yield table
        table = batcher.flush()
        if table is not None:
            yield table

    def _rows(self, path: str) -> Iterator[tuple]:
        number = 0
        try:
            with open_decompressed(path) as stream:
                for number, line in iter_lines(stream, self.limits.max_record_bytes):
                    if line is None:
                        yield "", None, f"{path}:{number}", reasons.RECORD_TOO_LARGE
                    elif line.strip():
                        yield self._row(path, number, line)
        except (OSError, EOFError, ValueError, zstd_error()) as exc:  # unreadable file, corrupt gzip/zstd stream
            if number == 0:  # nothing could be read: not a file, no permission, not gzip/zstd at all
                yield self.unreadable(path, exc)
            else:
                yield "", None, f"{path}:{number + 1}", reasons.with_detail(reasons.READ_ERROR, exc)

    def _row(self, path: str, number: int, line: bytes) -> tuple:
        opts: JsonlOptions = self.options  # type: ignore[assignment]
        origin = f"{path}:{number}"
        decoded = decode_utf8(line)
        notes = (reasons.INVALID_BYTES_REPLACED,) if decoded.replaced else ()
        try:
            obj = json.loads(decoded.text)
        except json.JSONDecodeError as exc:
            return "", None, origin, reasons.with_detail(reasons.MALFORMED_JSON, exc), notes
        if not isinstance(obj, dict):
            detail = f"not an object: {type(obj).__name__}"
            return "", None, origin, reasons.with_detail(reasons.MALFORMED_JSON, detail), notes
        if opts.id_field is not None and obj.get(opts.id_field) is not None:
            origin = str(obj[opts.id_field])
        url = obj.get(opts.url_field) if opts.url_field is not None else None
        url = url if isinstance(url, str) else None
        text = obj.get(opts.text_field)
        if not isinstance(text, str):
            return "", url, origin, reasons.MISSING_TEXT_FIELD, notes
        return text, url, origin, None, notes
