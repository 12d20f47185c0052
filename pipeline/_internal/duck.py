"""DuckDB over a run directory wherever it lives.

A local run is read by DuckDB itself. A run on an object store is read through the run's own pyarrow
filesystem, registered with the connection as an fsspec filesystem under the ``gristmill-run://`` protocol
(DuckDB's httpfs extension would be downloaded at run time, and would not know the URI's query options):
``sql_file(location)`` gives the path DuckDB should read for a file or glob of the run.

``RunFiles`` is one reading of a run directory (a report, an ``inspect`` or ``sql`` session): its connection,
and the run's files as the report lists and reads them. On an object store every request costs a round trip,
so there a file's size comes from one listing of the run directory and its bytes are fetched once, whichever
query or schema lookup asks for them first; files about to be read are fetched together (``prefetch``), and a
file the report writes is kept as written, not fetched back. A file asked for as a ``KnownFile`` (a segment's part
as its ``_SUCCESS`` lists it) is read through ``storage.HELD``: the process that wrote it (a run writing its own
report) holds its bytes, so reading it costs no request.
"""

from __future__ import annotations

import datetime
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.arrow import ArrowFSWrapper

from gristmill.core.parts import SegmentPart
from gristmill.core.storage import KnownFile, Location, path_matches, resolve

PROTOCOL = "gristmill-run"
# Fetches in flight at once: each is a round trip or two that the store answers in parallel.
FETCH_THREADS = 16


class _RunFileSystem(ArrowFSWrapper):
    """The run's pyarrow filesystem as fsspec, for paths ``gristmill-run://bucket/key``, answering sizes and times
    from one listing of the run directory and reads from bytes fetched once."""

    protocol = PROTOCOL

    def __init__(self, fs, root: str, **kwargs):
        super().__init__(fs, **kwargs)
        self._root = root
        self._bytes: dict[str, bytes] = {}
        self._info: dict[str, dict] = {}
        self._files: set[str] | None = None  # keys of the run's files, from one listing
        self._rewritten: set[str] = set()  # files written since the listing: their sizes are asked again
        self.known: dict[str, KnownFile] = {}  # files whose size and hash a marker lists: read through HELD

    def files(self) -> set[str]:
        """Keys of the files under the run directory, listed once (a listing request answers up to a thousand
        keys; asking each file's size would be a request per file and query), kept current by ``forget``."""
        if self._files is None:
            self._files = set()
            selector = pafs.FileSelector(self._root, allow_not_found=True, recursive=True)
            for entry in self.fs.get_file_info(selector):
                if entry.type == pafs.FileType.File:
                    self._files.add(entry.path)
                    self._info[entry.path] = self._make_entry(entry)
        return self._files

    def info(self, path, **kwargs):
        key = self._strip_protocol(path)
        self.files()
        if key not in self._info:
            if key in self._rewritten:
                # fetched now, as it is about to be read: its size from its bytes (opening asks the size anyway)
                self._info[key] = {"name": key, "size": len(self.read(key)), "type": "file",
                                   "mtime": datetime.datetime.now(datetime.timezone.utc)}
            else:
                self._info[key] = super().info(path, **kwargs)  # a directory, or a file outside the run
        return self._info[key]

    def modified(self, path):
        """DuckDB asks a file's time before reading it (fsspec's ArrowFSWrapper would ask the store each time)."""
        return self.info(path)["mtime"]

    def read(self, key: str) -> bytes:
        if key not in self._bytes:
            self._bytes[key] = self._fetch(key)
        return self._bytes[key]

    def forget(self, key: str, exists: bool) -> None:
        """``key`` was (re)written or removed: its size and bytes are asked again when next read."""
        files = self.files()
        self._bytes.pop(key, None)
        self._info.pop(key, None)
        self.known.pop(key, None)
        for keys in (files, self._rewritten):
            (keys.add if exists else keys.discard)(key)

    def keep(self, key: str, data: bytes) -> None:
        """``key`` was just written with ``data``: reads are answered from it."""
        self.forget(key, exists=True)
        self._rewritten.discard(key)
        self._bytes[key] = data
        self._info[key] = {"name": key, "size": len(data), "type": "file",
                           "mtime": datetime.datetime.now(datetime.timezone.utc)}

    def prefetch(self, keys: list[str]) -> None:
        """Fetch the bytes of those of ``keys`` not fetched yet, concurrently."""
        todo = list(dict.fromkeys(k for k in keys if k not in self._bytes))
        if len(todo) > 1:
            with ThreadPoolExecutor(min(FETCH_THREADS, len(todo))) as pool:
                for key, data in zip(todo, pool.map(self._fetch, todo)):
                    self._bytes[key] = data

    def _fetch(self, key: str) -> bytes:
        known = self.known.get(key)
        if known is not None and known.held_whole:
            return known.read_bytes()
        with self.fs.open_input_file(key) as fh:
            return fh.read()

    def _open(self, path, mode="rb", block_size=None, **kwargs):
        """Reads get the whole object in memory, fetched once: DuckDB's reads through a streamed object-store
        handle came back corrupt (ZSTD and Thrift errors) when it seeks around a file, and the report reads the
        same parts once per chart. Run files are written once; what the report rewrites, it forgets."""
        if "r" not in mode:
            return super()._open(path, mode, block_size, **kwargs)
        return io.BytesIO(self.read(self._strip_protocol(path)))

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        prefix = f"{PROTOCOL}://"
        return (path[len(prefix):] if path.startswith(prefix) else path).rstrip("/")


