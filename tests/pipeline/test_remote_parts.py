"""Reading and writing a run's parts on an object store (moto, 127.0.0.1), counted in requests: each one is a round
trip the run waits for."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

from demo_pipeline import DEMO, PACKED, make_plan

# The demo's documents twice (the WARC sample under a second name): MinHash then has candidates to verify.
DEMO_DEDUP = DEMO.replace('"{data}/warc/truncated-record.warc.gz"', '"{data}/warc/truncated-record.warc.gz", "{copy}"')


def _part_requests(requests: list[tuple[str, str]]) -> Counter:
    return Counter((method, key) for method, key in requests if "/segments/" in key and "/part-" in key)


@pytest.fixture
def packed_runs(tmp_path, data_dir, s3_query, s3_requests):
    """The packed demo run into a local directory and into the object store (its requests kept)."""
    from gristmill.core.storage import resolve
    from gristmill.pipeline.executors import LocalExecutor
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir

    plan = make_plan(data_dir, PACKED)
    run_plan(plan, RunDir(tmp_path / "local"), LocalExecutor(), log=lambda m: None)
    remote = RunDir(f"s3://gristmill-run/runs/packed?{s3_query}")
    s3_requests.requests.clear()
    run_plan(plan, remote, LocalExecutor(), log=lambda m: None)
    # The run's own requests: those before its stats.json, written just before the report reads the run.
    requests = list(s3_requests.requests)
    end = next(i for i, (method, key) in enumerate(requests) if method == "PUT" and key.endswith("/stats/stats.json"))
    return tmp_path / "local", remote, requests[:end], resolve


def test_a_run_reads_the_parts_it_wrote_without_asking_the_store(packed_runs):
    """Every segment after the first reads earlier segments' parts (each column where it is stored): the bytes the
    run uploaded are read back from memory, and its output is the local run's, byte for byte."""
    local, remote, requests, resolve = packed_runs
    written = {key for method, key in requests if method == "PUT" and "/segments/" in key and "/part-" in key}
    assert written and _part_requests(requests) == Counter({("PUT", key): 1 for key in written})
    for name in ("01-tokenizer.train_bbpe_v1", "00-ingest"):
        for part in sorted((local / "segments" / name).glob("part-*.parquet")):
            assert (remote.segment_dir(name) / part.name).read_bytes() == part.read_bytes(), part.name
    markers = Counter((method, key) for method, key in requests if key.endswith("/_SUCCESS") and method != "PUT")
    # No marker asked for: the run starts by listing segments/ (none there) and keeps the markers it commits.
    assert not markers, markers
    shards = sorted((local / "shards").glob("*.parquet"))
    assert shards and all(resolve(str(remote.root) .replace("?", f"/shards/{s.name}?")).read_bytes() == s.read_bytes()
                          for s in shards)


def test_a_listed_part_not_held_is_fetched_once_each_file_concurrently_then_held(packed_runs, s3_requests):
    """A part read across two segments: each of its files is asked for once (its size, its bytes), and a second
    read asks nothing."""
    from gristmill.core import storage

    _, remote, _, _ = packed_runs
    markers = {name: remote.marker(name) for name in ("00-ingest", "01-tokenizer.train_bbpe_v1")}
    segment = remote.segment_parts("01-tokenizer.train_bbpe_v1", markers["01-tokenizer.train_bbpe_v1"], markers)
    part = segment[0]
    assert len(part.files()) == 2 and all(isinstance(f, storage.KnownFile) for f in part.files())
    storage.HELD.clear()
    s3_requests.requests.clear()
    table = part.read_parquet()
    assert {"text", "tokens"} <= set(table.column_names) and table.num_rows == part.rows
    asked = _part_requests(s3_requests.requests)
    assert sorted(asked.values()) == [1, 1, 1, 1]  # HEAD and GET of each file, nothing twice
    assert {key.rsplit("/", 2)[1] for _, key in asked} == {"00-ingest", "01-tokenizer.train_bbpe_v1"}
    s3_requests.requests.clear()
    assert part.read_parquet().equals(table) and not _part_requests(s3_requests.requests)


def test_bytes_held_for_one_listing_are_not_served_for_another(s3_query):
    """The bytes held for a file are those of the size and hash a listing names: a file written again with
    other content (a recomputed segment) is fetched, not answered from memory."""
    from gristmill.core.parts import SegmentPart
    from gristmill.core.storage import KnownFile, resolve
    from gristmill.pipeline.rundir import parquet_bytes, part_digest, write_part

    loc = resolve(f"s3://gristmill-run/runs/held/segments/00/part-0000000000000000.parquet?{s3_query}")
    first = pa.table({"doc_id": pa.array([1, 2], pa.uint64()), "text": ["a", "b"]})
    listed = write_part(loc, first)  # held: this process wrote it
    other = pa.table({"doc_id": pa.array([1, 2], pa.uint64()), "text": ["x", "y"]})
    data = parquet_bytes(other)
    loc.write_bytes(data)  # as another process would: nothing held for it
    again = SegmentPart(KnownFile(loc, data.size, part_digest(data)), 0, 2, None)
    assert again.read_parquet().column("text").to_pylist() == ["x", "y"]
    before = SegmentPart(KnownFile(loc, listed["bytes"], listed["xxh3_128"]), 0, 2, None)
    assert before.read_parquet().column("text").to_pylist() == ["a", "b"]  # what that listing committed


