"""A committed segment's part, read as one table although each column is stored once, where it was written.

A segment's part file holds ``doc_id`` (the rows the segment kept, in ``doc_id`` order) and only the columns the
segment added or changed; every other column stays in the same part of the segment that last wrote it, and a
part whose rows and columns a segment left as they were has no file there at all. The segment's ``_SUCCESS``
says, per part, which segment holds each column (``layouts``). ``SegmentPart`` puts a part back together:
only the columns asked for are read, each from its own file, and aligned on ``doc_id`` (an earlier segment
holds a superset of the rows), so the result has exactly this segment's rows in their order.

``SegmentPart`` is a ``Location`` (the segment's own part file, existing or not) so that everything that names,
sorts, pickles or passes parts around keeps working; its table reads (``read_parquet``, ``read_parquet_schema``,
``parquet_file``) read across segments. Its byte reads (``open_input``) see only its own file.

On an object store every file read is a round trip (a HEAD for its size, then a GET), and a part is read again by
every later segment that uses one of its columns. A committed file is immutable under the size and xxh3-128 hash
its ``_SUCCESS`` lists (a ``KnownFile``), so this process keeps the bytes of such files it wrote or fetched
(``storage.HELD``, bounded, least recently used out) and reads them again from memory; the files of one part
are fetched concurrently, and ``fetch_ahead`` starts fetching the next part's while the current one is worked on.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.core import storage
from gristmill.core.storage import KnownFile, Location

DOC_ID = "doc_id"


class MisalignedPartError(ValueError):
    """A part file lacks documents that a later segment kept: the run directory was changed after its commit."""


def fetch_ahead(part: Location) -> None:
    """Start fetching the files a read of ``part`` will need (remote files of known content not held yet), in the
    background: the read that follows takes them from memory, or waits for the fetch under way."""
    if isinstance(part, SegmentPart):
        for file in part.files():
            if isinstance(file, KnownFile):
                file.fetch_ahead()


class SegmentPart(Location):
    """One part of a committed segment: the part key, its rows, and the file holding each of its columns."""

    __slots__ = ("part", "rows", "column_files", "own_listing")

    def __init__(self, own: Location, part: int, rows: int | None,
                 column_files: Sequence[tuple[str, Location]] | None):
        super().__init__(own.fs, own.path, own.scheme, own.query)
        self.part = part
        self.rows = rows
        # (column, file holding it) in the table's column order; None: the own file holds the whole part.
        self.column_files = tuple(column_files) if column_files is not None else None
        # The own file's (size, hash) as listed, when ``own`` is a KnownFile.
        self.own_listing = (own.known_size, own.digest) if isinstance(own, KnownFile) else None

    def __reduce__(self):
        return (SegmentPart, (self.own_file, self.part, self.rows, self.column_files))

    def __repr__(self) -> str:
        return f"SegmentPart({self.uri!r})"

    @property
    def own_file(self) -> Location:
        own = Location(self.fs, self.path, self.scheme, self.query)
        return own if self.own_listing is None else KnownFile(own, *self.own_listing)

    @property
    def rows_file(self) -> Location:
        """The file whose ``doc_id`` column lists this part's rows."""
        if self.column_files is None:
            return self.own_file
        return dict(self.column_files)[DOC_ID]

    def files(self) -> list[Location]:
        """Every file this part is read from, the rows file first."""
        if self.column_files is None:
            return [self.own_file]
        out = [self.rows_file]
        for _, loc in self.column_files:
            if loc not in out:
                out.append(loc)
        return out

    def columns_by_file(self, columns: Sequence[str] | None = None) -> list[tuple[Location, list[str]]]:
        """(file, the asked columns it holds), the rows file first, in column order within each file."""
        if self.column_files is None:
            return [(self.own_file, list(columns) if columns is not None else [])]
        where = dict(self.column_files)
        wanted = [c for c, _ in self.column_files] if columns is None else list(columns)
        missing = [c for c in wanted if c not in where]
        if missing:
            raise KeyError(f"{self}: no column(s) {missing}; the part has {[c for c, _ in self.column_files]}")
        grouped: dict[Location, list[str]] = {self.rows_file: []}
        for c in wanted:
            grouped.setdefault(where[c], []).append(c)
        return list(grouped.items())

    # --- reading ------------------------------------------------------------------------------------------
    def read_parquet(self, columns: list[str] | None = None) -> pa.Table:
        """The part's rows with ``columns`` (all, in table order, by default), each read from its own file."""
        if self.column_files is None:
            return self.own_file.read_parquet(columns=columns)
        wanted = [c for c, _ in self.column_files] if columns is None else list(columns)
        pieces: dict[str, pa.ChunkedArray] = {}
        doc_ids: pa.Array | None = None
        by_file = self.columns_by_file(wanted)
        for (loc, cols), table in zip(by_file, _read_files(by_file)):
            ids = table[DOC_ID].combine_chunks()
            if doc_ids is None:
                doc_ids = ids  # the rows file: this part's rows, in their order
            elif not ids.equals(doc_ids):
                table = table.take(_positions(doc_ids, ids, loc, self))
            for c in cols:
                pieces[c] = table[c]
        if DOC_ID in wanted:
            pieces[DOC_ID] = pa.chunked_array([doc_ids])
        return pa.table([pieces[c] for c in wanted], names=wanted)

    def read_parquet_schema(self) -> pa.Schema:
        """The whole part's schema in table order, from the footers of the files holding it."""
        if self.column_files is None:
            return self.own_file.read_parquet_schema()
        fields = {}
        for loc in self.files():
            schema = loc.read_parquet_schema()
            for name, holder in self.column_files:
                if holder == loc and name in schema.names:
                    fields[name] = schema.field(name)
        return pa.schema([fields[c] for c, _ in self.column_files])

    def parquet_file(self) -> "PartFile":
        return PartFile(self)


