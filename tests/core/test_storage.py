"""gristmill/core/storage.py on the local disk, on a real S3-compatible server (moto's server mode on 127.0.0.1) and
on an fsspec-only filesystem (``memory://``)."""

from __future__ import annotations

import glob as pyglob
import os
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.core import storage
from gristmill.core.storage import Location, StorageError, resolve


# --- local ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", ["python-stdlib/*.py", "**/*.warc.gz", "warc/*", "*/c*.py", "**/README.md"])
def test_local_glob_matches_the_glob_module(data_dir, pattern):
    expected = sorted(p for p in pyglob.glob(str(data_dir / pattern), recursive=True) if os.path.isfile(p))
    assert expected, pattern
    assert [str(loc) for loc in storage.glob(pattern, base=data_dir)] == expected
    assert [str(loc) for loc in storage.glob(str(data_dir / pattern))] == expected


def test_local_glob_without_wildcard_and_without_match(data_dir):
    readme = data_dir / "README.md"
    assert storage.glob("README.md", base=data_dir) == [resolve(readme)]
    assert storage.glob("nothing-here/*.txt", base=data_dir) == []


def test_glob_skips_hidden_names_like_the_glob_module(tmp_path):
    (tmp_path / ".tmp-part.parquet").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "part.parquet").write_bytes(b"x")
    (tmp_path / "part.parquet").write_bytes(b"x")
    assert [loc.name for loc in storage.glob("*.parquet", base=tmp_path)] == ["part.parquet"]
    # Location.glob (the object-store code path, here on the local disk) agrees with the glob module.
    assert [loc.name for loc in resolve(tmp_path).glob("*.parquet")] == ["part.parquet"]
    assert [str(loc) for loc in resolve(tmp_path).glob("**/*.parquet")] == [
        str(tmp_path / "part.parquet"), str(tmp_path / "sub" / "part.parquet")]


def test_local_glob_keeps_paths_as_written(data_dir):
    pattern = str(data_dir / "warc" / ".." / "warc" / "*.warc.gz")
    assert [str(loc) for loc in storage.glob(pattern)] == sorted(pyglob.glob(pattern))
    assert all("/../" in str(loc) for loc in storage.glob(pattern))
    assert storage.file_size(pattern.replace("*", "truncated-record")) == os.path.getsize(
        data_dir / "warc" / "truncated-record.warc.gz")


def test_relative_paths_resolve_against_base(tmp_path):
    loc = resolve("sub/file.txt", base=tmp_path)
    assert loc.is_local and str(loc) == str(tmp_path / "sub" / "file.txt")
    assert resolve(f"file://{tmp_path}/x") == resolve(tmp_path / "x")
    assert storage.is_absolute("s3://bucket/key") and not storage.is_absolute("runs/demo")


def test_local_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path):
    target = resolve(tmp_path / "run" / "plan.json")
    target.write_text("old")
    with pytest.raises(TypeError):
        target.write_bytes(object())  # fails mid-write: the old content must survive
    assert target.read_text() == "old"
    target.write_text("new")
    assert target.read_text() == "new"
    assert sorted(os.listdir(tmp_path / "run")) == ["plan.json"]


def test_local_parquet_listing_and_delete_tree(tmp_path):
    run = resolve(tmp_path / "run")
    table = pa.table({"doc_id": pa.array([3, 1, 2], pa.uint64()), "text": ["c", "a", "b"]})
    (run / "segments" / "00-ingest" / "part-0.parquet").write_parquet(table, compression="zstd")
    (run / "segments" / "00-ingest" / "_SUCCESS").write_text("{}")
    assert pq.read_table(os.fspath(run / "segments" / "00-ingest" / "part-0.parquet")).equals(table)
    assert [loc.name for loc in (run / "segments" / "00-ingest").iterdir()] == ["_SUCCESS", "part-0.parquet"]
    assert [loc.name for loc in run.walk_files()] == ["_SUCCESS", "part-0.parquet"]
    (run / "segments").delete_tree()
    assert not (run / "segments").exists() and run.exists()
    (run / "segments").delete_tree()  # deleting what is gone is not an error


def test_location_pickles_with_its_filesystem(tmp_path):
    loc = resolve(tmp_path) / "a" / "b.txt"
    back = pickle.loads(pickle.dumps(loc))
    assert back == loc and back.is_local and back.name == "b.txt" and back.parent.name == "a"


# --- S3 (a real local S3-compatible server) ---------------------------------------------------------------------

def s3(path: str, query: str) -> str:
    return f"s3://gristmill-run/{path}?{query}"


