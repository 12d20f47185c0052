"""Where inputs and run directories live: the local disk or any pyarrow / fsspec filesystem (``s3://``,
``gs://``, ``hdfs://``, ``abfs://`` ...), behind one small path-like type.

``resolve("s3://bucket/runs/demo")`` gives a ``Location`` (a pyarrow ``FileSystem`` plus a path on it) with
the operations the pipeline needs: ``/``, ``glob``, ``exists``, ``open_input``, ``read_bytes``, atomic
``write_bytes`` / ``write_parquet``, ``iterdir``, ``delete_tree``. A ``Location`` pickles (its filesystem
included), so one resolved on the driver can be handed to Ray workers.

Atomic writes: on a local disk a file is written to a temporary name in its directory and renamed into place.
On an object store a key becomes visible only when its upload completes (a PUT, or the completion of a
multipart upload), so the final key is written once from complete content (an in-memory buffer, or a local
spool file for a stream) and never renamed (a rename there is a copy + delete, not atomic).

Object-store credentials and endpoints come from the usual environment (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS`` ...) or from URI query options that pyarrow
understands (``s3://bucket/path?endpoint_override=host:9000&scheme=http``); the query is kept on every
derived location so ``str(location)`` resolves back to the same place.
"""

from __future__ import annotations

import fnmatch
import json
import glob as _stdlib_glob
import os
import posixpath
import re
import tempfile
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import xxhash

T = TypeVar("T")
# Reading a Parquet file through an object-store handle costs a request for its footer and one or more for its
# column chunks. A request's round trip (tens of ms to the first byte) is the time to stream a few MB, so a file
# up to this size is fetched whole in one request, even when only some columns are wanted.
WHOLE_READ_MAX_BYTES = 4 << 20
# Schemes whose "directories" are only key prefixes (no empty directory can exist there).
KEY_VALUE_STORES = ("s3", "gs", "gcs")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_GLOB_CHARS = re.compile(r"[*?\[]")
# Bytes per write of a spooled upload: Arrow's S3 stream sends multipart parts of its own size from them.
_UPLOAD_CHUNK = 8 << 20
# Bytes of remote files of known content a process keeps for later reads (GRISTMILL_HELD_MB): the demo's segments
# hold ~1 MB, a 20 MB corpus's ~15 MB; a larger run keeps its most recently used files.
HELD_BYTES_LIMIT = int(os.environ.get("GRISTMILL_HELD_MB", "256")) << 20
# Concurrent fetches: a part's few files, and the next part's while this one is worked on.
FETCH_THREADS = 8


class StorageError(OSError):
    """A location that cannot be resolved or used; the message names the URI."""


def is_uri(path: str | os.PathLike | Location) -> bool:
    """True for ``scheme://...`` (``file://`` included) and remote locations, False for plain local paths."""
    if isinstance(path, Location):
        return not path.is_local
    return bool(_SCHEME.match(os.fspath(path)))


def is_absolute(path: str | os.PathLike) -> bool:
    """URIs are absolute; a local path is absolute as ``os.path`` says."""
    return is_uri(path) or os.path.isabs(os.fspath(path))