class RunFiles:
    """One reading of the run directory ``root``: ``con``, an in-memory DuckDB connection that can read its
    files, and the listing, schema and small-file reads the report makes besides its queries. Locally these
    are the disk's answers; on an object store they come from one listing and each file's bytes, fetched
    once (a file written meanwhile through ``wrote`` is read again)."""

    def __init__(self, root: str | os.PathLike | Location):
        self.root = resolve(root)
        self.con = duckdb.connect()
        self._fs: _RunFileSystem | None = None
        self._schemas: dict[str, pa.Schema] = {}
        if not self.root.is_local:
            # A filesystem object of its own (fsspec would reuse one, with its listings cache) and no DuckDB file
            # cache: files the report rewrites must not be read at their old sizes.
            self._fs = _RunFileSystem(self.root.fs, self.root.path, skip_instance_cache=True,
                                      use_listings_cache=False)
            self.con.register_filesystem(self._fs)
            self.con.execute("SET enable_external_file_cache = false")

    def glob(self, directory: str | os.PathLike | Location, pattern: str) -> list[Location]:
        """Files below ``directory`` matching ``pattern`` (as ``Location.glob``), sorted."""
        base = resolve(directory)
        if self._fs is None or not self._inside(base):
            return base.glob(pattern)
        prefix = base.path.rstrip("/") + "/"
        return sorted((base / key[len(prefix):] for key in self._fs.files()
                       if key.startswith(prefix) and path_matches(key[len(prefix):], pattern)),
                      key=lambda loc: loc.path)

    def _inside(self, loc: Location) -> bool:
        return (loc.path + "/").startswith(self.root.path.rstrip("/") + "/")

    def is_dir(self) -> bool:
        """Whether the run directory exists (on an object store: whether any file is below it)."""
        return self.root.is_dir() if self._fs is None else bool(self._fs.files())

    def exists(self, path: str | os.PathLike | Location) -> bool:
        """Whether ``path`` is a file."""
        loc = resolve(path)
        return loc.is_file() if self._fs is None else loc.path in self._fs.files()

    def read_bytes(self, path: str | os.PathLike | Location) -> bytes:
        loc = self._note(resolve(path))
        if self._fs is None:
            return loc.read_bytes()
        if self._inside(loc) and loc.path not in self._fs.files():
            raise FileNotFoundError(f"{loc}: no such file")  # the listing says so: no request to ask again
        return self._fs.read(loc.path)

    def read_json(self, path: str | os.PathLike | Location) -> Any:
        """A JSON file, or None when it is missing or unreadable (a report goes on without it)."""
        try:
            return json.loads(self.read_bytes(path))
        except (OSError, ValueError):
            return None

    def read_schema(self, path: str | os.PathLike | Location) -> pa.Schema:
        """A Parquet file's schema (on an object store from the bytes DuckDB then reads too), once per file."""
        loc = self._note(resolve(path))
        if loc.path not in self._schemas:
            self._schemas[loc.path] = (loc.read_parquet_schema() if self._fs is None
                                       else pq.read_schema(pa.BufferReader(self._fs.read(loc.path))))
        return self._schemas[loc.path]

    def wrote(self, path: str | os.PathLike | Location, exists: bool = True, data: bytes | None = None) -> None:
        """``path`` was just written (with ``data``, if given: read back from it) or removed (``exists=False``):
        what was known of it is stale."""
        loc = resolve(path)
        self._schemas.pop(loc.path, None)
        if self._fs is None:
            return
        if exists and data is not None:
            self._fs.keep(loc.path, data)
        else:
            self._fs.forget(loc.path, exists)

    def prefetch(self, paths: list) -> None:
        """Fetch the run files among ``paths`` that a query or lookup is about to read, concurrently: on an object
        store each fetch is a round trip (two with the size), which then overlap instead of adding up. Files that
        are not in the run's listing are left to whoever reads them; locally nothing is done."""
        if self._fs is None:
            return
        listed = self._fs.files()
        self._fs.prefetch([loc.path for loc in map(self._note, map(resolve, paths)) if loc.path in listed])

    def _note(self, loc: Location) -> Location:
        """Remember the size and hash of a ``KnownFile`` (or of a ``SegmentPart``'s files, the first of which it is
        named after), so their bytes are read through ``storage.HELD``."""
        if self._fs is not None:
            for file in loc.files() if isinstance(loc, SegmentPart) else [loc]:
                if isinstance(file, KnownFile):
                    self._fs.known.setdefault(file.path, file)
        return loc