def test_s3_resolve_keeps_the_endpoint_on_derived_locations(s3_query):
    run = resolve(s3("runs/demo", s3_query))
    assert not run.is_local and run.path == "gristmill-run/runs/demo"
    child = run / "segments" / "00-ingest"
    assert str(child) == s3("runs/demo/segments/00-ingest", s3_query)
    assert resolve(str(child)) == child  # str() round-trips to the same place
    with pytest.raises(StorageError):
        os.fspath(child)  # never mistaken for a local path


def test_s3_atomic_write_read_glob_delete(s3_query):
    run = resolve(s3("runs/atomic", s3_query))
    table = pa.table({"doc_id": pa.array([1, 2], pa.uint64()), "text": ["a", "b"]})
    for part in ("part-0000000000000000.parquet", "part-0000000100000000.parquet"):
        (run / "segments" / "00-ingest" / part).write_parquet(table, compression="zstd")
    (run / "segments" / "00-ingest" / "_SUCCESS").write_text('{"hash": "abc"}')
    (run / "stats" / "stats.json").write_text("{}")

    parts = storage.glob(s3("runs/atomic/segments/*/part-*.parquet", s3_query))
    assert [p.name for p in parts] == ["part-0000000000000000.parquet", "part-0000000100000000.parquet"]
    with parts[1].open_input() as fh:
        assert pq.read_table(fh).equals(table)
    assert (run / "segments" / "00-ingest" / "_SUCCESS").read_text() == '{"hash": "abc"}'
    assert [p.name for p in run.glob("**/*.json")] == ["stats.json"]
    assert (run / "segments").is_dir() and (run / "stats" / "stats.json").size() == 2

    (run / "segments").delete_tree()
    assert not (run / "segments").exists() and (run / "stats" / "stats.json").exists()


def test_s3_keeps_bytes_of_compressed_file_names_as_they_are(s3_query, data_dir):
    # Arrow's output streams gzip a key ending in .gz unless told not to: a WARC would be gzipped twice.
    warc = (data_dir / "warc" / "cc-main-2020-34-sample.warc.gz").read_bytes()
    target = resolve(s3("inputs/sample.warc.gz", s3_query))
    target.write_bytes(warc)
    assert target.size() == len(warc) and target.read_bytes() == warc


def test_s3_failed_write_leaves_no_object(s3_query):
    target = resolve(s3("runs/failed/part.parquet", s3_query))
    with pytest.raises(TypeError):
        target.write_bytes(object())
    assert not target.exists()


def test_s3_streamed_write_is_spooled_not_held_in_memory(s3_query):
    # An export of a whole run (tokens.bin) is streamed: it must not sit in memory before its upload.
    target = resolve(s3("exports/tokens.bin", s3_query))
    chunk = os.urandom(1 << 20)
    held = []

    def write(sink) -> int:
        for _ in range(48):
            sink.write(chunk)
            held.append(pa.total_allocated_bytes())
        return 48

    assert target.write_stream(write) == 48
    assert max(held) < 8 << 20
    assert target.size() == 48 << 20 and target.read_bytes()[-len(chunk):] == chunk


def test_s3_failed_streamed_write_leaves_no_object(s3_query):
    target = resolve(s3("exports/failed.bin", s3_query))

    def write(sink) -> None:
        sink.write(b"half of it")
        raise RuntimeError("the export failed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        target.write_stream(write)
    assert not target.exists()


def test_s3_location_pickles(s3_query):
    loc = resolve(s3("runs/pickled/x.txt", s3_query))
    loc.write_text("hello")
    assert pickle.loads(pickle.dumps(loc)).read_text() == "hello"


# --- fsspec-only schemes ------------------------------------------------------------------------------------------

def test_fsspec_memory_filesystem_through_the_same_interface():
    pytest.importorskip("fsspec")
    root = resolve("memory://gristmill-storage-test/run")
    (root / "a" / "one.txt").write_text("1")
    (root / "b" / "two.txt").write_text("2")
    assert [p.name for p in storage.glob("memory://gristmill-storage-test/run/*/*.txt")] == ["one.txt", "two.txt"]
    assert (root / "b" / "two.txt").read_text() == "2"
    root.delete_tree()
    assert not (root / "a" / "one.txt").exists()


def test_unknown_scheme_is_a_clear_error():
    with pytest.raises(StorageError, match="nosuchfs://bucket/x"):
        resolve("nosuchfs://bucket/x")


def test_location_type_is_exported():
    assert isinstance(resolve("."), Location)