def _read_files(by_file: list[tuple[Location, list[str]]]) -> list[pa.Table]:
    """Each file's columns (``doc_id`` first); remote files concurrently, so their round trips overlap."""
    jobs = [(loc, [DOC_ID] + [c for c in cols if c != DOC_ID]) for loc, cols in by_file]
    if len(jobs) == 1 or all(loc.is_local for loc, _ in jobs):
        return [_read_columns(loc, cols) for loc, cols in jobs]
    futures = [storage.fetch_pool().submit(_read_columns, loc, cols) for loc, cols in jobs]
    return [f.result() for f in futures]


def _read_columns(loc: Location, columns: list[str]) -> pa.Table:
    """``columns`` of one file. Locally through ``ParquetFile`` (no dataset layer: a part reads two or three files,
    and the per-file cost of ``pq.read_table`` was a third of reading a part's doc_ids); elsewhere by
    ``read_parquet`` (a ``KnownFile`` from the bytes this process holds)."""
    if loc.is_local:
        return pq.ParquetFile(loc.path).read(columns=columns)
    return loc.read_parquet(columns=columns)


def _positions(doc_ids: pa.Array, stored: pa.Array, loc: Location, part: SegmentPart) -> pa.Array:
    """Where each of ``doc_ids`` is in ``stored`` (an earlier segment's rows of the same part)."""
    idx = pc.index_in(doc_ids, value_set=stored)
    if idx.null_count:
        first = doc_ids.filter(pc.is_null(idx))[0].as_py()
        raise MisalignedPartError(f"{loc}: lacks doc_id {first} (and {idx.null_count - 1} more) that {part} "
                                  "kept; the run directory changed after the segment was committed "
                                  "(gristmill verify names what)")
    return idx


class PartFile:
    """What global steps use of ``pyarrow.parquet.ParquetFile`` (``metadata.num_rows``, ``iter_batches``),
    over a ``SegmentPart``: the columns asked for are read, then handed out in batches."""

    def __init__(self, part: SegmentPart):
        self.part = part
        self._rows: int | None = part.rows

    @property
    def metadata(self) -> "PartFile":
        return self

    @property
    def num_rows(self) -> int:
        if self._rows is None:
            self._rows = self.part.rows_file.parquet_file().metadata.num_rows
        return self._rows

    def iter_batches(self, batch_size: int = 65536, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        table = self.part.read_parquet(columns=columns).combine_chunks()
        yield from table.to_batches(max_chunksize=batch_size)

