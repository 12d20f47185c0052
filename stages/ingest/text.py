"""Plain-text files (a source tree, a folder of books): each file is one document.

Small files are grouped, ``files_per_unit`` to a unit, so a tree of 100k files is not 100k tasks.
"""

from __future__ import annotations

import os
from typing import Iterator

import pyarrow as pa
from pydantic import Field

from gristmill.core.storage import is_uri, open_input, resolve
from gristmill.stages.ingest import reasons
from gristmill.stages.ingest.base import Reader, ReaderOptions, RecordBatcher, Unit
from gristmill.stages.ingest.encoding import decode_utf8


class TextOptions(ReaderOptions):
    # Keep only files whose name ends with one of these (".py", ".md"); None keeps all matched files.
    extensions: list[str] | None = None
    files_per_unit: int = Field(default=256, ge=1)
    # ``origin`` is the file path relative to this directory when the file is under it; else the path as given.
    relative_to: str | None = None


class TextReader(Reader):
    """Plain-text files, one document per file, grouped ``files_per_unit`` to a unit."""

    name = "ingest.text_v1"
    format = "text"
    Params = TextOptions

    def units(self, paths: list[str], first_index: int) -> list[Unit]:
        opts: TextOptions = self.options  # type: ignore[assignment]
        if opts.extensions is not None:
            suffixes = tuple(opts.extensions)
            paths = [p for p in paths if resolve(p).name.endswith(suffixes)]
        size = opts.files_per_unit
        return [
            Unit(first_index + i, tuple(paths[start : start + size]))
            for i, start in enumerate(range(0, len(paths), size))
        ]

    def read(self, unit: Unit) -> Iterator[pa.Table]:
        batcher = RecordBatcher(self.limits)
        for path in unit.paths:
            table = batcher.add(*self._row(path))
            if table is not None:
                yield table
        table = batcher.flush()
        if table is not None:
            yield table

    def _row(self, path: str) -> tuple:
        origin = self._origin(path)
        try:
            with open_input(path) as f:
                data = f.read(self.limits.max_record_bytes + 1)
        except OSError as exc:  # a directory, no permission: an error, or a reject under on_error: skip
            _, _, _, reason = self.unreadable(path, exc)
            return "", None, origin, reason
        if len(data) > self.limits.max_record_bytes:
            return "", None, origin, reasons.RECORD_TOO_LARGE
        if b"\x00" in data:
            return "", None, origin, reasons.BINARY_FILE
        decoded = decode_utf8(data)
        notes = (reasons.INVALID_BYTES_REPLACED,) if decoded.replaced else ()
        if not decoded.text.strip():
            return "", None, origin, reasons.EMPTY_TEXT, notes
        return decoded.text, None, origin, None, notes

    def _origin(self, path: str) -> str:
        root = self.options.relative_to  # type: ignore[attr-defined]
        if root is None or is_uri(path):
            return path
        if not os.path.isabs(root) and self.base_dir is not None:
            root = os.path.join(self.base_dir, root)
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
        return path if rel.startswith("..") else rel
