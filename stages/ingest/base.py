"""The reader contract for crawl-ingest.

A reader turns one *unit* (usually one input file; a group of small files for the ``text`` format) into
record batches. It yields **every record it sees, in order**, each as a row with the document columns
``text``, ``url``, ``origin`` and a ``reject_reason`` (null = a document). The framework numbers the rows of a
unit to build ``doc_id`` = ``(unit_index << 32) | ordinal``, so ids are stable for the same inputs whatever is
later filtered, and every record is accounted for: a non-HTML response, a truncated record or an undecodable
line becomes a rejected row with its reason, and the rest of the file is still read.

A row may also carry ``notes``: names of things that happened to a record without rejecting it (bytes replaced
while decoding, a payload the crawler cut, a ``Content-Encoding`` that was not applied). The framework counts
each name once per row into the ingest step's statistics (``counters``), so nothing is changed silently.
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar, Iterator

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from gristmill.stages.ingest import reasons

# What a reader yields per batch (the framework adds doc_id, source, _part).
NOTES = "notes"
RECORD_SCHEMA = pa.schema(
    [
        pa.field("text", pa.large_string()),
        pa.field("url", pa.string()),
        pa.field("origin", pa.string()),
        pa.field("reject_reason", pa.string()),
        pa.field(NOTES, pa.list_(pa.string())),  # counter names, see the module docstring; null = none
    ]
)


class ReaderOptions(BaseModel):
    """Per-input options of a reader; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds that keep one record from blowing up a worker's memory."""

    # Raw bytes of one record (HTML, a JSON line, a file) read at most; larger ones are rejected unread.
    max_record_bytes: int = 16 * 1024 * 1024
    # Rows per yielded batch and approximate bytes of text per batch.
    batch_rows: int = 2048
    batch_bytes: int = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Unit:
    """One unit of ingest work: ``paths`` (one file, or several small files) read by one task."""

    index: int
    paths: tuple[str, ...]


class InputFileError(RuntimeError):
    """A file of an input that cannot be read at all: a directory, no permission, not in the input's format."""


class Reader:
    format: ClassVar[str] = ""
    Options: ClassVar[type[ReaderOptions]] = ReaderOptions

    def __init__(self, options: ReaderOptions, limits: Limits, base_dir: str | None = None,
                 skip_unreadable_files: bool = False):
        self.options = options
        self.limits = limits
        # The pipeline file's directory: relative paths in options (e.g. ``relative_to``) are read against it.
        self.base_dir = base_dir
        # The input's ``on_error: skip``: a file that cannot be read becomes a rejected row instead of an error.
        self.skip_unreadable_files = skip_unreadable_files

    def unreadable(self, path: str, exc: BaseException, kind: str | None = None) -> tuple[str, None, str, str]:
        """The rejected row (origin = the file) for a file that cannot be read at all, or ``InputFileError``
        naming it when the input does not skip such files. ``kind`` names the failure in the reject reason
        (default: the OS error's text or the exception's type), without the path so skipped files group."""
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if kind is None and "://" not in path and os.path.isdir(path):
            kind = "Is a directory"  # pyarrow says so only in its message
        if not self.skip_unreadable_files:
            raise InputFileError(f"{path}: cannot be read as {self.format or 'input'}: {detail} "
                                 "(set 'on_error: skip' on the input to count such files as rejects)") from exc
        return "", None, path, reasons.with_detail(reasons.READ_ERROR, kind or _short(exc))

    def units(self, paths: list[str], first_index: int) -> list[Unit]:
        """Split the (sorted) input files into units; one per file by default."""
        return [Unit(first_index + i, (p,)) for i, p in enumerate(paths)]

    def read(self, unit: Unit) -> Iterator[pa.Table]:  # pragma: no cover - abstract
        raise NotImplementedError


def _short(exc: BaseException) -> str:
    """The kind of failure without the path, so the drop reasons of many skipped files group together."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


class RecordBatcher:
    """Accumulates rows in Python lists and emits ``RECORD_SCHEMA`` tables at the batch limits.

    Readers parse records one at a time anyway (a WARC record, a JSON line); this keeps the Arrow building
    and the batch bounds in one place.
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self._reset()

    def _reset(self) -> None:
        self.text: list[str] = []
        self.url: list[str | None] = []
        self.origin: list[str] = []
        self.reason: list[str | None] = []
        self.notes: list[list[str] | None] = []
        self.nbytes = 0

    def add(self, text: str, url: str | None, origin: str, reason: str | None = None,
            notes: "list[str] | tuple[str, ...]" = ()) -> pa.Table | None:
        self.text.append(text)
        self.url.append(url)
        self.origin.append(origin)
        self.reason.append(reason)
        self.notes.append(list(notes) if notes else None)
        self.nbytes += len(text)
        if len(self.text) >= self.limits.batch_rows or self.nbytes >= self.limits.batch_bytes:
            return self.flush()
        return None

    def flush(self) -> pa.Table | None:
        if not self.text:
            return None
        table = pa.table([self.text, self.url, self.origin, self.reason, self.notes], schema=RECORD_SCHEMA)
        self._reset()
        return table
