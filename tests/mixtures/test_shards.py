from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from gristmill.mixtures.shards import ShardReader, interleave, verify_shards

PARAMS = {"mixture": "llama", "seq_len": 64, "rows_per_shard": 100, "row_group_rows": 32}


@pytest.fixture
def packed(run_dir, run_pack):
    run_pack(run_dir, PARAMS)
    return run_dir


def all_rows(run_dir):
    m = json.loads((run_dir / "manifest.json").read_text())
    tables = [pq.read_table(run_dir / e["path"], columns=["input_ids"]) for e in m["shards"]]
    return np.concatenate([t.column(0).combine_chunks().flatten().to_numpy().reshape(-1, 64) for t in tables])


def test_reader_streams_every_row_in_manifest_order(packed):
    reader = ShardReader(str(packed), batch_rows=48)
    expected = all_rows(packed)
    assert len(reader) == len(expected)
    assert np.array_equal(np.stack(list(reader)), expected)
    assert len(reader) == 0


@pytest.mark.parametrize("stop_after", [1, 99, 100, 101, 357])
def test_resume_gives_exactly_the_remaining_rows(packed, stop_after):
    expected = all_rows(packed)
    reader = ShardReader(str(packed), batch_rows=48)
    seen = []
    for row in reader:
        seen.append(row)
        if len(seen) == stop_after:
            break
    state = json.loads(json.dumps(reader.state_dict()))  # as a training checkpoint would keep it
    resumed = ShardReader(str(packed), state=state, batch_rows=48)
    rest = np.stack(list(resumed))
    assert np.array_equal(np.concatenate([np.stack(seen), rest]), expected)


def test_resume_between_batches(packed):
    expected = all_rows(packed)
    reader = ShardReader(str(packed), batch_rows=30)
    batches = reader.batches()
    first = [next(batches) for _ in range(4)]  # 3 batches of shard 0, then the first of shard 1
    resumed = ShardReader(str(packed), state=reader.state_dict(), batch_rows=30)
    assert np.array_equal(np.concatenate(first + list(resumed.batches())), expected)


def test_verify_finds_a_changed_shard_a_missing_one_and_a_stray(packed):
    assert verify_shards(str(packed)) == []
    shard = packed / "shards" / "part-00001.parquet"
    table = pq.read_table(shard)
    pq.write_table(table.slice(0, 90), shard, compression="zstd")
    (packed / "shards" / "part-00002.parquet").unlink()
    (packed / "shards" / "part-00099.parquet").write_bytes(b"stray")
    problems = "\n".join(verify_shards(str(packed)))
    assert "part-00001.parquet: sha256 differs" in problems
    assert "part-00001.parquet: 90 rows, the manifest says 100" in problems
    assert "part-00002.parquet: listed in the manifest but missing" in problems
    assert "part-00099.parquet: in shards/ but not in the manifest" in problems
    assert "tokens in the shards, the manifest says" in problems


def test_verify_without_a_manifest(tmp_path):
    assert "no manifest" in verify_shards(str(tmp_path))[0]


def test_interleave_spreads_every_source_over_the_shards():
    names, shards = interleave({"a": 900, "b": 100}, rows_per_shard=100, seed=0)
    assert names == ["a", "b"] and len(shards) == 10
    per_shard_b = [int((s == 1).sum()) for s in shards]
    assert sum(per_shard_b) == 100 and min(per_shard_b) >= 2 and max(per_shard_b) <= 25
    _, again = interleave({"a": 900, "b": 100}, rows_per_shard=100, seed=0)
    _, other = interleave({"a": 900, "b": 100}, rows_per_shard=100, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(shards, again))
    assert not all(np.array_equal(x, y) for x, y in zip(shards, other))