class Location:
    """A file or directory on a filesystem: ``(fs, path)`` plus the scheme and query it was resolved from."""

    __slots__ = ("fs", "path", "scheme", "query")

    def __init__(self, fs: pafs.FileSystem, path: str, scheme: str = "", query: str = ""):
        self.fs = fs
        self.path = path.rstrip("/") if path not in ("", "/") else path
        self.scheme = scheme  # "" for the local disk
        self.query = query

    # --- naming -------------------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def uri(self) -> str:
        if not self.scheme:
            return self.path
        return f"{self.scheme}://{self.path}" + (f"?{self.query}" if self.query else "")

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __fspath__(self) -> str:
        # Lets local locations go to open(), os.*, pq.read_table; a remote one must not be mistaken for a path.
        if not self.is_local:
            raise StorageError(f"{self.uri} is not on the local filesystem")
        return self.path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and (self.uri, type(self.fs)) == (other.uri, type(other.fs))

    def __hash__(self) -> int:
        return hash(self.uri)

    def __lt__(self, other: "Location") -> bool:  # sorted() of a directory listing, by path
        return self.path < other.path

    def __truediv__(self, name: str) -> "Location":
        return Location(self.fs, posixpath.join(self.path, str(name)), self.scheme, self.query)

    def __reduce__(self):
        return (Location, (self.fs, self.path, self.scheme, self.query))

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent(self) -> "Location":
        return Location(self.fs, posixpath.dirname(self.path), self.scheme, self.query)

    def with_name(self, name: str) -> "Location":
        return self.parent / name

    # --- queries ------------------------------------------------------------------------------------------
    def info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def size(self) -> int:
        info = self.info()
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(f"{self.uri}: no such file")
        return int(info.size)

    def iterdir(self) -> list["Location"]:
        """Direct children (files and directories), sorted; empty if the directory does not exist."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True, recursive=False))
        return sorted((self._child(i.path) for i in infos), key=lambda loc: loc.path)

    def walk_files(self) -> list["Location"]:
        """Every file below this directory, sorted by path."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True, recursive=True))
        return sorted((self._child(i.path) for i in infos if i.type == pafs.FileType.File), key=lambda x: x.path)

    def glob(self, pattern: str) -> list["Location"]:
        """Files below this directory matching ``pattern`` (``*`` within a name, ``**`` across directories,
        as ``glob.glob(recursive=True)``; names starting with ``.`` only match a pattern part that does)."""
        parts = [p for p in pattern.split("/") if p not in ("", ".")]
        fixed: list[str] = []
        while parts and not _GLOB_CHARS.search(parts[0]):
            fixed.append(parts.pop(0))
        base = self / "/".join(fixed) if fixed else self
        if not parts:  # no wildcard: the file itself, if it is one
            return [base] if base.is_file() else []
        deep = len(parts) > 1 or "**" in parts
        selector = pafs.FileSelector(base.path, allow_not_found=True, recursive=deep)
        matches = []
        prefix = base.path.rstrip("/") + "/" if base.path not in ("", "/") else base.path
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(prefix):] if info.path.startswith(prefix) else info.path
            if _match_parts(rel.split("/"), parts):
                matches.append(self._child(info.path))
        return sorted(matches, key=lambda loc: loc.path)

    def _child(self, path: str) -> "Location":
        return Location(self.fs, path, self.scheme, self.query)

    # --- reading ------------------------------------------------------------------------------------------
    def open_input(self):
        """A seekable binary file: the builtin ``open`` on the local disk, an Arrow random-access file
        elsewhere (both have read/seek/tell and work as context managers)."""
        if self.is_local:
            return open(self.path, "rb")
        try:
            return self.fs.open_input_file(self.path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"{self.uri}: cannot open: {exc}") from exc

    def read_bytes(self) -> bytes:
        with self.open_input() as fh:
            return fh.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def read_json(self) -> Any:
        return json.loads(self.read_bytes())

    def read_parquet(self, columns: list[str] | None = None) -> pa.Table:
        """The whole file as a table (only ``columns`` if given). On an object store a file up to
        ``WHOLE_READ_MAX_BYTES`` is fetched in one request; a larger one by its footer and column ranges."""
        if self.is_local:
            return pq.read_table(self.path, columns=columns)
        with self.open_input() as fh:
            if fh.size() <= WHOLE_READ_MAX_BYTES:
                return pq.read_table(pa.BufferReader(fh.read()), columns=columns)
            return pq.read_table(fh, columns=columns)

    def read_parquet_schema(self) -> pa.Schema:
        """A Parquet file's schema, from its footer only."""
        if self.is_local:
            return pq.read_schema(self.path)
        with self.open_input() as fh:
            return pq.read_schema(fh)

    def parquet_file(self) -> pq.ParquetFile:
        """A ``ParquetFile`` to read row groups or batches from; remote files are read into memory first (a
        random-access Arrow file over an object store would issue a request per read)."""
        if self.is_local:
            return pq.ParquetFile(self.path)
        return pq.ParquetFile(pa.BufferReader(self.read_bytes()))

    # --- writing ------------------------------------------------------------------------------------------
    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        """Create this directory and its parents (the arguments are accepted for ``pathlib.Path``
        compatibility). Object stores have no directories: nothing to do there (an empty marker object would
        only show up in listings)."""
        if self.is_local:
            os.makedirs(self.path, exist_ok=True)

    def write_bytes(self, data: bytes | pa.Buffer) -> None:
        """Write the whole file atomically: readers see the old file (or none) or the complete new one."""
        if self.is_local:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            tmp = posixpath.join(os.path.dirname(self.path), f".{self.name}.tmp-{uuid.uuid4().hex}")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, self.path)
            except BaseException:
                _remove_quietly(tmp)
                raise
            return
        # The buffer is complete before the key is opened: closing an Arrow S3/GCS stream completes the upload
        # even when leaving a ``with`` block by an exception, so nothing that can fail may happen in between.
        # compression=None: Arrow would otherwise gzip a key ending in ".gz" (a WARC would be gzipped twice).
        buffer = pa.py_buffer(data)
        with self.fs.open_output_stream(self.path, compression=None) as out:
            out.write(buffer)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def write_json(self, obj: Any) -> None:
        """Indented, sorted keys, newline-terminated: the same object always gives the same bytes."""
        self.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    def write_stream(self, write: Callable[[pa.NativeFile], T]) -> T:
        """Atomically write what ``write(sink)`` streams into an Arrow output stream; returns its result.
        Locally the stream is a temporary file renamed into place. Elsewhere it is spooled to a local temporary
        file (an export can be larger than memory) and uploaded once complete: a failure while writing leaves
        no object, as an upload opened early would complete with the part written so far."""
        if not self.is_local:
            return self._write_stream_spooled(write)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = posixpath.join(os.path.dirname(self.path), f".{self.name}.tmp-{uuid.uuid4().hex}")
        try:
            with pa.OSFile(tmp, "wb") as sink:
                result = write(sink)
            os.replace(tmp, self.path)
        except BaseException:
            _remove_quietly(tmp)
            raise
        return result

    def _write_stream_spooled(self, write: Callable[[pa.NativeFile], T]) -> T:
        fd, tmp = tempfile.mkstemp(prefix="gristmill-upload-")
        os.close(fd)
        try:
            with pa.OSFile(tmp, "wb") as sink:
                result = write(sink)
            # compression=None, as in write_bytes: the key's suffix must not make Arrow compress the bytes again.
            with pa.OSFile(tmp, "rb") as source, self.fs.open_output_stream(self.path, compression=None) as out:
                while chunk := source.read(_UPLOAD_CHUNK):
                    out.write(chunk)
        finally:
            _remove_quietly(tmp)
        return result

    def read_ipc(self) -> pa.Table:
        """An Arrow IPC file: memory-mapped on a local disk (no copy until a slice is used), read whole elsewhere."""
        source = pa.memory_map(self.path, "r") if self.is_local else pa.BufferReader(self.read_bytes())
        return pa.ipc.open_file(source).read_all()

    def write_parquet(self, table: pa.Table, **write_options) -> None:
        """Atomically: locally streamed to a temporary file and renamed; elsewhere ``pq.write_table`` into
        memory, then one ``write_bytes``. The bytes are the same either way."""
        if self.is_local:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            tmp = posixpath.join(os.path.dirname(self.path), f".{self.name}.tmp-{uuid.uuid4().hex}")
            try:
                pq.write_table(table, tmp, **write_options)
                os.replace(tmp, self.path)
            except BaseException:
                _remove_quietly(tmp)
                raise
            return
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **write_options)
        self.write_bytes(sink.getvalue())

    # --- removing -----------------------------------------------------------------------------------------
    def delete_tree(self) -> None:
        """Remove this directory and everything under it; nothing to do if it does not exist."""
        if self.scheme in KEY_VALUE_STORES:
            # An object store has keys, not directories: one listing says whether any key is below this one
            # (asking whether the directory exists would cost a request, and one more when it does not).
            below = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True, recursive=False))
            if below:
                self.fs.delete_dir(self.path)
            return
        if not self.exists():
            return
        if self.is_file():
            self.fs.delete_file(self.path)
        else:
            self.fs.delete_dir(self.path)

    def delete_dir(self) -> None:
        """Remove this directory and everything under it, known to exist (a listing of its parent named it):
        on an object store one listing less than ``delete_tree``."""
        self.fs.delete_dir(self.path)

    def delete(self) -> None:
        """Remove this file; nothing to do if it does not exist."""
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass


def content_digest(data: bytes | pa.Buffer) -> str:
    """xxh3-128 of a file's bytes: what a segment's ``_SUCCESS`` lists per part, and what ``KnownFile`` is keyed by."""
    return xxhash.xxh3_128_hexdigest(memoryview(data))


class KnownFile(Location):
    """A file whose size and xxh3-128 hash are known (a segment's ``_SUCCESS`` lists them, or this process wrote
    it): the same bytes wherever and whenever it is read. On an object store each read of a file is a round trip
    (a HEAD for its size, then a GET), so a remote one up to ``WHOLE_READ_MAX_BYTES`` is fetched at most once per
    process, and not at all by the process that wrote it: its reads are served from ``HELD``. A file changed on
    the store since is not served from memory for a listing of other content (the key holds size and hash); that
    a committed file changed is found by resume and ``verify``, which hash the stored bytes."""

    __slots__ = ("known_size", "digest")

    def __init__(self, location: Location, known_size: int, digest: str):
        super().__init__(location.fs, location.path, location.scheme, location.query)
        self.known_size = int(known_size)
        self.digest = digest

    def __reduce__(self):
        return (KnownFile, (Location(self.fs, self.path, self.scheme, self.query), self.known_size, self.digest))

    @property
    def held_key(self) -> tuple[str, int, str]:
        return (self.uri, self.known_size, self.digest)

    @property
    def held_whole(self) -> bool:
        """Whether its reads fetch the whole file once and keep it: a remote file up to ``WHOLE_READ_MAX_BYTES``."""
        return not self.is_local and self.known_size <= WHOLE_READ_MAX_BYTES

    def open_input(self):
        if self.held_whole:
            return pa.BufferReader(HELD.load(self))
        return super().open_input()

    def read_bytes(self) -> bytes:
        if self.held_whole:
            return HELD.load(self).to_pybytes()
        return super().read_bytes()

    def read_parquet(self, columns: list[str] | None = None) -> pa.Table:
        if self.held_whole:
            return pq.read_table(pa.BufferReader(HELD.load(self)), columns=columns)
        return super().read_parquet(columns)

    def fetch_ahead(self) -> None:
        """Start fetching it in the background, if a read would and it is not held yet."""
        if self.held_whole and not HELD.holds(self.held_key):
            fetch_pool().submit(HELD.load, self)