def test_background_writes_end_before_join_and_raise_the_first_failure(s3_query):
    from gristmill.core.storage import BackgroundWrites, resolve

    good = [resolve(f"s3://gristmill-run/runs/bg/file-{i}?{s3_query}") for i in range(6)]
    with BackgroundWrites(threads=2, max_bytes=20) as writes:  # two files at a time, and one larger alone
        for i, loc in enumerate(good):
            writes.write_bytes(loc, f"content {i}".encode() * (1 if i else 5))
    assert [loc.read_text() for loc in good] == [f"content {i}" * (1 if i else 5) for i in range(6)]

    writes = BackgroundWrites()
    writes.write_bytes(resolve(f"s3://no-such-bucket/file?{s3_query}"), b"lost")
    writes.write_bytes(good[0], b"rewritten")
    with pytest.raises(OSError, match="no-such-bucket|NoSuchBucket"):
        writes.join()
    assert good[0].read_text() == "rewritten"  # the others still ended

    with pytest.raises(ZeroDivisionError):
        with BackgroundWrites() as writes:
            writes.write_bytes(good[1], b"written before the failure")
            1 / 0
    assert good[1].read_text() == "written before the failure"


def test_background_writes_wait_for_their_gate_and_write_nothing_when_it_refuses(s3_query):
    """The run's first segment works while its lease settles: the uploads wait for the gate (the lease confirmed),
    and a gate that refuses (the lease lost) lets no write through; join raises its error."""
    import threading

    from gristmill.core.storage import BackgroundWrites, resolve

    opened, files = threading.Event(), [resolve(f"s3://gristmill-run/runs/gated/file-{i}?{s3_query}") for i in range(3)]
    with BackgroundWrites(gate=opened.wait) as writes:
        for loc in files:
            writes.write_bytes(loc, b"after the gate")
        assert not any(loc.exists() for loc in files)  # queued behind the gate, the caller went on
        opened.set()
    assert [loc.read_text() for loc in files] == ["after the gate"] * 3

    def refuse() -> None:
        raise RuntimeError("lease lost")

    refused = [resolve(f"s3://gristmill-run/runs/gated/refused-{i}?{s3_query}") for i in range(3)]
    with pytest.raises(RuntimeError, match="lease lost"):
        with BackgroundWrites(gate=refuse) as writes:
            for loc in refused:
                writes.write_bytes(loc, b"never")
    assert not any(loc.exists() for loc in refused)


def test_minhash_state_of_the_demo_passes_in_memory_without_requests(tmp_path, data_dir, s3_query, s3_requests):
    """MinHash's state on the demo (the parts' shingle hashes, the candidates' sets) is small: handed between the
    build's tasks as their results, with no request to the store; the dedup segment's parts are the local run's."""
    from gristmill.pipeline.executors import LocalExecutor
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir

    copy = tmp_path / "copy.warc.gz"
    copy.write_bytes((data_dir / "warc" / "cc-main-2020-34-sample.warc.gz").read_bytes())
    text = DEMO_DEDUP.replace("{copy}", str(copy)).replace(
        "output:\n", "  - stage: dedup.minhash_v1\noutput:\n")
    plan = make_plan(data_dir, text)
    run_plan(plan, RunDir(tmp_path / "local"), LocalExecutor(), log=lambda m: None)
    remote = RunDir(f"s3://gristmill-run/runs/minhash?{s3_query}")
    s3_requests.requests.clear()
    run_plan(plan, remote, LocalExecutor(), log=lambda m: None)
    state = [(method, key.rsplit("/dedup/", 1)[1]) for method, key in s3_requests.requests if "/dedup/" in key]
    # The demo's shingle hashes and candidates' sets pass between the build's tasks in memory: no request for
    # them, only the clusters written (one file per partition).
    assert sorted(state) == [("PUT", f"05-minhash/clusters/part-{q:04d}.parquet") for q in range(4)], state
    assert not remote.root.glob("**/shingle_hashes/*")  # the parts' hashes, kept only until sets are taken
    local = RunDir(tmp_path / "local")
    kept = remote.marker("01-dedup.minhash_v1")
    assert kept["parts"] == local.marker("01-dedup.minhash_v1")["parts"]
    assert kept["rows"] < remote.marker("00-ingest")["rows"]  # near duplicates dropped
    for part in local.segment_parts("01-dedup.minhash_v1"):
        assert (remote.segment_dir("00-ingest") / part.name).read_bytes() == \
            (local.segment_dir("00-ingest") / part.name).read_bytes()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_tasks_upload_in_the_background_and_give_the_local_shards(packed_runs, ray_cluster, s3_query, data_dir):
    """The same run with the Ray executor on the object store: parts uploaded in the background by each task (and
    ended before it returns), read by other worker processes as files of known content; the shards are the local
    run's byte for byte."""
    from gristmill.pipeline.executors import RayExecutor
    from gristmill.pipeline.run import run_plan
    from gristmill.pipeline.rundir import RunDir

    local = packed_runs[0]
    remote = RunDir(f"s3://gristmill-run/runs/packed-ray?{s3_query}")
    run_plan(make_plan(data_dir, PACKED), remote, RayExecutor(), log=lambda m: None)
    assert remote.verify_segments() == []
    shards = sorted((local / "shards").glob("*.parquet"))
    assert shards and all((remote.root / "shards" / s.name).read_bytes() == s.read_bytes() for s in shards)
