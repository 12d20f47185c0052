"""DuckDB over a run directory wherever it lives.

A local run is read by DuckDB itself. A run on an object store is read through the run's own pyarrow
filesystem, registered with the connection as an fsspec filesystem under the ``gristmill-run://`` protocol
(DuckDB's httpfs extension would be downloaded at run time, and would not know the URI's query options):
``sql_file(location)`` gives the path DuckDB should read for a file or glob of the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
from fsspec.implementations.arrow import ArrowFSWrapper

from gristmill.core.storage import Location, resolve

PROTOCOL = "gristmill-run"


class _RunFileSystem(ArrowFSWrapper):
    """The run's pyarrow filesystem as fsspec, for paths ``gristmill-run://bucket/key``."""

    protocol = PROTOCOL

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
        con.register_filesystem(_RunFileSystem(location.fs))
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