def written_known(location: Location, data: bytes | pa.Buffer, digest: str | None = None) -> Location:
    """``location`` as a ``KnownFile`` of ``data``, which this process has written (or is writing) there: its
    bytes are held so that reading it back costs no request. A local one stays a plain location."""
    if location.is_local:
        return location
    buffer = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    known = KnownFile(location, buffer.size, digest or content_digest(buffer))
    if known.held_whole:
        HELD.put(known.held_key, buffer)
    return known


class HeldBytes:
    """Bytes of ``KnownFile``s by ``held_key``, up to ``limit`` bytes, the least recently used dropped first.
    ``load`` fetches a file once however many threads ask for it at the same time (the others wait for it)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, Future] = OrderedDict()
        self._held = 0

    def put(self, key: tuple, data: pa.Buffer) -> None:
        done: Future = Future()
        done.set_result(data)
        with self._lock:
            self._drop(key)
            self._entries[key] = done
        self._account(key, done)

    def load(self, file: KnownFile) -> pa.Buffer:
        key = file.held_key
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                fetching = False
            else:
                entry = self._entries[key] = Future()
                fetching = True
        if not fetching:
            return entry.result()  # held, or being fetched by another thread
        try:
            with Location.open_input(file) as fh:  # the store itself, not the held bytes being fetched
                entry.set_result(pa.py_buffer(fh.read()))
        except BaseException as exc:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]  # a failed fetch is tried again by the next reader
            entry.set_exception(exc)
            raise
        self._account(key, entry)
        return entry.result()

    def holds(self, key: tuple) -> bool:
        with self._lock:
            return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held = 0

    def _account(self, key: tuple, entry: Future) -> None:
        with self._lock:
            if self._entries.get(key) is not entry:
                return
            self._held += entry.result().size
            for old in list(self._entries):
                if self._held <= self.limit or old == key:
                    break
                if self._entries[old].done():
                    self._drop(old)

    def _drop(self, key: tuple) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry.done() and entry.exception() is None:
            self._held -= entry.result().size


HELD = HeldBytes(HELD_BYTES_LIMIT)
_fetch_pool: ThreadPoolExecutor | None = None
_fetch_pool_lock = threading.Lock()


def fetch_pool() -> ThreadPoolExecutor:
    """The process's threads for fetches that overlap other work (a part's files, the next part's)."""
    global _fetch_pool
    with _fetch_pool_lock:
        if _fetch_pool is None:
            _fetch_pool = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="gristmill-fetch")
        return _fetch_pool


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads: a pool whose threads are gone would never run a fetch,
    and a fetch under way in the parent would never finish here. Start both afresh."""
    global _fetch_pool, _fetch_pool_lock, HELD
    _fetch_pool, _fetch_pool_lock, HELD = None, threading.Lock(), HeldBytes(HELD_BYTES_LIMIT)


os.register_at_fork(after_in_child=_after_fork_in_child)


class BackgroundWrites:
    """Whole-file writes to an object store that run on a few threads while the caller goes on (each a PUT: a
    round trip the caller would otherwise wait for). ``join`` waits for every one and raises the first failure,
    so a caller that joins before its commit point never commits a file that is not fully written. At most
    ``max_bytes`` of data wait or travel at once (the caller waits for room; a larger file goes alone); a local
    write is done at once (a rename, no round trip). Used as a context manager it joins on exit; leaving by an
    exception, it still waits for the writes under way, and that exception is the one raised.

    ``gate``: called (it must be idempotent and thread-safe) before each write starts, so that work producing the
    files can go on while something the writes depend on is still being settled; if it raises, no write happens
    and ``join`` raises that."""

    def __init__(self, threads: int = 4, max_bytes: int = 128 << 20, gate: Callable[[], None] | None = None):
        self._threads = threads
        self._max_bytes = max_bytes
        self._gate = gate
        self._room = threading.Condition()
        self._in_flight = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def write_bytes(self, location: "Location", data: bytes | pa.Buffer) -> None:
        if location.is_local:
            self._pass_gate()
            location.write_bytes(data)
            return
        size = len(data) if isinstance(data, bytes) else data.size
        with self._room:
            self._room.wait_for(lambda: self._in_flight == 0 or self._in_flight + size <= self._max_bytes)
            self._in_flight += size
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="gristmill-write")
        try:
            future = self._pool.submit(self._gated_write, location, data)
        except BaseException:
            self._release(size)
            raise
        future.add_done_callback(lambda _: self._release(size))
        self._pending.append(future)

    def _pass_gate(self) -> None:
        if self._gate is not None:
            self._gate()

    def _gated_write(self, location: "Location", data: bytes | pa.Buffer) -> None:
        self._pass_gate()
        location.write_bytes(data)

    def _release(self, size: int) -> None:
        with self._room:
            self._in_flight -= size
            self._room.notify_all()

    def join(self) -> None:
        """Wait for every write submitted; raise the first failure (in submission order)."""
        pending, self._pending = self._pending, []
        failure = None
        for future in pending:
            exc = future.exception()
            if exc is not None and failure is None:
                failure = exc
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if failure is not None:
            raise failure

    def __enter__(self) -> "BackgroundWrites":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.join()
            return
        try:
            self.join()
        except Exception:
            pass  # the exception leaving the block is the one to see; the writes have all ended


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def path_matches(relative: str, pattern: str) -> bool:
    """Whether a path relative to a directory matches a glob ``pattern`` as ``Location.glob`` matches it."""
    return _match_parts(relative.split("/"), [p for p in pattern.split("/") if p not in ("", ".")])


def _match_parts(names: list[str], patterns: list[str]) -> bool:
    """Match path components against pattern components, ``**`` standing for zero or more components."""
    if not patterns:
        return not names
    head, rest = patterns[0], patterns[1:]
    if head == "**":
        return any(_match_parts(names[i:], rest) for i in range(len(names) + 1)
                   if all(not n.startswith(".") for n in names[:i]))
    if not names:
        return False
    name = names[0]
    if name.startswith(".") and not head.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, head) and _match_parts(names[1:], rest)


# --- resolving ----------------------------------------------------------------------------------------------

def resolve(uri: str | os.PathLike | Location, base: str | os.PathLike | Location | None = None) -> Location:
    """A URI or local path as a ``Location``; a relative local path is taken relative to ``base`` (default:
    the current directory). ``base`` may itself be remote, so paths relative to a remote pipeline file work."""
    if isinstance(uri, Location):
        return uri
    text = os.fspath(uri)
    if not is_absolute(text) and base is not None:
        base_loc = resolve(base)
        return base_loc / posixpath.normpath(text) if not base_loc.is_local else resolve(
            os.path.join(base_loc.path, text))
    match = _SCHEME.match(text)
    if match is None:
        return Location(pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(text)))
    scheme = match.group(1).lower()
    if scheme == "file":
        return Location(pafs.LocalFileSystem(), os.path.abspath(urlsplit(text).path))
    query = urlsplit(text).query
    try:
        fs, path = pafs.FileSystem.from_uri(_with_arrow_defaults(text, scheme, query))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        fs, path = _from_fsspec(text, scheme, exc)
    except OSError as exc:
        raise StorageError(f"{text}: cannot open its filesystem: {exc}") from exc
    return Location(fs, path, scheme, query)


def _with_arrow_defaults(uri: str, scheme: str, query: str) -> str:
    """S3 with ``allow_delayed_open``: an object smaller than a part (every write here: whole buffers) is then
    written with one PutObject instead of a multipart upload's three requests (create, part, complete): on the
    demo, 1,653 requests became 1,312. Only the filesystem gets it; the Location keeps the user's query."""
    if scheme != "s3" or "allow_delayed_open=" in query:
        return uri
    return uri + ("&" if query else "?") + "allow_delayed_open=true"