def connect(root: str | os.PathLike | Location) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that can read the files of the run directory ``root``."""
    return RunFiles(root).con


def sql_file(path: str | os.PathLike | Location) -> str:
    """A quoted SQL string literal naming ``path`` (a file or a glob) as the connection reads it."""
    if isinstance(path, Location) and not path.is_local:
        text = f"{PROTOCOL}://{path.path}"
    else:
        text = os.fspath(path) if isinstance(path, (Location, Path)) else str(path)
    return "'" + text.replace("'", "''") + "'"


def sql_files(paths: list) -> str:
    return "[" + ", ".join(sql_file(p) for p in paths) + "]"


def sql_ident(name: str) -> str:
    """A column name quoted for SQL."""
    return '"' + name.replace('"', '""') + '"'


def parts_relation(parts: list) -> str:
    """A parenthesized SQL query over a segment's parts (``SegmentPart``s, gristmill/core/parts.py) giving its
    documents as one table, in doc_id order: each column read from the files holding it, joined on ``doc_id``
    (DuckDB reads only the columns a query uses). Parts stored alike are read together; parts of a segment that
    wrote them whole are one plain ``read_parquet``."""
    groups: dict[tuple | None, list] = {}
    for part in parts:
        files = getattr(part, "column_files", None)
        key = None if files is None else tuple((c, loc.parent.uri) for c, loc in files if c != "doc_id") + (
            tuple(c for c, _ in files),)
        groups.setdefault(key, []).append(part)
    queries = []
    for key, members in groups.items():
        if key is None:
            queries.append(f"SELECT * FROM read_parquet({sql_files(members)})")
            continue
        queries.append(_joined_query(members))
    if len(queries) == 1 and None in groups:
        return f"({queries[0]})"
    return "(SELECT * FROM (" + " UNION ALL BY NAME ".join(queries) + ") ORDER BY doc_id)"


def _joined_query(parts: list) -> str:
    """Parts whose columns are held by the same segments: the rows files, joined on doc_id with each holder."""
    rows_files = [p.rows_file for p in parts]
    aliases: dict[tuple, str] = {tuple(f.uri for f in rows_files): "t0"}
    sources = [f"read_parquet({sql_files(rows_files)}, union_by_name = true) t0"]
    select = []
    for column, _ in parts[0].column_files:
        if column == "doc_id":
            select.append('t0."doc_id"')
            continue
        holders = [dict(p.column_files)[column] for p in parts]
        key = tuple(f.uri for f in holders)
        if key not in aliases:
            alias = aliases[key] = f"t{len(aliases)}"
            sources.append(f"JOIN read_parquet({sql_files(holders)}, union_by_name = true) {alias} "
                           f'ON {alias}."doc_id" = t0."doc_id"')
        select.append(f"{aliases[key]}.{sql_ident(column)}")
    return f"SELECT {', '.join(select)} FROM {' '.join(sources)}"
