"""DuckDB over a run directory wherever it lives.

A local run is read by DuckDB itself. A run on an object store is read through the run's own pyarrow
filesystem, registered with the connection as an fsspec filesystem under the ``gristmill-run://`` protocol
(DuckDB's httpfs extension would be downloaded at run time, and would not know the URI's query options):
``sql_file(location)`` gives the path DuckDB should read for a file or glob of the run.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import duckdb
from fsspec.implementations.arrow import ArrowFSWrapper

from gristmill.core.storage import Location, resolve

PROTOCOL = "gristmill-run"


class _RunFileSystem(ArrowFSWrapper):
    """The run's pyarrow filesystem as fsspec, for paths ``gristmill-run://bucket/key``."""

    protocol = PROTOCOL

    def __init__(self, fs, **kwargs):
        super().__init__(fs, **kwargs)
        self._bytes: dict[str, bytes] = {}
        self._info: dict[str, dict] = {}

    def info(self, path, **kwargs):
        """DuckDB asks a file's size and time before every read: one HEAD per file and connection."""
        key = self._strip_protocol(path)
        if key not in self._info:
            self._info[key] = super().info(path, **kwargs)
        return self._info[key]

    def _open(self, path, mode="rb", block_size=None, **kwargs):
        """Reads get the whole object in memory, fetched once per connection: DuckDB's reads through a streamed
        object-store handle came back corrupt (ZSTD and Thrift errors) when it seeks around a file, and the
        report reads the same parts once per chart. Run files are written once; a connection is short-lived."""
        if "r" not in mode:
            return super()._open(path, mode, block_size, **kwargs)
        key = self._strip_protocol(path)
        if key not in self._bytes:
            with self.fs.open_input_file(key) as fh:
                self._bytes[key] = fh.read()
        return io.BytesIO(self._bytes[key])

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        prefix = f"{PROTOCOL}://"
        return (path[len(prefix):] if path.startswith(prefix) else path).rstrip("/")


def connect(root: str | os.PathLike | Location) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that can read the files of the run directory ``root``."""
    con = duckdb.connect()
    location = resolve(root)
    if not location.is_local:
        # A fresh filesystem object per connection (fsspec would reuse one, with its listings cache) and no
        # DuckDB file cache: files the report rewrites must not be read at their old sizes.
        con.register_filesystem(_RunFileSystem(location.fs, skip_instance_cache=True, use_listings_cache=False))
        con.execute("SET enable_external_file_cache = false")
    return con


def sql_file(path: str | os.PathLike | Location) -> str:
    """A quoted SQL string literal naming ``path`` (a file or a glob) as the connection reads it."""
    if isinstance(path, Location) and not path.is_local:
        text = f"{PROTOCOL}://{path.path}"
    else:
        text = os.fspath(path) if isinstance(path, (Location, Path)) else str(path)
    return "'" + text.replace("'", "''") + "'"


def sql_files(paths: list) -> str:
    return "[" + ", ".join(sql_file(p) for p in paths) + "]"


def _ident(name: str) -> str:
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
        select.append(f"{aliases[key]}.{_ident(column)}")
    return f"SELECT {', '.join(select)} FROM {' '.join(sources)}"