def _from_fsspec(uri: str, scheme: str, arrow_error: Exception) -> tuple[pafs.FileSystem, str]:
    """Schemes pyarrow has no native filesystem for (``abfs``, ``http`` ...) through an installed fsspec
    implementation, wrapped so the rest of the code sees one pyarrow interface."""
    try:
        import fsspec
        from fsspec.core import url_to_fs
    except ImportError:
        raise StorageError(f"{uri}: pyarrow cannot open {scheme}:// ({arrow_error}) and fsspec is not "
                           "installed (pip install fsspec and its plugin for this scheme)") from None
    try:
        fs, path = url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        known = ", ".join(sorted(fsspec.available_protocols()))
        raise StorageError(f"{uri}: no filesystem for {scheme}:// ({exc}); fsspec knows: {known}") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def glob(pattern: str | os.PathLike, base: str | os.PathLike | Location | None = None) -> list[Location]:
    """Files matching a glob pattern given as a URI or local path (relative ones against ``base``), sorted."""
    text = os.fspath(pattern)
    if not is_absolute(text):
        base_loc = resolve(base if base is not None else ".")
        text = str(base_loc / text) if not base_loc.is_local else os.path.join(base_loc.path, text)
    scheme, body, query = _split_uri(text)
    if not scheme:
        # The local disk: exactly the glob module's answer (paths as written, not normalized), so plan
        # hashes and ``origin`` values of local inputs do not change.
        return [Location(pafs.LocalFileSystem(), p) for p in sorted(_stdlib_glob.glob(body, recursive=True)) if os.path.isfile(p)]
    parts = body.split("/")
    fixed: list[str] = []
    while parts and not _GLOB_CHARS.search(parts[0]):
        fixed.append(parts.pop(0))
    root_text = "/".join(fixed) or "/"
    root = resolve(f"{scheme}://{root_text}" + (f"?{query}" if query else "") if scheme else root_text)
    if not parts:
        return [root] if root.is_file() else []
    return root.glob("/".join(parts))


def _split_uri(text: str) -> tuple[str, str, str]:
    """(scheme, bucket/path, query); the scheme is "" for local paths and ``file://`` URIs."""
    match = _SCHEME.match(text)
    if match is None:
        return "", text, ""
    split = urlsplit(text)
    if match.group(1).lower() == "file":
        return "", split.path, ""
    return match.group(1), split.netloc + split.path, split.query


def open_input(path: str | os.PathLike | Location):
    """A seekable binary file for a local path or URI (see ``Location.open_input``)."""
    return resolve(path).open_input()


def file_size(path: str | os.PathLike | Location) -> int:
    """Bytes of a file; local paths through ``os.path.getsize`` (no filesystem object needed)."""
    if not isinstance(path, Location) and not is_uri(path):
        return os.path.getsize(path)
    return resolve(path).size()


def sha256_file(path: str | os.PathLike | Location) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (local or remote)."""
    import hashlib

    digest = hashlib.sha256()
    with resolve(path).open_input() as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bytes_atomic(path: str | os.PathLike | Location, data: bytes) -> None:
    resolve(path).write_bytes(data)
